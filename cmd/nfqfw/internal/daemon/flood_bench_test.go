package daemon

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/cmd/nfqfw/internal/store"
	"github.com/nfqfw/nfqfw/engine/guard"
	"github.com/nfqfw/nfqfw/rules"
)

// floodSources is how many spoofed sources BenchmarkSpoofedFlood sends.
const floodSources = 200_000

// BenchmarkSpoofedFlood sends one SYN from each of 200,000 spoofed sources
// against the SSH guard of setup 7 (with a ban) while a real brute-forcer,
// whose connections complete their handshakes, pauses between bursts, and
// reports what it costs: the process RSS, the saved state's size and save
// time, and one expiry pass. "offender-banned" is 1 when the brute-forcer
// was banned despite the flood. Run it with -benchtime=1x.
func BenchmarkSpoofedFlood(b *testing.B) {
	for _, count := range []int{4, 1000} {
		b.Run("count="+strconv.Itoa(count), func(b *testing.B) {
			for range b.N {
				spoofedFlood(b, count)
			}
		})
	}
}

func spoofedFlood(b *testing.B, count int) {
	spec := rules.Guard{Name: "ssh", Limits: []rules.RateLimit{{Count: 3, Window: 10 * time.Second}, {Count: count, Window: 30 * time.Minute}},
		Ban: &rules.BanSpec{Duration: 10 * time.Minute}}
	bans := guard.NewBans(guard.BanOptions{})
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g := guard.New([]rules.Guard{spec}, nil, bans)
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/(1<<20), "new-MiB")
	offender := netip4(192, 0, 2, 66)
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	step := int64(time.Second) / 3300 // 3,300 spoofed SYN/s
	// The brute-forcer: two attempts that complete their handshakes, a
	// pause of about 60 s under the flood, then three more: the fifth
	// within 30 minutes is refused and banned, if the guard still knows
	// the first two.
	for range 2 {
		g.Allow(0, offender, now)
		confirm(g, offender)
	}
	for range floodSources {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], rng.Uint32())
		g.Allow(0, netip4(a[0], a[1], a[2], a[3]), now)
		now += step
	}
	for range 3 {
		g.Allow(0, offender, now)
	}
	banned := 0.0
	if bans.IsBanned(offender, now) {
		banned = 1
	}
	runtime.GC()
	dir := b.TempDir()
	path := filepath.Join(dir, "state.json")
	type state struct {
		Bans   []guard.BanSnapshot     `json:"bans,omitempty"`
		Guards []guard.CounterSnapshot `json:"guards,omitempty"`
	}
	start := time.Now()
	p := state{Bans: bans.Snapshot(), Guards: g.Snapshot()}
	if err := store.Save(path, &p); err != nil {
		b.Fatal(err)
	}
	save := time.Since(start)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	g.Expire(now)
	bans.Expire(now)
	expire := time.Since(start)
	b.ReportMetric(rssMiB(), "RSS-MiB")
	b.ReportMetric(float64(fi.Size())/(1<<20), "state-MiB")
	b.ReportMetric(float64(save.Microseconds())/1000, "save-ms")
	b.ReportMetric(float64(expire.Microseconds())/1000, "expire-ms")
	b.ReportMetric(banned, "offender-banned")
	var ev uint64
	for _, st := range g.Stats() {
		ev += st.Evictions
	}
	b.ReportMetric(float64(ev), "evictions")
}

func netip4(a, b, c, d byte) [16]byte {
	return [16]byte{10: 0xff, 11: 0xff, 12: a, 13: b, 14: c, 15: d}
}

// rssMiB reads the process' resident set size.
func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

func confirm(g *guard.Guards, a [16]byte) { g.Confirm(a) }

package guard

import (
	"context"
	"math"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/rules"
)

// t0 is the test clock's origin; at(s) is t0 + s seconds in unix nanoseconds.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec float64) int64 { return t0.UnixNano() + int64(sec*float64(time.Second)) }

func a16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

func addrN(i int) [16]byte {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).As16()
}

// cmpOpts compares addresses and times by value.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
}

// ssh is setup 7: at most 3 new connections in 10 s and 4 in 30 min.
var ssh = rules.Guard{Name: "ssh", Limits: []rules.RateLimit{{Count: 3, Window: 10 * time.Second}, {Count: 4, Window: 30 * time.Minute}}}

func TestAllowSSHBruteForce(t *testing.T) {
	type step struct {
		at   float64
		src  string
		want bool
		why  string
	}
	const a, b = "192.0.2.1", "2001:db8::7"
	tests := []struct {
		name  string
		steps []step
	}{
		{"three in 10 s, the fourth refused", []step{
			{0, a, true, "1st"},
			{1, a, true, "2nd"},
			{2, a, true, "3rd"},
			{3, a, false, "4th within 10 s"},
			{9.9, a, false, "still 3 admitted within 10 s"},
		}},
		{"refused attempts do not count: the 4th gets in when 10 s slide", []step{
			{0, a, true, "1st"},
			{1, a, true, "2nd"},
			{2, a, true, "3rd"},
			{3, a, false, "4th within 10 s"},
			{5, a, false, "refused, not recorded"},
			{10.5, a, true, "only 1 s and 2 s are within 10 s"},
			{25, a, false, "5th within 30 min"},
			{1799, a, false, "5th within 30 min"},
			{1800.5, a, true, "the attempt at 0 s left the 30 min window"},
			{1800.6, a, false, "1, 2, 10.5 and 1800.5 are within 30 min"},
		}},
		{"sources are independent", []step{
			{0, a, true, ""}, {0, a, true, ""}, {0, a, true, ""},
			{0, a, false, "a exceeded"},
			{0, b, true, "b is another source"},
		}},
		{"exactly one window later is outside it", []step{
			{0, a, true, ""}, {0, a, true, ""}, {0, a, true, ""},
			{10, a, true, "the window is (now-10s, now]"},
		}},
		{"allowlisted sources are never limited", []step{
			{0, "198.51.100.9", true, ""}, {0, "198.51.100.9", true, ""}, {0, "198.51.100.9", true, ""},
			{0, "198.51.100.9", true, "allowlisted"},
			{0, "198.51.100.9", true, "allowlisted"},
			{0, "fd00::1", true, ""}, {0, "fd00::1", true, ""}, {0, "fd00::1", true, ""},
			{0, "fd00::1", true, "allowlisted"},
		}},
	}
	allow := []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("fd00::/8")}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := New([]rules.Guard{ssh}, allow, nil)
			for k, s := range tt.steps {
				if got := g.Allow(0, a16(s.src), at(s.at)); got != s.want {
					t.Fatalf("step %d (t=%vs %s, %s): Allow = %v, want %v", k, s.at, s.src, s.why, got, s.want)
				}
			}
		})
	}
}

func TestAllowStats(t *testing.T) {
	g := New([]rules.Guard{{Name: "off"}, ssh}, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, nil)
	if diff := cmp.Diff([]int{0, 1, -1}, []int{g.Index("off"), g.Index("ssh"), g.Index("nope")}); diff != "" {
		t.Errorf("Index (-want +got):\n%s", diff)
	}
	for i := range 5 {
		g.Allow(1, a16("192.0.2.1"), at(float64(i)))
		g.Allow(1, a16("198.51.100.1"), at(float64(i)))
		g.Allow(0, a16("192.0.2.1"), at(float64(i))) // no limits: always admitted
	}
	if !g.Allow(-1, a16("192.0.2.1"), 0) || !g.Allow(2, a16("192.0.2.1"), 0) {
		t.Error("an out-of-range guard refused")
	}
	want := []GuardStats{
		{Name: "off", Allowed: 5, Tracked: 1},
		{Name: "ssh", Allowed: 3, Refused: 2, Allowlisted: 5, Tracked: 1, Proven: 1}, // refused: proven
	}
	if diff := cmp.Diff(want, g.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	// ssh's source is forgotten 30 min after its last attempt; "off" has
	// no window, so its source is as good as new at once.
	if n := g.Expire(at(4 + 1800)); n != 2 {
		t.Errorf("Expire 30 min after the last attempt forgot %d sources, want 2", n)
	}
	if n := g.Expire(at(10)); n != 0 {
		t.Errorf("second Expire forgot %d sources, want 0", n)
	}
	// "off" has no window: its source went with the first Expire too.
	for _, st := range g.Stats() {
		if st.Tracked != 0 {
			t.Errorf("guard %s tracks %d sources after Expire, want 0", st.Name, st.Tracked)
		}
	}
}

func TestGuardBoundedMemory(t *testing.T) {
	g := NewWithLimit([]rules.Guard{ssh}, nil, nil, 256)
	for i := range 5000 {
		g.Allow(0, addrN(i), at(float64(i)/100))
	}
	st := g.Stats()[0]
	if st.Tracked > 256 || st.Tracked < 200 || st.Evictions != uint64(5000-st.Tracked) {
		t.Errorf("after 5000 sources: tracked %d evictions %d, want at most 256 tracked and the rest evicted", st.Tracked, st.Evictions)
	}
	// The most recent source is still tracked: its 4th attempt is refused.
	for range 3 {
		g.Allow(0, addrN(4999), at(50))
	}
	if g.Allow(0, addrN(4999), at(50)) {
		t.Error("the most recent source was forgotten")
	}
}

func TestRefusalBansWithGrowth(t *testing.T) {
	spec := &rules.BanSpec{Duration: 10 * time.Minute, Factor: 2, Max: time.Hour}
	guard := ssh
	guard.Ban = spec
	bans := NewBans(BanOptions{})
	g := New([]rules.Guard{guard}, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, bans)
	src := a16("192.0.2.1")

	// offend makes src exceed 3 in 10 s at t and returns the resulting ban.
	offend := func(t0 float64) []Ban {
		for k := range 4 {
			g.Allow(0, src, at(t0+float64(k)/10))
		}
		return bans.List(at(t0 + 1))
	}
	got := offend(0)
	want := []Ban{{
		Scope: netip.MustParsePrefix("192.0.2.1/32"), Reason: "more than 3 new connections in 10s", Source: "ssh",
		Since: t0.Add(300 * time.Millisecond), Until: t0.Add(300*time.Millisecond + 10*time.Minute), Offences: 1,
	}}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Fatalf("ban after the 4th attempt (-want +got):\n%s", diff)
	}
	if !bans.IsBanned(src, at(599)) || bans.IsBanned(src, at(601)) {
		t.Error("the first ban does not last 10 minutes")
	}

	// Each repeat doubles, up to an hour: 20m, 40m, 60m, 60m. The 30 min
	// window resets between rounds because each round starts 2 h later.
	for k, wantFor := range []time.Duration{20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour} {
		start := float64(k+1) * 7200
		bans.Expire(at(start))
		got := offend(start)
		if len(got) != 1 || got[0].Until.Sub(got[0].Since) != wantFor || got[0].Offences != k+2 {
			t.Fatalf("offence %d: bans %+v, want one of %v", k+2, got, wantFor)
		}
	}
	// A day after the last ban ended, offences are forgotten: 10 minutes again.
	last := 4*7200.0 + 0.3 + 3600
	bans.Expire(at(last + 86400 + 1))
	got = offend(last + 86400 + 10)
	if len(got) != 1 || got[0].Until.Sub(got[0].Since) != 10*time.Minute || got[0].Offences != 1 {
		t.Fatalf("offence after 24 h of good behaviour: %+v, want a fresh 10m ban", got)
	}

	// Allowlisted sources are never banned.
	for k := range 10 {
		g.Allow(0, a16("198.51.100.1"), at(float64(k)))
	}
	if bans.IsBanned(a16("198.51.100.1"), at(10)) {
		t.Error("an allowlisted source was banned")
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		name string
		spec rules.BanSpec
		n    int
		want time.Duration
	}{
		{"first offence", rules.BanSpec{Duration: time.Minute, Factor: 3, Max: time.Hour}, 1, time.Minute},
		{"third offence", rules.BanSpec{Duration: time.Minute, Factor: 3, Max: time.Hour}, 3, 9 * time.Minute},
		{"capped by max", rules.BanSpec{Duration: time.Minute, Factor: 3, Max: time.Hour}, 5, time.Hour},
		{"factor 1 is fixed", rules.BanSpec{Duration: time.Minute, Factor: 1}, 50, time.Minute},
		{"factor 0 is fixed", rules.BanSpec{Duration: time.Minute}, 50, time.Minute},
		{"no max: capped at a year", rules.BanSpec{Duration: time.Hour, Factor: 10}, 1000, maxBan},
		{"offence 0 counts as the first", rules.BanSpec{Duration: time.Minute, Factor: 2}, 0, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Duration(tt.spec, tt.n); got != tt.want {
				t.Errorf("Duration(%+v, %d) = %v, want %v", tt.spec, tt.n, got, tt.want)
			}
		})
	}
}

// recorder collects OnBan/OnUnban calls delivered by Run.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) opts() BanOptions {
	return BanOptions{
		OnBan: func(a netip.Prefix, until time.Time) {
			r.mu.Lock()
			r.events = append(r.events, "ban "+a.String()+" until "+until.UTC().Format(time.TimeOnly))
			r.mu.Unlock()
		},
		OnUnban: func(a netip.Prefix) {
			r.mu.Lock()
			r.events = append(r.events, "unban "+a.String())
			r.mu.Unlock()
		},
	}
}

// wait returns the events once n arrived (at most 5 s).
func (r *recorder) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		if len(r.events) >= n {
			ev := append([]string(nil), r.events...)
			r.mu.Unlock()
			return ev
		}
		r.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Fatalf("got %d notifications %q, want %d", len(r.events), r.events, n)
	return nil
}

func runBans(t *testing.T, opts BanOptions) *Bans {
	b := NewBans(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

func TestManualBansAndNotifications(t *testing.T) {
	var rec recorder
	b := runBans(t, rec.opts())
	v4, v6 := netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8::1/128")

	if _, err := b.Add(v4, time.Hour, "scanner", at(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(v6, 10*time.Second, "test", at(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(netip.MustParsePrefix("::ffff:192.0.2.1/128"), 2*time.Hour, "longer", at(1)); err != nil {
		t.Fatal(err) // the mapped form is the same source: replaces the ban
	}
	want := []Ban{
		{Scope: v4, Reason: "longer", Source: SourceManual, Since: t0.Add(time.Second), Until: t0.Add(time.Second + 2*time.Hour), Offences: 2},
		{Scope: v6, Reason: "test", Source: SourceManual, Since: t0, Until: t0.Add(10 * time.Second), Offences: 1},
	}
	if diff := cmp.Diff(want, b.List(at(2)), cmpOpts); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if !b.IsBanned(a16("2001:db8::1"), at(9)) || b.IsBanned(a16("2001:db8::1"), at(10)) {
		t.Error("IsBanned does not follow the ban's end")
	}
	if n := b.Expire(at(11)); n != 1 {
		t.Errorf("Expire ended %d bans, want 1", n)
	}
	if !b.Del(v4) || b.Del(v4) {
		t.Error("Del does not report whether the address was banned")
	}
	if b.IsBanned(v4.Addr().As16(), at(12)) {
		t.Error("deleted ban still in force")
	}
	wantEvents := []string{
		"ban 192.0.2.1/32 until 13:00:00",
		"ban 2001:db8::1/128 until 12:00:10",
		"ban 192.0.2.1/32 until 14:00:01",
		"unban 2001:db8::1/128",
		"unban 192.0.2.1/32",
	}
	if diff := cmp.Diff(wantEvents, rec.wait(t, len(wantEvents))); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}

	for _, tt := range []struct {
		name string
		addr netip.Prefix
		d    time.Duration
		want error
	}{
		{"invalid scope", netip.Prefix{}, time.Hour, ErrBadScope},
		{"IPv4 wider than /8", netip.MustParsePrefix("10.0.0.0/7"), time.Hour, ErrBadScope},
		{"IPv6 wider than /16", netip.MustParsePrefix("::/0"), time.Hour, ErrBadScope},
		{"zero duration", v4, 0, ErrBadDuration},
		{"negative duration", v4, -time.Second, ErrBadDuration},
		{"longer than MaxBan (2540000h once printed a negative time)", v4, 2540000 * time.Hour, ErrBadDuration},
	} {
		if _, err := b.Add(tt.addr, tt.d, "", at(0)); err == nil || !errorsIs(err, tt.want) {
			t.Errorf("%s: Add = %v, want %v", tt.name, err, tt.want)
		}
	}
	if st := b.Stats(); st.Active != 0 || st.Banned != 3 || st.Expired != 1 {
		t.Errorf("Stats = %+v, want 0 active, 3 banned, 1 expired", st)
	}
}

func TestSnapshotRestore(t *testing.T) {
	spec := rules.BanSpec{Duration: 5 * time.Minute, Factor: 2, Max: time.Hour}
	b := NewBans(BanOptions{})
	b.Ban(a16("192.0.2.1"), spec, "ssh", "r1", at(0))    // until 5 min: 3 min left at 2 min
	b.Ban(a16("192.0.2.2"), spec, "ssh", "r2", at(-300)) // ends at 0: an offence record
	b.Ban(a16("192.0.2.3"), spec, "ssh", "r3", at(60))   // ends at 6 min
	snap := b.Snapshot()

	// Restart one minute after the snapshot taken at 2 min; one more ban
	// ended while the daemon was down.
	var rec recorder
	b2 := runBans(t, rec.opts())
	if n := b2.Restore(snap, at(5.5*60)); n != 1 {
		t.Errorf("Restore reports %d active bans, want 1", n)
	}
	want := []Ban{{Scope: netip.MustParsePrefix("192.0.2.3/32"), Reason: "r3", Source: "ssh", Since: t0.Add(time.Minute), Until: t0.Add(6 * time.Minute), Offences: 1}}
	if diff := cmp.Diff(want, b2.List(at(5.5*60)), cmpOpts); diff != "" {
		t.Errorf("List after Restore (-want +got):\n%s", diff)
	}
	// Only the restored ban is announced (to refill the kernel set); the
	// ones that ended while down are dropped silently.
	if diff := cmp.Diff([]string{"ban 192.0.2.3/32 until 12:06:00"}, rec.wait(t, 1)); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
	if b2.Expire(at(5.5*60)) != 0 {
		t.Error("Expire right after Restore ended bans: an unban storm")
	}
	// Offences survive the restart: the next ban of .2 is the second one.
	until := b2.Ban(a16("192.0.2.2"), spec, "ssh", "again", at(400))
	if got := until.Sub(time.Unix(0, at(400))); got != 10*time.Minute {
		t.Errorf("repeat offender's ban after restart = %v, want 10m", got)
	}
	// Snapshot -> Restore -> Snapshot is stable.
	b2.Expire(at(400))
	b3 := NewBans(BanOptions{})
	b3.Restore(b2.Snapshot(), at(400))
	if diff := cmp.Diff(b2.Snapshot(), b3.Snapshot(), cmpOpts); diff != "" {
		t.Errorf("second round trip (-want +got):\n%s", diff)
	}
	if st := b3.Stats(); st.Active != 1 || st.Records != 3 {
		t.Errorf("Stats after Restore = %+v, want 1 active of 3 records", st)
	}
}

func TestBansBounded(t *testing.T) {
	b := NewBans(BanOptions{MaxEntries: banShards * 4})
	spec := rules.BanSpec{Duration: time.Minute}
	for i := range 1000 {
		b.Ban(addrN(i), spec, "g", "r", at(float64(i)))
	}
	st := b.Stats()
	if st.Records > banShards*4 || st.Active != st.Records || st.Evictions != uint64(1000-st.Records) {
		t.Errorf("Stats = %+v, want at most %d records, all active, the rest evicted", st, banShards*4)
	}
	if !b.IsBanned(addrN(999), at(999)) {
		t.Error("the newest ban was evicted")
	}
}

func TestConcurrentAllowAndBans(t *testing.T) {
	guard := ssh
	guard.Ban = &rules.BanSpec{Duration: time.Second}
	bans := NewBans(BanOptions{OnBan: func(netip.Prefix, time.Time) {}})
	g := NewWithLimit([]rules.Guard{guard}, nil, bans, 1024)
	var wg sync.WaitGroup
	for r := range 8 {
		wg.Go(func() {
			for i := range 20000 {
				a := addrN((i*13 + r) % 500) // fewer sources than tracked: limits bite
				now := at(float64(i) / 100)
				if !bans.IsBanned(a, now) {
					g.Allow(0, a, now)
				}
				if i%1000 == 0 {
					bans.Expire(now)
					g.Expire(now)
					bans.List(now)
				}
			}
		})
	}
	wg.Wait()
	if st := g.Stats()[0]; st.Allowed == 0 || st.Refused == 0 {
		t.Errorf("Stats = %+v, want both admitted and refused attempts", st)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	guard := ssh
	guard.Ban = &rules.BanSpec{Duration: time.Hour}
	bans := NewBans(BanOptions{})
	g := NewWithLimit([]rules.Guard{guard}, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, bans, 1024)
	// Some sources banned, so IsBanned takes its locked path.
	for i := range 100 {
		bans.Ban(addrN(i), *guard.Ban, "ssh", "r", at(0))
	}
	tests := []struct {
		name string
		fn   func(i int)
	}{
		{"Allow, admitted, churning through more sources than tracked", func(i int) { g.Allow(0, addrN(1000+i%5000), at(float64(i))) }},
		{"Allow, refused, source already banned", func(i int) { g.Allow(0, addrN(5), at(1)) }},
		{"Allow, allowlisted", func(i int) { g.Allow(0, a16("198.51.100.1"), at(1)) }},
		{"IsBanned, banned", func(i int) { bans.IsBanned(addrN(i%100), at(1)) }},
		{"IsBanned, not banned", func(i int) { bans.IsBanned(addrN(500+i), at(1)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := 0
			if allocs := testing.AllocsPerRun(10000, func() { tt.fn(i); i++ }); allocs != 0 {
				t.Errorf("%v allocations per call, want 0", allocs)
			}
		})
	}
}

func BenchmarkAllow(b *testing.B) {
	const tracked = 100_000
	g := New([]rules.Guard{ssh}, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, nil)
	for i := range tracked {
		g.Allow(0, addrN(i), at(0))
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			g.Allow(0, addrN(i%tracked), at(float64(i)))
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				g.Allow(0, addrN(i%tracked), at(float64(i)))
				i += 7
			}
		})
	})
}

func BenchmarkIsBanned(b *testing.B) {
	const tracked = 100_000
	bans := NewBans(BanOptions{MaxEntries: 2 * tracked})
	for i := range tracked {
		bans.Ban(addrN(i), rules.BanSpec{Duration: time.Hour}, "ssh", "r", at(0))
	}
	for _, bc := range []struct {
		name string
		off  int
	}{{"banned", 0}, {"not-banned", tracked}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				bans.IsBanned(addrN(bc.off+i%tracked), at(1))
				i++
			}
		})
	}
	b.Run("nobody-banned", func(b *testing.B) {
		empty := NewBans(BanOptions{})
		b.ReportAllocs()
		for b.Loop() {
			empty.IsBanned(addrN(1), at(1))
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				bans.IsBanned(addrN(i%(2*tracked)), at(1))
				i += 7
			}
		})
	})
}

// BenchmarkMapBaseline is a bare map lookup over 100k addresses: the floor
// the per-packet benchmarks above are read against on a busy machine.
func BenchmarkMapBaseline(b *testing.B) {
	const tracked = 100_000
	m := make(map[[16]byte]int64, tracked)
	for i := range tracked {
		m[addrN(i)] = int64(i)
	}
	b.ReportAllocs()
	i := 0
	var sum int64
	for b.Loop() {
		sum += m[addrN(i%tracked)]
		i++
	}
	_ = sum
}

// TestDeadlinesSaturate bans for the longest time the config allows, with a
// clock near the end of int64: the ban ends at the end of time instead of
// wrapping into the past (which once banned nothing).
func TestDeadlinesSaturate(t *testing.T) {
	b := NewBans(BanOptions{})
	spec := rules.BanSpec{Duration: rules.MaxDuration, Factor: 2, Max: rules.MaxDuration}
	near := int64(math.MaxInt64 - int64(time.Hour))
	until := b.Ban(a16("192.0.2.1"), spec, "ssh", "r", near)
	if !b.IsBanned(a16("192.0.2.1"), near+int64(time.Minute)) || until.UnixNano() != math.MaxInt64 {
		t.Errorf("ban near the end of time: until %d, banned %v; want until MaxInt64, banned", until.UnixNano(), b.IsBanned(a16("192.0.2.1"), near+int64(time.Minute)))
	}
	if _, err := b.Add(netip.MustParsePrefix("192.0.2.2/32"), MaxBan, "", near); err != nil {
		t.Fatalf("Add(MaxBan): %v", err)
	}
	if !b.IsBanned(a16("192.0.2.2"), near+int64(time.Minute)) {
		t.Error("a manual ban for MaxBan near the end of time is not in force")
	}
}

// TestFloodKeepsProvenSources: a source that completed a handshake, or was
// refused, stays tracked while a flood of SYN-only sources many times the
// guard's size passes; the flood's sources evict each other, counted.
func TestFloodKeepsProvenSources(t *testing.T) {
	g := NewWithLimit([]rules.Guard{ssh}, nil, nil, 1024)
	handshake, refused := a16("192.0.2.1"), a16("192.0.2.2")
	g.Allow(0, handshake, at(0))
	g.Allow(0, handshake, at(0))
	g.Confirm(handshake)
	for range 4 {
		g.Allow(0, refused, at(0))
	}
	for i := range 100 * 1024 {
		g.Allow(0, addrN(i), at(1))
	}
	st := g.Stats()[0]
	if st.Proven != 2 || st.Evictions < 99*1024 {
		t.Errorf("after the flood: %+v, want 2 proven sources and the flood's evictions counted", st)
	}
	// The handshake source has 2 attempts in 10 s: one more, then refused.
	if !g.Allow(0, handshake, at(2)) || g.Allow(0, handshake, at(2)) {
		t.Error("the source with a completed handshake was forgotten during the flood")
	}
	if g.Allow(0, refused, at(2)) {
		t.Error("the refused source was forgotten during the flood")
	}
}

// TestGuardMemoryOnDemand: a guard with the largest count costs memory for
// the sources it sees, not for its count times its size (count 1000 once
// reserved about 1 GiB at start and on every reload).
func TestGuardMemoryOnDemand(t *testing.T) {
	big := rules.Guard{Name: "big", Limits: []rules.RateLimit{{Count: rules.MaxGuardCount, Window: time.Hour}}}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g := New([]rules.Guard{big, big, big, big}, nil, nil)
	runtime.ReadMemStats(&m1)
	if d := m1.TotalAlloc - m0.TotalAlloc; d > 1<<20 {
		t.Errorf("New with four guards of count %d allocated %d bytes, want under 1 MiB", rules.MaxGuardCount, d)
	}
	for i := range 1000 {
		g.Allow(0, addrN(i), at(0))
	}
	runtime.ReadMemStats(&m0)
	if d := m0.TotalAlloc - m1.TotalAlloc; d > 1000*512 {
		t.Errorf("1000 sources of one attempt allocated %d bytes, want under 512 each (not the 8 KB a ring of 1000 would take)", d)
	}
}

// TestMain runs the tests on the identity clock: they compare times built from fixed dates exactly.
func TestMain(m *testing.M) {
	clock.Set(clock.Identity{})
	os.Exit(m.Run())
}

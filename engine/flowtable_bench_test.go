package engine

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const benchTracked = 100_000

// benchSYN is an IPv4 TCP SYN; flow i differs in source address and port.
func benchSYN(p *Parsed, i int) {
	p.Kind, p.Family, p.Proto, p.TCPFlags = KindOK, 4, 6, tcpFlagSYN
	p.Src = [16]byte{10: 0xff, 11: 0xff, 12: 10, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)}
	p.Dst = [16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: 1}
	p.SrcPort, p.DstPort = uint16(i), 443
}

// benchTable returns a table of the default size tracking benchTracked
// flows (flows 0 .. benchTracked-1).
func benchTable(b *testing.B) *Table {
	tbl := NewTable(DefaultMaxFlows, DefaultTimeouts())
	var p Parsed
	for i := range benchTracked {
		benchSYN(&p, i)
		tbl.Admit(&p, 0, flowNow)
	}
	return tbl
}

// BenchmarkClassifyAdmitNew is the path of a NEW flow's first packet:
// Classify finds nothing, Admit inserts. The table tracks between 100,000
// and 200,000 flows throughout: every 100,000 new flows are deleted again
// with the timer stopped.
func BenchmarkClassifyAdmitNew(b *testing.B) {
	tbl := benchTable(b)
	var p Parsed
	grow(tbl, 2*benchTracked)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		w := i % benchTracked
		if w == 0 && i > 0 {
			b.StopTimer()
			for j := range benchTracked {
				benchSYN(&p, benchTracked+j)
				k, _ := KeyOf(&p)
				tbl.Delete(k)
			}
			b.StartTimer()
		}
		benchSYN(&p, benchTracked+w)
		if tbl.Classify(&p, flowNow) == ClassNew {
			tbl.Admit(&p, 1, flowNow)
		}
	}
}

// grow lets tbl's maps grow to hold n flows, then empties them again: the
// table grows with use, and a benchmark of the steady path starts from a
// table that has grown to its working set.
func grow(tbl *Table, n int) {
	var p Parsed
	for i := range n {
		benchSYN(&p, 1<<23+i)
		tbl.Admit(&p, 0, flowNow)
	}
	for i := range n {
		benchSYN(&p, 1<<23+i)
		k, _ := KeyOf(&p)
		tbl.Delete(k)
	}
}

// BenchmarkClassifyTracked looks up packets of tracked flows (retransmitted
// SYNs) among 100,000, and among 1,000 to show the cost without cache
// misses.
func BenchmarkClassifyTracked(b *testing.B) {
	for _, n := range []int{benchTracked, 1000} {
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			tbl := benchTable(b)
			var p Parsed
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				benchSYN(&p, i%n)
				if tbl.Classify(&p, flowNow) != ClassEstablished {
					b.Fatal("tracked flow not found")
				}
			}
		})
	}
}

// BenchmarkClassifyAdmitNewParallel is the NEW path from several queue
// readers at once, each with its own flows. Each op also deletes the
// reader's flow admitted 50,000 ops earlier (as a conntrack destroy event
// would), so every reader keeps 50,000 flows tracked.
func BenchmarkClassifyAdmitNewParallel(b *testing.B) {
	const window = 50_000
	tbl := NewTable(DefaultMaxFlows, DefaultTimeouts())
	grow(tbl, 2*window*runtime.GOMAXPROCS(0))
	var reader atomic.Int32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var p, old Parsed
		r := byte(reader.Add(1))
		for i := 0; pb.Next(); i = (i + 1) % (1 << 20) {
			benchSYN(&p, i)
			p.Dst[13] = r // readers never share a flow
			if tbl.Classify(&p, flowNow) == ClassNew {
				tbl.Admit(&p, 1, flowNow)
			}
			benchSYN(&old, (i-window)&(1<<20-1))
			old.Dst[13] = r
			k, _ := KeyOf(&old)
			tbl.Delete(k)
		}
	})
}

// BenchmarkBytesPerFlow reports the heap one tracked flow costs at
// 1,000,000 flows.
func BenchmarkBytesPerFlow(b *testing.B) {
	var per float64
	for range b.N {
		per = bytesPerFlow(b, 1_000_000)
	}
	b.ReportMetric(per, "B/flow")
}

// BenchmarkMillionFlows is the table at scale: 1,000,000 tracked flows.
// It reports the heap and the process's resident memory they cost, the
// per-packet cost of a tracked flow's packet and of a new flow's first
// packet (each new flow replacing the oldest, as conntrack destroys do),
// and the cost of the housekeeping sweep (Expire, every second) over the
// million flows when none has expired and when all have.
func BenchmarkMillionFlows(b *testing.B) {
	const n = 1_000_000
	fill := func() *Table {
		tbl := NewTable(n, DefaultTimeouts())
		var p Parsed
		for i := range n {
			benchSYN(&p, i)
			if !tbl.Admit(&p, 0, flowNow) {
				b.Fatalf("flow %d refused", i)
			}
		}
		return tbl
	}
	b.Run("memory", func(b *testing.B) {
		var per, rss float64
		for b.Loop() {
			per = bytesPerFlow(b, n)
			rss = residentMiB()
		}
		b.ReportMetric(per, "B/flow")
		b.ReportMetric(rss, "RSS-MiB")
	})
	tbl := fill()
	b.Run("tracked", func(b *testing.B) {
		var p Parsed
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			benchSYN(&p, i%n)
			if tbl.Classify(&p, flowNow) != ClassEstablished {
				b.Fatal("tracked flow not found")
			}
			i += 7919 // a prime stride: no cache-friendly order
		}
	})
	b.Run("new", func(b *testing.B) {
		var p, old Parsed
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			benchSYN(&p, n+i)
			if tbl.Classify(&p, flowNow) == ClassNew {
				tbl.Admit(&p, 1, flowNow)
			}
			benchSYN(&old, i)
			k, _ := KeyOf(&old)
			tbl.Delete(k)
			i++
		}
	})
	b.Run("sweep-none-expired", func(b *testing.B) {
		for b.Loop() {
			if tbl.Expire(flowNow) != 0 {
				b.Fatal("flows expired")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(tbl.Len()), "ns/flow")
	})
	b.Run("sweep-all-expired", func(b *testing.B) {
		var total time.Duration
		for b.Loop() {
			b.StopTimer()
			t := fill()
			b.StartTimer()
			t0 := time.Now()
			if got := t.Expire(flowNow + int64(24*time.Hour*10)); got != n {
				b.Fatalf("expired %d, want %d", got, n)
			}
			total += time.Since(t0)
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N)/n, "ns/flow")
	})
}

// residentMiB is the process's resident memory (VmRSS), 0 if unknown.
func residentMiB() float64 {
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(s), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

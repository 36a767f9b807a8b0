package engine

import (
	"fmt"
	"sync/atomic"
	"testing"
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

package ftp

import (
	"net/netip"
	"testing"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/rules"
)

// TestInspectAllocs proves the per-packet path allocation-free for packets
// that complete no announcement: a partial line, an ordinary command, a
// reply, a retransmission, a packet without payload. Creating an
// expectation (PASV/EPSV/PORT/EPRT with an IPv4 address) and taking it are
// allocation-free as well, the expectation map having room.
func TestInspectAllocs(t *testing.T) {
	h := newHelper(rules.FTP{})
	c := newCtl(t, cli4, srv4)
	h.inspectAt(c.next(fromClient, "USER anonymous\r\n"), t0) // creates the control state (allocates once)

	partial := c.at(fromClient, c.seq[fromClient], "RETR da")
	tests := []struct {
		name string
		p    func() pkt // a fresh packet in sequence per run
	}{
		{"partial line", func() pkt { return c.next(fromClient, "RETR da") }},
		{"whole command", func() pkt { return c.next(fromClient, "NOOP\r\n") }},
		{"reply", func() pkt { return c.next(fromServer, "200 NOOP ok.\r\n") }},
		{"multi-line reply", func() pkt { return c.next(fromServer, "211-Features:\r\n EPSV\r\n211 End\r\n") }},
		{"retransmission", func() pkt { return partial }},
		{"no payload", func() pkt { return c.at(fromClient, c.seq[fromClient], "") }},
	}
	for _, tt := range tests {
		pkts := make([]pkt, 101) // AllocsPerRun runs once more than asked
		for i := range pkts {
			pkts[i] = tt.p()
		}
		i := 0
		n := testing.AllocsPerRun(100, func() {
			h.inspectAt(pkts[i], t0)
			i++
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", tt.name, n)
		}
	}

	// Announcements and their use: each run announces a new port and takes
	// the expectation, so the map keeps its size.
	for _, tt := range []struct {
		name string
		line func(port uint16) string
		src  netip.Addr
		dst  netip.Addr
		d    int
	}{
		{"EPSV", func(p uint16) string { return "229 Entering Extended Passive Mode (|||" + itoa(p) + "|)\r\n" }, cli4.Addr(), srv4.Addr(), fromServer},
		{"PASV", func(p uint16) string {
			return "227 Entering Passive Mode (10,99,2,2," + itoa(p>>8) + "," + itoa(p&0xff) + ").\r\n"
		}, cli4.Addr(), srv4.Addr(), fromServer},
		{"PORT", func(p uint16) string { return "PORT 10,99,1,2," + itoa(p>>8) + "," + itoa(p&0xff) + "\r\n" }, srv4.Addr(), cli4.Addr(), fromClient},
		{"EPRT", func(p uint16) string { return "EPRT |1|10.99.1.2|" + itoa(p) + "|\r\n" }, srv4.Addr(), cli4.Addr(), fromClient},
	} {
		type pair struct{ ann, first pkt }
		pairs := make([]pair, 101)
		for i := range pairs {
			port := uint16(30000 + i)
			pairs[i] = pair{c.next(tt.d, tt.line(port)), syn(t, netip.AddrPortFrom(tt.src, 55555), netip.AddrPortFrom(tt.dst, port))}
		}
		i := 0
		n := testing.AllocsPerRun(100, func() {
			h.inspectAt(pairs[i].ann, t0)
			if _, ok := h.Take(&pairs[i].first.p, t0); !ok {
				t.Fatalf("%s: expectation %d not taken", tt.name, i)
			}
			i++
		})
		if n != 0 {
			t.Errorf("%s: %v allocations to create and take an expectation, want 0", tt.name, n)
		}
	}

	other := syn(t, netip.MustParseAddrPort("10.99.1.2:5000"), netip.MustParseAddrPort("10.99.2.2:80"))
	if n := testing.AllocsPerRun(100, func() { h.Take(&other.p, t0) }); n != 0 {
		t.Errorf("Take of an unexpected packet: %v allocations, want 0", n)
	}
}

func itoa(v uint16) string {
	if v == 0 {
		return "0"
	}
	var b [5]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

func BenchmarkInspect(b *testing.B) {
	h := newHelper(rules.FTP{})
	c := newCtl(b, cli4, srv4)
	pkts := make([]pkt, 1024)
	for i := range pkts {
		pkts[i] = c.next(fromClient, "NOOP\r\n")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := &pkts[i%len(pkts)]
		if i%len(pkts) == 0 {
			b.StopTimer()
			h = newHelper(rules.FTP{}) // the stream must start over
			b.StartTimer()
		}
		h.Inspect(&p.p, p.b, t0)
	}
}

func BenchmarkAnnounceAndTake(b *testing.B) {
	h := newHelper(rules.FTP{})
	c := newCtl(b, cli4, srv4)
	ann := c.next(fromServer, "229 Entering Extended Passive Mode (|||30017|)\r\n")
	first := syn(b, netip.MustParseAddrPort("10.99.1.2:5000"), netip.MustParseAddrPort("10.99.2.2:30017"))
	h.inspectAt(ann, t0)
	k, _ := engine.KeyOf(&ann.p)
	ctl := h.controls[k]
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.mu.Lock()
		h.announce(ctl, Announcement{Kind: KindEPSV, Port: 30017}, h.par.Load(), t0)
		h.mu.Unlock()
		if _, ok := h.Take(&first.p, t0); !ok {
			b.Fatal("not taken")
		}
	}
}

func BenchmarkTakeUnexpected(b *testing.B) {
	h := newHelper(rules.FTP{})
	c := newCtl(b, cli4, srv4)
	h.inspectAt(c.next(fromServer, "229 Entering Extended Passive Mode (|||30017|)\r\n"), t0)
	other := syn(b, netip.MustParseAddrPort("10.99.1.2:5000"), netip.MustParseAddrPort("10.99.2.2:80"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Take(&other.p, t0)
	}
}

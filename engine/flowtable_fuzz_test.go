package engine

import (
	"testing"
	"time"
)

// FuzzFlowTableAccounting drives a small table with arbitrary sequences of
// packets (any TCP flags, either direction, UDP, ICMP echo and errors),
// conntrack events, deletes and sweeps, and checks after every operation
// that the table never panics, never holds more than its maximum, and that
// its per-state counters add up to its length.
//
// Each operation is 4 bytes: kind, flow, TCP flags / ICMP type, seconds to
// advance the clock.
func FuzzFlowTableAccounting(f *testing.F) {
	f.Add([]byte{0, 0, tcpFlagSYN, 0, 0, 0x80, tcpFlagSYN | tcpFlagACK, 1, 0, 0, tcpFlagACK, 1, 0, 0, tcpFlagFIN | tcpFlagACK, 1})
	f.Add([]byte{1, 1, 0, 0, 1, 0x81, 0, 1, 2, 2, 8, 0, 2, 0x82, 0, 0, 3, 1, 0, 0, 5, 0, 0, 200})
	f.Add([]byte{0, 3, tcpFlagSYN, 0, 4, 3, byte(TCPEstablished), 0, 6, 3, 0, 0, 7, 0, 0, 0, 0, 4, tcpFlagSYN, 0, 0, 5, tcpFlagSYN, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const max = 4
		tbl := NewTable(max, DefaultTimeouts())
		now := flowNow
		var p Parsed
		for i := 0; i+4 <= len(ops); i += 4 {
			kind, flow, arg := ops[i], ops[i+1], ops[i+2]
			now += int64(ops[i+3]) * sec
			fuzzPacket(&p, flow, arg)
			switch kind % 8 {
			case 0, 1, 2: // a packet: classify, admit if NEW
				if tbl.Classify(&p, now) == ClassNew {
					tbl.Admit(&p, int(flow), now)
				}
			case 3: // an ICMP error quoting the packet
				q := p
				p = Parsed{Kind: KindOK, HasInner: true,
					Inner: InnerTuple{Proto: q.Proto, Src: q.Src, Dst: q.Dst, SrcPort: q.SrcPort | q.ICMPID, DstPort: q.DstPort}}
				p.Family, p.Proto, p.ICMPType, p.Src, p.Dst = 4, ctICMP, 3, q.Dst, q.Src
				if c := tbl.Classify(&p, now); c != ClassRelated && c != ClassInvalid {
					t.Fatalf("ICMP error classified %v", c)
				}
			case 4: // a conntrack update
				k, _ := KeyOf(&p)
				tbl.Update(k, FlowUpdate{TCPState: TCPState(arg % uint8(NumTCPStates+1)), Replied: arg&0x10 != 0, Assured: arg&0x20 != 0, Timeout: time.Duration(arg) * time.Second}, now)
			case 5:
				tbl.Expire(now)
			case 6:
				k, _ := KeyOf(&p)
				tbl.Delete(k)
			case 7: // a related flow
				parent, _ := KeyOf(&p)
				fuzzPacket(&p, flow+1, arg)
				tbl.AdmitRelated(&p, parent, -1, now)
			}
			checkFlowAccounting(t, tbl, max)
		}
	})
}

// fuzzPacket makes p a packet of one of a few flows: the low bits of flow
// pick the flow, bit 7 the direction; arg is the TCP flags or ICMP type.
func fuzzPacket(p *Parsed, flow, arg uint8) {
	*p = Parsed{Kind: KindOK}
	p.Family = 4
	a := [16]byte{10: 0xff, 11: 0xff, 12: 10, 15: 1}
	b := [16]byte{10: 0xff, 11: 0xff, 12: 10, 15: 2}
	ap, bp := 40000+uint16(flow&7), uint16(22)
	if flow&0x80 != 0 {
		a, b, ap, bp = b, a, bp, ap
	}
	p.Src, p.Dst = a, b
	switch flow >> 3 & 3 {
	case 0:
		p.Proto, p.TCPFlags, p.SrcPort, p.DstPort = ctTCP, arg, ap, bp
	case 1:
		p.Proto, p.SrcPort, p.DstPort = ctUDP, ap, bp
	case 2:
		p.Proto, p.ICMPType, p.ICMPID = ctICMP, arg&8, uint16(flow&7) // echo request (8) or reply (0)
	default:
		p.Proto = 47
	}
}

func checkFlowAccounting(t *testing.T, tbl *Table, max int) {
	t.Helper()
	c := tbl.Counts()
	byProto := c.UDP + c.ICMP + c.Other
	for _, n := range c.TCP {
		byProto += n
	}
	if n := tbl.Len(); n != byProto || n > max || n < 0 || c.Unreplied > n || c.Assured > n || c.TCP[TCPNone] != 0 {
		t.Fatalf("Len %d, max %d, counts %+v", n, max, c)
	}
	walked := 0
	tbl.clock = func() int64 { return 0 } // nothing has expired yet
	tbl.Walk(func(FlowInfo) bool { walked++; return true })
	if walked != tbl.Len() {
		t.Fatalf("Walk saw %d flows, Len is %d", walked, tbl.Len())
	}
	rel := 0
	for i := range tbl.shards {
		rel += len(tbl.shards[i].rel)
	}
	if rel > tbl.Len() {
		t.Fatalf("%d parent records for %d flows", rel, tbl.Len())
	}
}

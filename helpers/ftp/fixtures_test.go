package ftp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/rules"
)

// Packet fixtures: TCP segments built with gopacket, serialized and decoded
// by the engine's Decoder, so the helper sees what a queue reader hands it.

var (
	cli4 = netip.MustParseAddrPort("10.99.1.2:40000")
	srv4 = netip.MustParseAddrPort("10.99.2.2:21")
	cli6 = netip.MustParseAddrPort("[fd99:1::2]:40000")
	srv6 = netip.MustParseAddrPort("[fd99:2::2]:21")
)

// t0 is the fixtures' clock: unix nanoseconds.
const t0 = int64(1_700_000_000) * int64(time.Second)

// pkt is a decoded packet fixture.
type pkt struct {
	b []byte
	p engine.Parsed
}

// segment builds a TCP segment (ACK, PSH when it has payload) from src to
// dst with sequence number seq.
func segment(tb testing.TB, src, dst netip.AddrPort, seq uint32, flags uint8, payload []byte) pkt {
	tb.Helper()
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: seq, Ack: 1,
		Window: 512, ACK: flags&0x10 != 0, PSH: len(payload) > 0, SYN: flags&0x02 != 0, RST: flags&0x04 != 0}
	var ip gopacket.SerializableLayer
	if src.Addr().Is4() {
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip4)
		ip = ip4
	} else {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip6)
		ip = ip6
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, tcp, gopacket.Payload(payload)); err != nil {
		tb.Fatal(err)
	}
	var out pkt
	out.b = buf.Bytes()
	engine.NewDecoder().Decode(out.b, &out.p)
	if out.p.Kind != engine.KindOK || out.p.PayloadLen != len(payload) {
		tb.Fatalf("fixture does not decode: kind %d, payload %d", out.p.Kind, out.p.PayloadLen)
	}
	return out
}

// ctl is one control connection between client and server: it numbers the
// bytes of each direction as TCP does.
type ctl struct {
	tb             testing.TB
	client, server netip.AddrPort
	seq            [2]uint32 // next sequence number: fromClient, fromServer
}

func newCtl(tb testing.TB, client, server netip.AddrPort) *ctl {
	return &ctl{tb: tb, client: client, server: server, seq: [2]uint32{1000, 5000}}
}

// next returns the next segment in direction d carrying data, and moves the
// sequence number on.
func (c *ctl) next(d int, data string) pkt {
	p := c.at(d, c.seq[d], data)
	c.seq[d] += uint32(len(data))
	return p
}

// at returns a segment in direction d at sequence number seq.
func (c *ctl) at(d int, seq uint32, data string) pkt {
	if d == fromServer {
		return segment(c.tb, c.server, c.client, seq, 0x10, []byte(data))
	}
	return segment(c.tb, c.client, c.server, seq, 0x10, []byte(data))
}

// syn returns the first packet of a data connection from src to dst.
func syn(tb testing.TB, src, dst netip.AddrPort) pkt {
	return segment(tb, src, dst, 77, 0x02, nil)
}

func newHelper(c rules.FTP) *Helper {
	if c.Expiry == 0 {
		c.Expiry = 30 * time.Second
	}
	return New(Options{Config: c})
}

// inspect feeds p to h at now.
func (h *Helper) inspectAt(p pkt, now int64) { h.Inspect(&p.p, p.b, now) }

// summary is an expectation as tests compare it.
type summary struct {
	Kind Kind
	Src  string
	Dst  string
}

func summaries(h *Helper) []summary {
	var out []summary
	for _, e := range h.Expectations() {
		out = append(out, summary{Kind: e.Kind, Src: e.Src.String(), Dst: e.Dst.String()})
	}
	return out
}

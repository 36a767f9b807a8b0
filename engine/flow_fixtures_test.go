package engine

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Packet fixtures for the flow table tests: each is built with gopacket,
// serialized, and decoded by the engine's Decoder, so the table sees what a
// queue reader would hand it.

// flowPacket is a packet fixture: its bytes and what the decoder made of them.
type flowPacket struct {
	b []byte
	p Parsed
}

// flowDecode decodes b and fails the test unless the decoder accepts it.
func flowDecode(tb testing.TB, b []byte) flowPacket {
	tb.Helper()
	var p Parsed
	NewDecoder().Decode(b, &p)
	if p.Kind != KindOK {
		tb.Fatalf("fixture does not decode: kind %d", p.Kind)
	}
	return flowPacket{b: b, p: p}
}

// flowSerialize serializes an IP packet from src to dst carrying ls.
func flowSerialize(tb testing.TB, src, dst netip.Addr, proto layers.IPProtocol, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	var ip gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	if src.Is4() {
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ip, nl = ip4, ip4
	} else {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ip, nl = ip6, ip6
	}
	for _, l := range ls {
		if c, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok {
			if err := c.SetNetworkLayerForChecksum(nl); err != nil {
				tb.Fatal(err)
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, append([]gopacket.SerializableLayer{ip}, ls...)...); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// flowTCP is a TCP segment from src to dst with flags given as letters
// (S SYN, A ACK, F FIN, R RST, P PSH, U URG, E ECE, C CWR), e.g. "SA".
func flowTCP(tb testing.TB, src, dst string, flags string) flowPacket {
	tb.Helper()
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(s.Port()), DstPort: layers.TCPPort(d.Port()), Seq: 1000, Window: 64240,
		SYN: strings.Contains(flags, "S"), ACK: strings.Contains(flags, "A"), FIN: strings.Contains(flags, "F"),
		RST: strings.Contains(flags, "R"), PSH: strings.Contains(flags, "P"), URG: strings.Contains(flags, "U"),
		ECE: strings.Contains(flags, "E"), CWR: strings.Contains(flags, "C")}
	return flowDecode(tb, flowSerialize(tb, s.Addr(), d.Addr(), layers.IPProtocolTCP, tcp))
}

// flowUDP is a UDP datagram from src to dst with a few payload bytes.
func flowUDP(tb testing.TB, src, dst string) flowPacket {
	tb.Helper()
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	udp := &layers.UDP{SrcPort: layers.UDPPort(s.Port()), DstPort: layers.UDPPort(d.Port())}
	return flowDecode(tb, flowSerialize(tb, s.Addr(), d.Addr(), layers.IPProtocolUDP, udp, gopacket.Payload("hello")))
}

// flowEcho is an ICMP (IPv4) or ICMPv6 echo request (req) or reply.
func flowEcho(tb testing.TB, src, dst string, id uint16, req bool) flowPacket {
	tb.Helper()
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	if s.Is4() {
		typ := uint8(layers.ICMPv4TypeEchoReply)
		if req {
			typ = layers.ICMPv4TypeEchoRequest
		}
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: id, Seq: 1}
		return flowDecode(tb, flowSerialize(tb, s, d, layers.IPProtocolICMPv4, icmp, gopacket.Payload("ping")))
	}
	typ := uint8(layers.ICMPv6TypeEchoReply)
	if req {
		typ = layers.ICMPv6TypeEchoRequest
	}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	echo := &layers.ICMPv6Echo{Identifier: id, SeqNumber: 1}
	return flowDecode(tb, flowSerialize(tb, s, d, layers.IPProtocolICMPv6, icmp, echo, gopacket.Payload("ping")))
}

// flowICMPType is an ICMP or ICMPv6 message of type typ carrying no echo id
// (e.g. a router advertisement), from src to dst.
func flowICMPType(tb testing.TB, src, dst string, typ uint8) flowPacket {
	tb.Helper()
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	if s.Is4() {
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0)}
		return flowDecode(tb, flowSerialize(tb, s, d, layers.IPProtocolICMPv4, icmp))
	}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	return flowDecode(tb, flowSerialize(tb, s, d, layers.IPProtocolICMPv6, icmp, gopacket.Payload{0, 0, 0, 0}))
}

// flowICMPError is an ICMP error from src to dst quoting the packet quoted:
// destination unreachable (port unreachable) for IPv4, ICMPv6 destination
// unreachable (port unreachable) for IPv6.
func flowICMPError(tb testing.TB, src, dst string, quoted flowPacket) flowPacket {
	tb.Helper()
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	q := quoted.b
	if s.Is4() {
		if len(q) > 28 {
			q = q[:28] // IPv4 header and the first 8 bytes of the transport header
		}
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort)}
		return flowDecode(tb, flowSerialize(tb, s, d, layers.IPProtocolICMPv4, icmp, gopacket.Payload(q)))
	}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeDestinationUnreachable, layers.ICMPv6CodePortUnreachable)}
	return flowDecode(tb, flowSerialize(tb, s, d, layers.IPProtocolICMPv6, icmp, gopacket.Payload(append([]byte{0, 0, 0, 0}, q...))))
}

// flowGRE is an IPv4 packet of protocol 47 (GRE, no ports).
func flowGRE(tb testing.TB, src, dst string) flowPacket {
	tb.Helper()
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	return flowDecode(tb, flowSerialize(tb, s, d, layers.IPProtocolGRE, gopacket.Payload{0, 0, 0x08, 0}))
}

// flowNow is the clock the tests start at: 2024-01-01T00:00:00Z.
const flowNow = int64(1704067200) * 1e9

// sec is one second in unix nanoseconds.
const sec = int64(1e9)

// flowSrc and flowDst return a decoded packet's endpoints.
func flowSrc(p *Parsed) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(p.Src).Unmap(), p.SrcPort)
}

func flowDst(p *Parsed) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(p.Dst).Unmap(), p.DstPort)
}

package engine

import (
	"encoding/binary"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/nfqfw/nfqfw/rules"
)

// Decoder decodes queued packets. One per queue reader; not safe for
// concurrent use. It holds one gopacket DecodingLayerParser per IP version
// and the layers they decode into, so decoding a packet allocates nothing.
type Decoder struct {
	ip4   ip4Layer
	ip6   ip6Layer
	tcp   tcpLayer
	udp   udpLayer
	sctp  sctpLayer
	icmp4 icmp4Layer
	icmp6 icmp6Layer

	parse4, parse6 *gopacket.DecodingLayerParser
	decoded        []gopacket.LayerType
}

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder {
	d := &Decoder{decoded: make([]gopacket.LayerType, 0, 4)}
	// Room for the most options 40 bytes of IPv4 options can hold, so that
	// gopacket never grows the slice.
	d.ip4.Options = make([]layers.IPv4Option, 0, 40)
	d.parse4 = newParser(layers.LayerTypeIPv4, &d.ip4, &d.tcp, &d.udp, &d.sctp, &d.icmp4)
	d.parse6 = newParser(layers.LayerTypeIPv6, &d.ip6, &d.tcp, &d.udp, &d.sctp, &d.icmp6)
	return d
}

// newParser returns a parser that starts at first and stops quietly at a
// layer it has no decoder for.
func newParser(first gopacket.LayerType, ls ...gopacket.DecodingLayer) *gopacket.DecodingLayerParser {
	p := gopacket.NewDecodingLayerParser(first)
	p.SetDecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
	for _, l := range ls {
		p.AddDecodingLayer(l)
	}
	p.IgnoreUnsupported = true
	// The layers check their bounds. Should one still panic, the panic
	// reaches the queue reader, which counts it and answers with the
	// failure verdict; gopacket would turn it into an allocated error that
	// looks like a malformed packet.
	p.IgnorePanic = true
	return p
}

// Decode resets p and fills it from b, which starts at the IP header
// (NFQUEUE payload, no L2 header). It never fails: a packet it cannot use
// gets p.Kind = KindMalformed, KindFragment or KindUnsupported.
//
// Decode sets p to its zero value first: the caller sets Hook, InIface,
// OutIface and Mark after Decode returns.
//
// Which fields are set:
//   - KindOK: everything that applies to the protocol. Ports for TCP, UDP and
//     SCTP; TCP flags, seq, ack and window; ICMPType/ICMPCode for ICMP and
//     ICMPv6, ICMPID for echo request/reply, Inner for errors; PayloadStart
//     and PayloadLen for TCP and UDP data (0 otherwise). Other protocols
//     (GRE, ESP, ...) only have Proto and the IP fields.
//   - KindFragment (not the first fragment): Family, Src, Dst, TTL, Proto and
//     IPHeaderLen.
//   - KindMalformed: Family once the version is known; Src, Dst, TTL and
//     Proto (as the first header says) once the fixed IP header is complete,
//     so that a log line can name the source; IPHeaderLen and the upper-layer
//     Proto once the IP header with its extension headers is valid (the
//     transport header is what is wrong).
//   - KindUnsupported: nothing else.
//
// An IPv4 address is stored in its IPv4-mapped IPv6 form. The IP total
// length (IPv6 payload length) bounds the packet unless it is 0 or larger
// than b, as in GSO packets: then b is the packet. Checksums are never
// verified (GSO packets do not have them yet).
func (d *Decoder) Decode(b []byte, p *Parsed) {
	*p = Parsed{}
	if len(b) == 0 {
		p.Kind = KindMalformed
		return
	}
	switch b[0] >> 4 {
	case 4:
		d.decode4(b, p)
	case 6:
		d.decode6(b, p)
	default:
		p.Kind = KindUnsupported
	}
}

func (d *Decoder) decode4(b []byte, p *Parsed) {
	p.Family = rules.FamilyIPv4
	if len(b) < ipv4HeaderLen {
		p.Kind = KindMalformed
		return
	}
	p.TTL = b[8]
	p.Proto = b[9]
	mapIPv4(&p.Src, b[12:16])
	mapIPv4(&p.Dst, b[16:20])
	err := d.parse4.DecodeLayers(b, &d.decoded)
	if len(d.decoded) == 0 { // the IPv4 header itself is bad
		p.Kind = KindMalformed
		return
	}
	ip := &d.ip4.IPv4
	p.IPHeaderLen = int(ip.IHL) * 4
	switch {
	case ip.FragOffset != 0:
		p.Kind = KindFragment
		return
	case err != nil:
		p.Kind = KindMalformed
		return
	}
	p.FirstFrag = ip.Flags&layers.IPv4MoreFragments != 0
	d.transport(p, d.ip4.NextLayerType())
}

func (d *Decoder) decode6(b []byte, p *Parsed) {
	p.Family = rules.FamilyIPv6
	if len(b) < ipv6HeaderLen {
		p.Kind = KindMalformed
		return
	}
	p.TTL = b[7]
	p.Proto = b[6]
	copy(p.Src[:], b[8:24])
	copy(p.Dst[:], b[24:40])
	err := d.parse6.DecodeLayers(b, &d.decoded)
	if len(d.decoded) == 0 { // the IPv6 header or its extension headers are bad
		p.Kind = KindMalformed
		return
	}
	c := &d.ip6.chain
	p.Proto = c.proto
	p.IPHeaderLen = c.off
	switch {
	case c.fragOff != 0:
		p.Kind = KindFragment
		return
	case err != nil:
		p.Kind = KindMalformed
		return
	}
	p.FirstFrag = c.firstFrag
	d.transport(p, d.ip6.NextLayerType())
}

// transport fills p from the transport layer the parser decoded after the IP
// header; want is the layer the IP header names.
func (d *Decoder) transport(p *Parsed, want gopacket.LayerType) {
	if want == gopacket.LayerTypeZero {
		p.Kind = KindOK // a protocol without ports
		return
	}
	// The parser stops silently before an empty IP payload: the header is
	// missing.
	if len(d.decoded) < 2 || d.decoded[1] != want {
		p.Kind = KindMalformed
		return
	}
	switch want {
	case layers.LayerTypeTCP:
		t := &d.tcp
		p.SrcPort, p.DstPort = t.srcPort, t.dstPort
		p.TCPFlags = t.flags
		p.TCPSeq, p.TCPAck, p.TCPWindow = t.seq, t.ack, t.window
		p.PayloadStart = p.IPHeaderLen + t.hdrLen
		p.PayloadLen = len(t.payload)
	case layers.LayerTypeUDP:
		u := &d.udp.UDP
		p.SrcPort, p.DstPort = uint16(u.SrcPort), uint16(u.DstPort)
		p.PayloadStart = p.IPHeaderLen + udpHeaderLen
		p.PayloadLen = len(u.Payload)
	case layers.LayerTypeSCTP:
		s := &d.sctp.SCTP
		p.SrcPort, p.DstPort = uint16(s.SrcPort), uint16(s.DstPort)
	case layers.LayerTypeICMPv4:
		i := &d.icmp4.ICMPv4
		p.ICMPType, p.ICMPCode = i.TypeCode.Type(), i.TypeCode.Code()
		switch p.ICMPType {
		case icmp4EchoReply, icmp4EchoRequest:
			p.ICMPID = i.Id
		case icmp4DestUnreachable, icmp4SourceQuench, icmp4Redirect, icmp4TimeExceeded, icmp4ParamProblem:
			p.HasInner = quoteIPv4(i.Payload, &p.Inner)
		}
	case layers.LayerTypeICMPv6:
		i := &d.icmp6.ICMPv6
		p.ICMPType, p.ICMPCode = i.TypeCode.Type(), i.TypeCode.Code()
		// i.Payload starts after type, code and checksum; the layer made
		// sure it holds at least the 4 rest-of-header bytes.
		switch p.ICMPType {
		case icmp6EchoRequest, icmp6EchoReply:
			p.ICMPID = binary.BigEndian.Uint16(i.Payload[0:2])
		case icmp6DestUnreachable, icmp6PacketTooBig, icmp6TimeExceeded, icmp6ParamProblem:
			p.HasInner = quoteIPv6(i.Payload[4:], &p.Inner)
		}
	}
	p.Kind = KindOK
}

// ICMP types the decoder looks into.
const (
	icmp4EchoReply       = 0
	icmp4DestUnreachable = 3
	icmp4SourceQuench    = 4
	icmp4Redirect        = 5
	icmp4EchoRequest     = 8
	icmp4TimeExceeded    = 11
	icmp4ParamProblem    = 12

	icmp6DestUnreachable = 1
	icmp6PacketTooBig    = 2
	icmp6TimeExceeded    = 3
	icmp6ParamProblem    = 4
	icmp6EchoRequest     = 128
	icmp6EchoReply       = 129
)

// quoteIPv4 fills in from q, the packet an ICMPv4 error quotes: its IPv4
// header and, usually, the first 8 bytes of its transport header. A quote
// cut short still yields the addresses and protocol; ports only when their
// bytes are there. It reports false when not even the IPv4 header is there.
func quoteIPv4(q []byte, in *InnerTuple) bool {
	if len(q) < ipv4HeaderLen || q[0]>>4 != 4 {
		return false
	}
	hl := int(q[0]&0x0f) * 4
	if hl < ipv4HeaderLen || hl > len(q) {
		return false
	}
	in.Proto = q[9]
	mapIPv4(&in.Src, q[12:16])
	mapIPv4(&in.Dst, q[16:20])
	if binary.BigEndian.Uint16(q[6:8])&0x1fff == 0 {
		quotedPorts(q[hl:], in, false)
	}
	return true
}

// quoteIPv6 is quoteIPv4 for the packet an ICMPv6 error quotes. When its
// extension headers are cut short, Proto is the header the quote ends in.
func quoteIPv6(q []byte, in *InnerTuple) bool {
	if len(q) < ipv6HeaderLen || q[0]>>4 != 6 {
		return false
	}
	copy(in.Src[:], q[8:24])
	copy(in.Dst[:], q[24:40])
	c := walkIPv6(q)
	in.Proto = c.proto
	if c.status == chainOK && c.fragOff == 0 {
		quotedPorts(q[c.off:], in, true)
	}
	return true
}

// quotedPorts reads the ports (or the echo identifier) of a quoted transport
// header t when they are there.
func quotedPorts(t []byte, in *InnerTuple, v6 bool) {
	switch in.Proto {
	case protoTCP, protoUDP, protoSCTP:
		if len(t) >= 4 {
			in.SrcPort = binary.BigEndian.Uint16(t[0:2])
			in.DstPort = binary.BigEndian.Uint16(t[2:4])
		}
	case protoICMPv4, protoICMPv6:
		if len(t) < 6 || (in.Proto == protoICMPv6) != v6 {
			return
		}
		switch {
		case !v6 && (t[0] == icmp4EchoRequest || t[0] == icmp4EchoReply),
			v6 && (t[0] == icmp6EchoRequest || t[0] == icmp6EchoReply):
			in.SrcPort = binary.BigEndian.Uint16(t[4:6])
		}
	}
}

// mapIPv4 stores the IPv4 address a4 in dst in its IPv4-mapped IPv6 form
// (::ffff:a.b.c.d); dst must be zero.
func mapIPv4(dst *[16]byte, a4 []byte) {
	dst[10], dst[11] = 0xff, 0xff
	copy(dst[12:], a4)
}

package engine

import (
	"encoding/binary"
	"errors"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// The decoder runs gopacket's DecodingLayerParser over the layers below.
// Each layer checks, before gopacket's own code runs, every condition under
// which gopacket would return an error: gopacket builds its errors with
// fmt.Errorf and errors.New on every call, and the packet path must not
// allocate even for garbage. The errors here are made once and only tell the
// decoder "malformed"; they never leave the package.
//
// Two layers are written here instead of wrapped: IPv6 (gopacket's layer
// rejects a payload length of 0 without a jumbo option, which GSO packets
// have, and does not skip fragment, routing or AH headers on its own) and TCP
// (gopacket's layer parses options, and allocates for every MPTCP option).

var (
	errShort     = errors.New("header truncated")
	errHeaderLen = errors.New("bad header length")
	errOptions   = errors.New("bad IPv4 options")
	errExtChain  = errors.New("bad IPv6 extension header chain")
)

// Fixed header sizes.
const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	tcpHeaderLen  = 20
	udpHeaderLen  = 8
	sctpHeaderLen = 12
	icmpHeaderLen = 8 // ICMPv4 and ICMPv6: type, code, checksum and 4 bytes of rest-of-header
	fragHeaderLen = 8 // IPv6 fragment header
)

// IANA protocol numbers the decoder looks at.
const (
	protoHopByHop = 0
	protoICMPv4   = 1
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoESP      = 50
	protoAH       = 51
	protoICMPv6   = 58
	protoNoNext   = 59
	protoDestOpts = 60
	protoSCTP     = 132
)

// transportType returns the layer the decoder parses after an IP header whose
// upper-layer protocol is proto, or gopacket.LayerTypeZero for a protocol it
// only records (GRE, ESP, ...). ICMPv4 is only decoded inside IPv4 and
// ICMPv6 only inside IPv6.
func transportType(proto uint8, v6 bool) gopacket.LayerType {
	switch proto {
	case protoTCP:
		return layers.LayerTypeTCP
	case protoUDP:
		return layers.LayerTypeUDP
	case protoSCTP:
		return layers.LayerTypeSCTP
	case protoICMPv4:
		if !v6 {
			return layers.LayerTypeICMPv4
		}
	case protoICMPv6:
		if v6 {
			return layers.LayerTypeICMPv6
		}
	}
	return gopacket.LayerTypeZero
}

// ip4Layer is gopacket's IPv4 layer with its error conditions checked first,
// and a next layer that is the transport header for a first fragment too
// (gopacket stops at any fragment).
type ip4Layer struct {
	layers.IPv4
}

func (l *ip4Layer) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < ipv4HeaderLen {
		return errShort
	}
	hl := int(data[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(data[2:4]))
	if total == 0 || total > len(data) {
		// GSO: the total length is 0 (over 64 KiB) or not yet fixed up.
		total = len(data)
	}
	if hl < ipv4HeaderLen || hl > total {
		return errHeaderLen
	}
	if !ip4OptionsOK(data[ipv4HeaderLen:hl]) {
		return errOptions
	}
	return l.IPv4.DecodeFromBytes(data, df)
}

func (l *ip4Layer) NextLayerType() gopacket.LayerType {
	if l.FragOffset != 0 {
		return gopacket.LayerTypeFragment
	}
	return transportType(uint8(l.Protocol), false)
}

// ip4OptionsOK reports whether gopacket can walk the IPv4 options in opts:
// every option but End (0) and NOP (1) has a length byte of at least 2 that
// stays inside the header.
func ip4OptionsOK(opts []byte) bool {
	for len(opts) > 0 {
		switch opts[0] {
		case 0:
			return true
		case 1:
			opts = opts[1:]
		default:
			if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
				return false
			}
			opts = opts[opts[1]:]
		}
	}
	return true
}

// ip6Layer decodes the IPv6 header and walks its extension headers up to the
// upper-layer header.
type ip6Layer struct {
	chain   ip6Chain
	payload []byte
}

func (l *ip6Layer) CanDecode() gopacket.LayerClass { return layers.LayerTypeIPv6 }
func (l *ip6Layer) LayerPayload() []byte           { return l.payload }

func (l *ip6Layer) NextLayerType() gopacket.LayerType {
	if l.chain.fragOff != 0 {
		return gopacket.LayerTypeFragment
	}
	return transportType(l.chain.proto, true)
}

func (l *ip6Layer) DecodeFromBytes(data []byte, _ gopacket.DecodeFeedback) error {
	l.chain, l.payload = ip6Chain{}, nil
	if len(data) < ipv6HeaderLen {
		return errShort
	}
	// A payload length of 0 (jumbogram, GSO) or past the buffer (GSO not
	// yet fixed up) means: the buffer is the packet.
	if end := ipv6HeaderLen + int(binary.BigEndian.Uint16(data[4:6])); end > ipv6HeaderLen && end < len(data) {
		data = data[:end]
	}
	l.chain = walkIPv6(data)
	if l.chain.status != chainOK {
		return errExtChain
	}
	l.payload = data[l.chain.off:]
	return nil
}

// chainStatus says how a walk over IPv6 extension headers ended.
type chainStatus uint8

const (
	chainOK        chainStatus = iota
	chainTruncated             // an extension header runs past the end of the bytes
	chainBad                   // a hop-by-hop header after the first position (RFC 8200 4.1)
)

// ip6Chain is where a walk over an IPv6 header chain stopped.
type ip6Chain struct {
	proto     uint8  // next header value at the stop: the upper-layer protocol when status is chainOK
	off       int    // offset of that header from the start of the IPv6 header
	fragOff   uint16 // fragment offset (8-byte units) from a fragment header, 0 without one
	firstFrag bool   // a fragment header with offset 0 and more fragments to come
	status    chainStatus
}

// walkIPv6 skips the extension headers of the IPv6 packet b (len(b) >=
// 40): hop-by-hop, routing, destination options, fragment and AH. The walk
// ends at the first other header (ESP and "no next header" included: what
// follows them cannot be read) and at a fragment header with a non-zero
// offset, whose data holds no header. Each step moves on by at least 8
// bytes, so the walk ends within len(b)/8 steps.
func walkIPv6(b []byte) ip6Chain {
	c := ip6Chain{proto: b[6], off: ipv6HeaderLen}
	for {
		var n int // length of the extension header at c.off
		switch c.proto {
		case protoHopByHop, protoRouting, protoDestOpts:
			if c.proto == protoHopByHop && c.off != ipv6HeaderLen {
				c.status = chainBad
				return c
			}
			if len(b)-c.off < 2 {
				c.status = chainTruncated
				return c
			}
			n = (int(b[c.off+1]) + 1) * 8
		case protoAH:
			if len(b)-c.off < 2 {
				c.status = chainTruncated
				return c
			}
			n = (int(b[c.off+1]) + 2) * 4
		case protoFragment:
			if len(b)-c.off < fragHeaderLen {
				c.status = chainTruncated
				return c
			}
			fo := binary.BigEndian.Uint16(b[c.off+2 : c.off+4])
			c.fragOff = fo >> 3
			c.firstFrag = c.fragOff == 0 && fo&1 != 0
			c.proto = b[c.off]
			c.off += fragHeaderLen
			if c.fragOff != 0 {
				return c
			}
			continue
		default:
			return c
		}
		if len(b)-c.off < n {
			c.status = chainTruncated
			return c
		}
		c.proto = b[c.off]
		c.off += n
	}
}

// tcpLayer decodes the fixed TCP header and skips the options.
type tcpLayer struct {
	srcPort, dstPort uint16
	seq, ack         uint32
	flags            uint8
	window           uint16
	hdrLen           int // data offset in bytes
	payload          []byte
}

func (t *tcpLayer) CanDecode() gopacket.LayerClass    { return layers.LayerTypeTCP }
func (t *tcpLayer) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }
func (t *tcpLayer) LayerPayload() []byte              { return t.payload }

func (t *tcpLayer) DecodeFromBytes(data []byte, _ gopacket.DecodeFeedback) error {
	t.payload = nil
	if len(data) < tcpHeaderLen {
		return errShort
	}
	hl := int(data[12]>>4) * 4
	if hl < tcpHeaderLen || hl > len(data) {
		return errHeaderLen
	}
	t.srcPort = binary.BigEndian.Uint16(data[0:2])
	t.dstPort = binary.BigEndian.Uint16(data[2:4])
	t.seq = binary.BigEndian.Uint32(data[4:8])
	t.ack = binary.BigEndian.Uint32(data[8:12])
	t.flags = data[13]
	t.window = binary.BigEndian.Uint16(data[14:16])
	t.hdrLen = hl
	t.payload = data[hl:]
	return nil
}

// udpLayer is gopacket's UDP layer with its error conditions checked first.
// It is the last layer decoded: gopacket would go on by port (DNS, VXLAN...).
type udpLayer struct {
	layers.UDP
}

func (l *udpLayer) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }

func (l *udpLayer) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < udpHeaderLen {
		return errShort
	}
	// 0 is a jumbogram (the buffer is the datagram); 1..7 cannot hold the header.
	if n := binary.BigEndian.Uint16(data[4:6]); n != 0 && n < udpHeaderLen {
		return errHeaderLen
	}
	return l.UDP.DecodeFromBytes(data, df)
}

// sctpLayer is gopacket's SCTP common header, the last layer decoded.
type sctpLayer struct {
	layers.SCTP
}

func (l *sctpLayer) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }

func (l *sctpLayer) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < sctpHeaderLen {
		return errShort
	}
	return l.SCTP.DecodeFromBytes(data, df)
}

// icmp4Layer is gopacket's ICMPv4 header, the last layer decoded.
type icmp4Layer struct {
	layers.ICMPv4
}

func (l *icmp4Layer) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }

func (l *icmp4Layer) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < icmpHeaderLen {
		return errShort
	}
	return l.ICMPv4.DecodeFromBytes(data, df)
}

// icmp6Layer is gopacket's ICMPv6 header, the last layer decoded. It asks for
// the 8 bytes every ICMPv6 message has (as the kernel's conntrack does), so
// that an echo identifier is always there to read.
type icmp6Layer struct {
	layers.ICMPv6
}

func (l *icmp6Layer) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }

func (l *icmp6Layer) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < icmpHeaderLen {
		return errShort
	}
	return l.ICMPv6.DecodeFromBytes(data, df)
}

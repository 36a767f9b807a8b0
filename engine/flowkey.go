package engine

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"

	"github.com/nfqfw/nfqfw/rules"
)

// IANA protocol numbers the flow table treats specially.
const (
	ctICMP    = 1
	ctTCP     = 6
	ctUDP     = 17
	ctICMPv6  = 58
	ctUDPLite = 136
)

// FlowKey identifies one tracked flow. It is packed, comparable and free of
// pointers, so it is a cheap map key and building one never allocates.
//
// Both directions of a flow map to the same key: for protocols with ports
// (and for ICMP without an echo id) the endpoint with the lower address
// (then lower port) is endpoint A. An ICMP echo flow is keyed by requester
// (A), responder (B) and echo id, so that a request and its reply share a
// key while a request from the other side is a different flow, as in
// conntrack. Build keys with KeyOf, KeyOfInner or KeyOfTuple.
type FlowKey struct {
	a, b         [16]byte // addresses, IPv4 in IPv4-mapped form
	aPort, bPort uint16   // ports; for ICMP echo aPort is the echo id
	proto        uint8
	family       rules.Family
	kind         keyKind
}

// keyKind tells how a FlowKey's endpoints are ordered.
type keyKind uint8

const (
	keyOrdered keyKind = iota // A is the lower endpoint
	keyEcho                   // ICMP echo: A is the requester, aPort the echo id
)

// Dir is the direction of a packet relative to its FlowKey.
type Dir uint8

// Directions. A flow's original direction is the Dir of the packet that
// created it; packets with the other Dir are replies.
const (
	DirAB Dir = iota // the packet goes from endpoint A to endpoint B
	DirBA            // the packet goes from endpoint B to endpoint A
)

// Proto returns the IANA protocol number of the flow.
func (k FlowKey) Proto() uint8 { return k.proto }

// Family returns the address family of the flow.
func (k FlowKey) Family() rules.Family { return k.family }

// Tuple returns the flow's tuple as a packet in direction d carries it. For
// ICMP flows the ports are zero (see FlowInfo.ICMPID for the echo id).
func (k FlowKey) Tuple(d Dir) Tuple {
	aPort, bPort := k.aPort, k.bPort
	if k.kind == keyEcho {
		aPort, bPort = 0, 0
	}
	a := netip.AddrPortFrom(addrOf(k.a, k.family), aPort)
	b := netip.AddrPortFrom(addrOf(k.b, k.family), bPort)
	if d == DirBA {
		return Tuple{Src: b, Dst: a}
	}
	return Tuple{Src: a, Dst: b}
}

// String describes the key for logs and test failures.
func (k FlowKey) String() string {
	t := k.Tuple(DirAB)
	if k.kind == keyEcho {
		return fmt.Sprintf("%s %s -> %s id=%d", ProtoName(k.proto), t.Src.Addr(), t.Dst.Addr(), k.aPort)
	}
	return fmt.Sprintf("%s %s <-> %s", ProtoName(k.proto), t.Src, t.Dst)
}

// Tuple is one direction of a flow: who sends and who receives.
type Tuple struct {
	Src, Dst netip.AddrPort
}

// KeyOf returns the flow key of a decoded packet and the packet's direction
// relative to the key. p must have Kind KindOK.
func KeyOf(p *Parsed) (FlowKey, Dir) {
	switch p.Proto {
	case ctICMP, ctICMPv6:
		if req, ok := echoType(p.Proto, p.ICMPType); ok {
			k := FlowKey{proto: p.Proto, family: p.Family, kind: keyEcho, aPort: p.ICMPID}
			if req {
				k.a, k.b = p.Src, p.Dst
				return k, DirAB
			}
			k.a, k.b = p.Dst, p.Src
			return k, DirBA
		}
		return orderedKey(p.Proto, p.Family, &p.Src, &p.Dst, 0, 0)
	}
	return orderedKey(p.Proto, p.Family, &p.Src, &p.Dst, p.SrcPort, p.DstPort)
}

// KeyOfInner returns the flow key of the packet quoted inside an ICMP error
// and that packet's direction. The quoted packet is one that this host (or a
// host behind it) sent, in the flow's original or reply direction; both find
// the same key. A quoted ICMP packet is taken to be an echo request; the
// table also tries the echo reply orientation (see Table.Classify).
func KeyOfInner(t *InnerTuple, family rules.Family) (FlowKey, Dir) {
	switch t.Proto {
	case ctICMP, ctICMPv6:
		return FlowKey{a: t.Src, b: t.Dst, proto: t.Proto, family: family, kind: keyEcho, aPort: t.SrcPort}, DirAB
	}
	return orderedKey(t.Proto, family, &t.Src, &t.Dst, t.SrcPort, t.DstPort)
}

// KeyOfTuple returns the key of the flow whose packet goes from src to dst,
// as conntrack reports a flow's original tuple. For ICMP and ICMPv6 flows
// (which conntrack only tracks for echo and its kin) src's port is the echo
// id and src the requester. IPv4 addresses may be given in either form.
func KeyOfTuple(proto uint8, src, dst netip.AddrPort) (FlowKey, Dir) {
	fam := rules.FamilyIPv6
	if src.Addr().Unmap().Is4() {
		fam = rules.FamilyIPv4
	}
	s, d := src.Addr().As16(), dst.Addr().As16()
	switch proto {
	case ctICMP, ctICMPv6:
		return FlowKey{a: s, b: d, proto: proto, family: fam, kind: keyEcho, aPort: src.Port()}, DirAB
	}
	return orderedKey(proto, fam, &s, &d, src.Port(), dst.Port())
}

// orderedKey puts the lower endpoint first.
func orderedKey(proto uint8, fam rules.Family, src, dst *[16]byte, sport, dport uint16) (FlowKey, Dir) {
	k := FlowKey{proto: proto, family: fam}
	if endpointLess(dst, dport, src, sport) {
		k.a, k.b, k.aPort, k.bPort = *dst, *src, dport, sport
		return k, DirBA
	}
	k.a, k.b, k.aPort, k.bPort = *src, *dst, sport, dport
	return k, DirAB
}

// endpointLess orders endpoints by address, then port.
func endpointLess(x *[16]byte, xp uint16, y *[16]byte, yp uint16) bool {
	x0, y0 := binary.BigEndian.Uint64(x[:8]), binary.BigEndian.Uint64(y[:8])
	if x0 != y0 {
		return x0 < y0
	}
	x1, y1 := binary.BigEndian.Uint64(x[8:]), binary.BigEndian.Uint64(y[8:])
	if x1 != y1 {
		return x1 < y1
	}
	return xp < yp
}

// echoSwapped returns the echo key with requester and responder exchanged:
// the key of a quoted ICMP packet that was an echo reply.
func (k FlowKey) echoSwapped() FlowKey {
	k.a, k.b = k.b, k.a
	return k
}

// hash mixes the key with seed; it picks the key's shard.
func (k *FlowKey) hash(seed uint64) uint64 {
	const (
		m0 = 0xa0761d6478bd642f
		m1 = 0xe7037ed1a0b428db
		m2 = 0x8ebc6af09c88c6e3
		m3 = 0x589965cc75374cc3
	)
	le := binary.LittleEndian
	x := uint64(k.aPort) | uint64(k.bPort)<<16 | uint64(k.proto)<<32 | uint64(k.family)<<40 | uint64(k.kind)<<48
	h := mum(le.Uint64(k.a[:8])^seed^m0, le.Uint64(k.a[8:])^m1)
	h ^= mum(le.Uint64(k.b[:8])^m2, le.Uint64(k.b[8:])^x^m3)
	return mum(h^seed, m1)
}

func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// echoType tells whether an ICMP type of protocol proto is an echo request
// (req true) or an echo reply (req false); ok is false for other types.
func echoType(proto, typ uint8) (req, ok bool) {
	if proto == ctICMP {
		switch typ {
		case 8:
			return true, true
		case 0:
			return false, true
		}
		return false, false
	}
	switch typ {
	case 128:
		return true, true
	case 129:
		return false, true
	}
	return false, false
}

// icmpError tells whether an ICMP type of protocol proto is an error that
// quotes the packet that caused it.
func icmpError(proto, typ uint8) bool {
	if proto == ctICMP {
		switch typ {
		case 3, 4, 5, 11, 12: // unreachable, source quench, redirect, time exceeded, parameter problem
			return true
		}
		return false
	}
	return typ >= 1 && typ <= 4 // unreachable, packet too big, time exceeded, parameter problem
}

// addrOf turns a 16-byte address of family fam into a netip.Addr.
func addrOf(b [16]byte, fam rules.Family) netip.Addr {
	a := netip.AddrFrom16(b)
	if fam == rules.FamilyIPv4 {
		return a.Unmap()
	}
	return a
}

// ProtoName is the protocol's name as conntrack -L prints it ("unknown" for
// protocols conntrack has no name for).
func ProtoName(p uint8) string {
	switch p {
	case ctTCP:
		return "tcp"
	case ctUDP:
		return "udp"
	case ctICMP:
		return "icmp"
	case ctICMPv6:
		return "icmpv6"
	case ctUDPLite:
		return "udplite"
	case 132:
		return "sctp"
	case 33:
		return "dccp"
	case 47:
		return "gre"
	}
	return "unknown"
}

package ctnl

import (
	"encoding/binary"
	"net/netip"

	"github.com/nfqfw/nfqfw/engine/internal/nlmsg"
)

// The event path decodes ctnetlink messages by hand. Under load the kernel
// sends several events per connection, and the library path (a fresh
// receive buffer, a peek and a read per message, then a decoded Flow with
// its nested structs) allocated about 2 GB in 5 s and cost half the
// daemon's CPU. decodeMessages reads only the attributes Event carries, from
// a buffer the Follower reuses, and allocates nothing. Dumps and deletes
// still go through the library.

// Netlink and ctnetlink constants (linux/netlink.h,
// linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h).
const (
	nlmsgHdrLen = nlmsg.HdrLen
	nfgenLen    = 4
	nlaHdrLen   = nlmsg.AttrHdrLen

	nlmsgError   = 2
	nlfCreate    = 0x400
	nlfExcl      = 0x200
	subsysCTNL   = 1
	msgCTNew     = 0
	msgCTDelete  = 2
	ipsSeenReply = 1 << 1
	ipsAssured   = 1 << 2

	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaStatus     = 3
	ctaProtoinfo  = 4
	ctaTimeout    = 7
	ctaMark       = 8

	ctaTupleIP    = 1
	ctaTupleProto = 2

	ctaIPv4Src = 1
	ctaIPv4Dst = 2
	ctaIPv6Src = 3
	ctaIPv6Dst = 4

	ctaProtoNum      = 1
	ctaProtoSrcPort  = 2
	ctaProtoDstPort  = 3
	ctaProtoICMPID   = 4
	ctaProtoICMPType = 5
	ctaProtoICMPCode = 6
	ctaProtoICMP6ID  = 7
	ctaProtoICMP6Typ = 8
	ctaProtoICMP6Cod = 9

	ctaProtoinfoTCP      = 1
	ctaProtoinfoTCPState = 1
)

// attrs iterates the netlink attributes of a message (nlmsg.Attrs).
type attrs = nlmsg.Attrs

// decodeMessages decodes every ctnetlink event message in b (one read of
// the event socket) and calls fn for each. It returns how many events it
// delivered and how many messages it could not decode. It does not
// allocate.
func decodeMessages(b []byte, fn func(Event)) (events, bad int) {
	for len(b) >= nlmsg.HdrLen {
		m, rest, ok := nlmsg.Next(b)
		if !ok {
			return events, bad + 1
		}
		b = rest
		typ, flags, msg := m.Type, m.Flags, m.Body
		if typ == nlmsgError || typ>>8 != subsysCTNL {
			continue
		}
		var ev Event
		switch typ & 0xff {
		case msgCTNew:
			ev.Type = EventUpdate
			if flags&(nlfCreate|nlfExcl) != 0 {
				ev.Type = EventNew
			}
		case msgCTDelete:
			ev.Type = EventDestroy
		default:
			continue
		}
		if len(msg) < nfgenLen || !decodeFlow(msg[nfgenLen:], &ev) {
			bad++
			continue
		}
		events++
		fn(ev)
	}
	return events, bad
}

// decodeFlow fills ev from a conntrack message's attributes. It reports
// false when the original tuple is missing or malformed.
func decodeFlow(b []byte, ev *Event) bool {
	a := attrs(b)
	orig := false
	for {
		typ, val, ok := a.Next()
		if !ok {
			break
		}
		switch typ {
		case ctaTupleOrig:
			if !decodeTuple(val, &ev.Proto, &ev.Src, &ev.Dst, &ev.SPort, &ev.DPort) {
				return false
			}
			orig = true
		case ctaTupleReply:
			var proto uint8
			if !decodeTuple(val, &proto, &ev.ReplySrc, &ev.ReplyDst, &ev.ReplySPort, &ev.ReplyDPort) {
				return false
			}
		case ctaStatus:
			if len(val) >= 4 {
				s := binary.BigEndian.Uint32(val)
				ev.SeenReply = s&ipsSeenReply != 0
				ev.Assured = s&ipsAssured != 0
			}
		case ctaProtoinfo:
			if tcp, ok := attrs(val).Find(ctaProtoinfoTCP); ok {
				if st, ok := attrs(tcp).Find(ctaProtoinfoTCPState); ok && len(st) >= 1 {
					ev.TCPState = st[0]
				}
			}
		case ctaTimeout:
			if len(val) >= 4 {
				ev.Timeout = binary.BigEndian.Uint32(val)
			}
		case ctaMark:
			if len(val) >= 4 {
				ev.Mark = binary.BigEndian.Uint32(val)
			}
		}
	}
	return orig
}

// decodeTuple reads a CTA_TUPLE_* nest: addresses, protocol and ports (for
// ICMP and ICMPv6: the echo id, and type<<8|code), as fromFlow reports
// them.
func decodeTuple(b []byte, proto *uint8, src, dst *netip.Addr, sport, dport *uint16) bool {
	a := attrs(b)
	var icmpType, icmpCode uint8
	icmp := false
	for {
		typ, val, ok := a.Next()
		if !ok {
			break
		}
		switch typ {
		case ctaTupleIP:
			ia := attrs(val)
			for {
				it, iv, ok := ia.Next()
				if !ok {
					break
				}
				switch {
				case (it == ctaIPv4Src || it == ctaIPv4Dst) && len(iv) == 4:
					addr := netip.AddrFrom4([4]byte(iv))
					if it == ctaIPv4Src {
						*src = addr
					} else {
						*dst = addr
					}
				case (it == ctaIPv6Src || it == ctaIPv6Dst) && len(iv) == 16:
					addr := netip.AddrFrom16([16]byte(iv))
					if it == ctaIPv6Src {
						*src = addr
					} else {
						*dst = addr
					}
				}
			}
		case ctaTupleProto:
			pa := attrs(val)
			for {
				pt, pv, ok := pa.Next()
				if !ok {
					break
				}
				switch {
				case pt == ctaProtoNum && len(pv) >= 1:
					*proto = pv[0]
				case pt == ctaProtoSrcPort && len(pv) >= 2:
					*sport = binary.BigEndian.Uint16(pv)
				case pt == ctaProtoDstPort && len(pv) >= 2:
					*dport = binary.BigEndian.Uint16(pv)
				case (pt == ctaProtoICMPID || pt == ctaProtoICMP6ID) && len(pv) >= 2:
					*sport = binary.BigEndian.Uint16(pv)
					icmp = true
				case (pt == ctaProtoICMPType || pt == ctaProtoICMP6Typ) && len(pv) >= 1:
					icmpType, icmp = pv[0], true
				case (pt == ctaProtoICMPCode || pt == ctaProtoICMP6Cod) && len(pv) >= 1:
					icmpCode, icmp = pv[0], true
				}
			}
		}
	}
	if icmp {
		*dport = uint16(icmpType)<<8 | uint16(icmpCode)
	}
	return src.IsValid() && dst.IsValid()
}

package engine

import (
	"net/netip"
	"time"

	"github.com/nfqfw/nfqfw/rules"
)

// KernelFlow is a flow the kernel tracks (a conntrack dump entry), as the
// engine would have seen its first packet: Src and Dst are the original
// direction after DNAT (the reply tuple's source is the real destination)
// and before SNAT or MASQUERADE, InIf and OutIf the interfaces that packet
// would have crossed (0: none, as OUTPUT has no input interface). For ICMP
// and ICMPv6, Src's port is the echo identifier, Dst's port is zero, and
// ICMPType and ICMPCode are the first packet's (an echo request).
type KernelFlow struct {
	Hook               rules.Hook
	InIf, OutIf        uint32
	Proto              uint8
	Src, Dst           netip.AddrPort
	ICMPType, ICMPCode uint8
	TCPState           TCPState // conntrack's TCP state; TCPNone for other protocols
	Replied            bool     // conntrack SEEN_REPLY
	Assured            bool     // conntrack ASSURED
	Timeout            time.Duration
}

// AdoptResult says what Adopt did with a kernel flow.
type AdoptResult uint8

// Adopt results.
const (
	AdoptAdmitted AdoptResult = iota // the policy admits its first packet: tracked as the kernel has it
	AdoptTracked                     // the engine tracks it already
	AdoptRefused                     // the policy would not admit its first packet: left alone
	AdoptSkipped                     // not a flow the engine adopts (ICMP other than echo, other protocols), or the table is full
)

// Adopt takes a flow the kernel already tracks (after a restart of the
// daemon, a crash, or a resync after lost events) as admitted when the
// running policy would admit its first packet, so that the flow's packets
// that still reach the queue (an FTP control connection) are ESTABLISHED
// rather than INVALID. The first packet is a TCP SYN or a UDP datagram with
// f's addresses, ports and interfaces; the policy sees it without side
// effects: a rule's knock window counts as open (the kernel only has the
// flow because something admitted it), a rule's recent-list condition as
// not met (nothing is set or updated), rate guards are not consulted.
//
// TCP, UDP, UDP-Lite and SCTP flows are adopted, and ICMP and ICMPv6 echo
// sessions (a ping in progress: its first packet is the echo request, its
// identifier is the flow's); conntrack's other ICMP flows (timestamp and
// information requests) are left to the kernel. Adopt is safe for
// concurrent use with the queue readers.
func (e *Engine) Adopt(f KernelFlow, now int64) AdoptResult {
	switch f.Proto {
	case ctTCP, ctUDP, ctUDPLite, 132:
	case ctICMP, ctICMPv6:
		if req, ok := echoType(f.Proto, f.ICMPType); !ok || !req {
			return AdoptSkipped
		}
	default:
		return AdoptSkipped
	}
	if !f.Src.IsValid() || !f.Dst.IsValid() || f.Src.Addr().Unmap().Is4() != f.Dst.Addr().Unmap().Is4() {
		return AdoptSkipped
	}
	a := e.active.Load()
	var p Parsed
	p.Kind = KindOK
	p.Hook = f.Hook
	p.Family = rules.FamilyIPv6
	if f.Src.Addr().Unmap().Is4() {
		p.Family = rules.FamilyIPv4
	}
	p.Proto = f.Proto
	p.Src, p.Dst = f.Src.Addr().As16(), f.Dst.Addr().As16()
	if f.Proto == ctICMP || f.Proto == ctICMPv6 {
		p.ICMPType, p.ICMPCode, p.ICMPID = f.ICMPType, f.ICMPCode, f.Src.Port()
	} else {
		p.SrcPort, p.DstPort = f.Src.Port(), f.Dst.Port()
	}
	p.InIface, p.OutIface = e.ifs.name(f.InIf), e.ifs.name(f.OutIf)
	p.TTL = 64
	if f.Proto == ctTCP {
		p.TCPFlags = tcpFlagSYN
	}
	k, _ := KeyOf(&p)
	if e.flows.Lookup(k, now) {
		return AdoptTracked
	}
	rule := a.policy.Eval(&p.Packet, adoptState{a.policy})
	action := a.policy.Chain(p.Hook).Action
	if rule >= 0 {
		action = a.policy.Rules()[rule].Action
	}
	if action != rules.ActionAccept {
		return AdoptRefused
	}
	if !e.flows.Admit(&p, rule, now) {
		return AdoptSkipped
	}
	u := FlowUpdate{TCPState: f.TCPState, Replied: f.Replied, Assured: f.Assured, Timeout: f.Timeout}
	if f.Proto == ctTCP && (u.TCPState == TCPNone || u.TCPState >= NumTCPStates) {
		u.TCPState = TCPEstablished
	}
	e.flows.Update(k, u, now)
	e.adopted.Add(1)
	return AdoptAdmitted
}

// adoptState is the Stateful of Adopt: knock windows are open, recent-list
// conditions are not met, and neither is changed.
type adoptState struct{ pol *rules.Policy }

func (s adoptState) Allow(rule int, _ *rules.Packet) bool {
	rs := s.pol.Rules()
	if rule < 0 || rule >= len(rs) || rs[rule].Src == nil {
		return true
	}
	return rs[rule].Src.Recent == nil
}

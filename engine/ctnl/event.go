package ctnl

import (
	"net/netip"

	"github.com/ti-mo/conntrack"
)

// EventType says what happened to a flow.
type EventType uint8

// Event types.
const (
	EventUnknown EventType = iota
	EventNew               // the kernel confirmed a new flow
	EventUpdate            // a flow changed (status, TCP state, timeout, mark)
	EventDestroy           // a flow ended: timed out, closed or deleted
	EventDump              // not an event: a flow as listed by a dump
)

// eventNames ends with the name of any value out of range.
var eventNames = [...]string{"unknown", "new", "update", "destroy", "dump", "unknown"}

// String returns the event type's name ("new", "update", ...).
func (t EventType) String() string { return eventNames[min(int(t), len(eventNames)-1)] }

// Event is one flow as the kernel reports it. The original direction is the
// one the first packet went; the reply tuple differs from its mirror image
// when NAT rewrote the flow.
//
// For ICMP and ICMPv6 the ports carry the kernel's tuple: SPort is the
// echo identifier and DPort is type<<8|code (ReplySPort/ReplyDPort alike).
type Event struct {
	Type  EventType
	Proto uint8 // IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...)

	Src, Dst     netip.Addr // original direction
	SPort, DPort uint16

	ReplySrc, ReplyDst     netip.Addr // reply direction
	ReplySPort, ReplyDPort uint16

	// TCPState is the kernel's TCP conntrack state (TCPStateEstablished,
	// ...); valid when Proto is TCP and the kernel sent protocol info.
	TCPState uint8
	// Assured and SeenReply are the kernel's IPS_ASSURED and
	// IPS_SEEN_REPLY status bits.
	Assured, SeenReply bool
	// Mark is the connection mark (connmark).
	Mark uint32
	// Timeout is the number of seconds before the flow expires.
	Timeout uint32
}

// Kernel TCP conntrack states (enum tcp_conntrack), as in Event.TCPState.
const (
	TCPStateNone        uint8 = 0
	TCPStateSynSent     uint8 = 1
	TCPStateSynRecv     uint8 = 2
	TCPStateEstablished uint8 = 3
	TCPStateFinWait     uint8 = 4
	TCPStateCloseWait   uint8 = 5
	TCPStateLastAck     uint8 = 6
	TCPStateTimeWait    uint8 = 7
	TCPStateClose       uint8 = 8
	TCPStateSynSent2    uint8 = 9
)

// fromFlow converts the library's flow.
func fromFlow(t EventType, f *conntrack.Flow) Event {
	e := Event{
		Type:      t,
		Proto:     f.TupleOrig.Proto.Protocol,
		Src:       f.TupleOrig.IP.SourceAddress,
		Dst:       f.TupleOrig.IP.DestinationAddress,
		ReplySrc:  f.TupleReply.IP.SourceAddress,
		ReplyDst:  f.TupleReply.IP.DestinationAddress,
		Assured:   f.Status.Assured(),
		SeenReply: f.Status.SeenReply(),
		Mark:      f.Mark,
		Timeout:   f.Timeout,
	}
	e.SPort, e.DPort = ports(f.TupleOrig.Proto)
	e.ReplySPort, e.ReplyDPort = ports(f.TupleReply.Proto)
	if f.ProtoInfo.TCP != nil {
		e.TCPState = f.ProtoInfo.TCP.State
	}
	return e
}

func ports(p conntrack.ProtoTuple) (uint16, uint16) {
	if p.ICMPv4 || p.ICMPv6 {
		return p.ICMPID, uint16(p.ICMPType)<<8 | uint16(p.ICMPCode)
	}
	return p.SourcePort, p.DestinationPort
}

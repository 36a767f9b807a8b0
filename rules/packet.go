package rules

// Hook is the netfilter hook a packet was queued from.
type Hook uint8

// Hooks the engine decides packets for.
const (
	HookInput Hook = iota
	HookForward
	HookOutput
	NumHooks
)

func (h Hook) String() string {
	switch h {
	case HookInput:
		return "input"
	case HookForward:
		return "forward"
	case HookOutput:
		return "output"
	}
	return "unknown"
}

// Family is an address family.
type Family uint8

// Address families. FamilyAny only appears in rules, never in packets.
const (
	FamilyAny  Family = 0
	FamilyIPv4 Family = 4
	FamilyIPv6 Family = 6
)

// Packet is what the policy matches on. The engine fills one per packet from
// its decoder; it is pointer-free so that building it never allocates.
//
// Addresses are 16 bytes: an IPv4 address is stored in its IPv4-mapped IPv6
// form (::ffff:a.b.c.d), exactly as netip.Addr.As16 returns it.
type Packet struct {
	Hook     Hook
	Family   Family
	Proto    uint8 // IANA protocol number of the transport header (6, 17, 1, 58, ...)
	TCPFlags uint8 // TCP flag byte (FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 ...), 0 otherwise
	TTL      uint8 // IPv4 TTL or IPv6 hop limit
	ICMPType uint8 // valid when Proto is 1 or 58
	ICMPCode uint8
	Src      [16]byte
	Dst      [16]byte
	SrcPort  uint16 // TCP/UDP/SCTP ports, 0 otherwise
	DstPort  uint16
	InIface  string // input interface name, "" when unknown (output hook)
	OutIface string // output interface name, "" when unknown (input hook)
	Mark     uint32 // packet mark as queued
}

// Action is what a rule (or a chain policy) does with a packet.
type Action uint8

// Actions. ActionNone means "no decision": evaluation goes on.
const (
	ActionNone Action = iota
	ActionAccept
	ActionDrop
	ActionReject
)

func (a Action) String() string {
	switch a {
	case ActionAccept:
		return "accept"
	case ActionDrop:
		return "drop"
	case ActionReject:
		return "reject"
	}
	return "none"
}

// RejectKind names how a rejected packet is answered. The kernel sends the
// answer: the engine repeats the packet with a mark that a REJECT rule in the
// nfqfw chain matches.
type RejectKind uint8

// Reject kinds, as iptables' REJECT --reject-with names them.
const (
	RejectNone RejectKind = iota
	RejectTCPReset
	RejectICMPPortUnreachable
	RejectICMPProtoUnreachable
	RejectICMPHostUnreachable
	RejectICMP6AdmProhibited
	RejectICMP6PortUnreachable
	NumRejectKinds
)

var rejectNames = [NumRejectKinds + 1]string{
	RejectNone:                 "",
	RejectTCPReset:             "tcp-reset",
	RejectICMPPortUnreachable:  "icmp-port-unreachable",
	RejectICMPProtoUnreachable: "icmp-proto-unreachable",
	RejectICMPHostUnreachable:  "icmp-host-unreachable",
	RejectICMP6AdmProhibited:   "icmp6-adm-prohibited",
	RejectICMP6PortUnreachable: "icmp6-port-unreachable",
	NumRejectKinds:             "unknown", // any value out of range
}

func (k RejectKind) String() string { return rejectNames[min(k, NumRejectKinds)] }

// ParseRejectKind returns the kind named s.
func ParseRejectKind(s string) (RejectKind, bool) {
	for k, n := range rejectNames[:NumRejectKinds] {
		if n == s && s != "" {
			return RejectKind(k), true
		}
	}
	return RejectNone, false
}

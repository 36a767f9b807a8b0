package engine

import "github.com/nfqfw/nfqfw/rules"

// Kind classifies what the decoder found.
type Kind uint8

// Decoder results. Anything but KindOK carries no usable transport fields.
const (
	KindOK          Kind = iota // IPv4/IPv6 with a decoded transport header (or a protocol without ports)
	KindMalformed               // truncated, bad header length, garbage
	KindFragment                // non-first fragment: no transport header
	KindUnsupported             // not IPv4 nor IPv6
)

// Parsed is the decoder's caller-owned output for one packet. A queue reader
// owns one Parsed and reuses it for every packet; the decoder never copies
// the payload, it records offsets into it.
type Parsed struct {
	Kind         Kind
	rules.Packet // fields the policy matches on

	IPHeaderLen  int  // bytes from the start of the packet to the transport header
	PayloadStart int  // offset of the transport payload (TCP/UDP data)
	PayloadLen   int  // length of the transport payload
	FirstFrag    bool // IPv4 MF set or IPv6 fragment header with offset 0
	TCPSeq       uint32
	TCPAck       uint32
	TCPWindow    uint16
	ICMPID       uint16 // echo request/reply identifier

	// ICMP error quoting a packet (dest unreachable, time exceeded, ...):
	// Inner holds the quoted packet's tuple, as the quoted packet was sent.
	HasInner bool
	Inner    InnerTuple
}

// InnerTuple is the tuple of the packet quoted inside an ICMP error.
type InnerTuple struct {
	Proto   uint8
	Src     [16]byte
	Dst     [16]byte
	SrcPort uint16 // for quoted ICMP echo: the echo id
	DstPort uint16
}

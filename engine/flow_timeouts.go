package engine

import (
	"time"

	"github.com/nfqfw/nfqfw/rules"
)

// DefaultTimeouts returns conntrack's default flow timeouts, the values
// rules.Timeouts documents. NewTable uses them for every timeout left zero.
func DefaultTimeouts() rules.Timeouts { return rules.DefaultTimeouts() }

// timeouts are rules.Timeouts in nanoseconds, indexed for the packet path.
type timeouts struct {
	tcp       [NumTCPStates]int64
	udp       int64
	udpStream int64
	icmp      int64
	generic   int64
}

func compileTimeouts(c rules.Timeouts) timeouts {
	d := DefaultTimeouts()
	pick := func(v, def time.Duration) int64 {
		if v <= 0 {
			return int64(def)
		}
		return int64(v)
	}
	var t timeouts
	t.tcp[TCPNone] = pick(c.TCPSynSent, d.TCPSynSent)
	t.tcp[TCPSynSent] = pick(c.TCPSynSent, d.TCPSynSent)
	t.tcp[TCPSynRecv] = pick(c.TCPSynRecv, d.TCPSynRecv)
	t.tcp[TCPEstablished] = pick(c.TCPEstablished, d.TCPEstablished)
	t.tcp[TCPFinWait] = pick(c.TCPFinWait, d.TCPFinWait)
	t.tcp[TCPCloseWait] = pick(c.TCPCloseWait, d.TCPCloseWait)
	t.tcp[TCPLastAck] = pick(c.TCPLastAck, d.TCPLastAck)
	t.tcp[TCPTimeWait] = pick(c.TCPTimeWait, d.TCPTimeWait)
	t.tcp[TCPClose] = pick(c.TCPClose, d.TCPClose)
	t.tcp[TCPSynSent2] = pick(c.TCPSynSent, d.TCPSynSent) // conntrack: SYN_SENT2 = SYN_SENT timeout
	t.udp = pick(c.UDP, d.UDP)
	t.udpStream = pick(c.UDPStream, d.UDPStream)
	t.icmp = pick(c.ICMP, d.ICMP)
	t.generic = pick(c.Generic, d.Generic)
	return t
}

// of returns the timeout of a flow of protocol proto in entry state e.
func (t *timeouts) of(proto uint8, e *entry) int64 {
	switch proto {
	case ctTCP:
		if e.state < NumTCPStates {
			return t.tcp[e.state]
		}
		return t.tcp[TCPClose]
	case ctUDP, ctUDPLite:
		if e.flags&flagReplied != 0 {
			return t.udpStream
		}
		return t.udp
	case ctICMP, ctICMPv6:
		return t.icmp
	}
	return t.generic
}

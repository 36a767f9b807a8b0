package engine

// Class is a packet's relation to the tracked flows, as conntrack's ctstate
// names it.
type Class uint8

// Classes.
const (
	ClassNew         Class = iota // may start a flow: the policy decides it
	ClassEstablished              // belongs to a tracked flow
	ClassRelated                  // an ICMP error about a tracked flow
	ClassInvalid                  // belongs to no flow and cannot start one, or breaks its flow's state machine
	// ClassPickup is a TCP segment without SYN that belongs to no tracked
	// flow and that conntrack's loose pickup (nf_conntrack_tcp_loose)
	// takes up mid-stream: a bare ACK or a data segment. The engine decides
	// it as NEW or INVALID as flows.tcp_pickup says.
	ClassPickup
)

var classNames = [...]string{
	ClassNew:         "NEW",
	ClassEstablished: "ESTABLISHED",
	ClassRelated:     "RELATED",
	ClassInvalid:     "INVALID",
	ClassPickup:      "NEW",
	ClassPickup + 1:  "UNKNOWN", // any value out of range
}

func (c Class) String() string { return classNames[min(int(c), len(classNames)-1)] }

// Classify returns the class of p (Kind KindOK) and, when p belongs to a
// tracked flow, moves that flow's state machine and timeout on. It never
// inserts: a NEW packet becomes a flow through Admit once the policy
// accepted it. It does not allocate.
//
// Without a tracked flow: a TCP SYN is NEW, a segment whose flags select
// the ACK row of the state machine (ACK, with or without PSH or URG) is
// ClassPickup as conntrack picks it up, and any other TCP segment (FIN, RST,
// no flags) INVALID; UDP, ICMP echo requests and other protocols are NEW;
// an ICMP echo reply is INVALID. An ICMP or ICMPv6 error is RELATED when the packet it quotes
// belongs to a tracked flow, else INVALID. A packet of a tracked flow is
// ESTABLISHED, or INVALID when its flow's state machine rejects it. A TCP
// SYN reopening a flow in TIME_WAIT or CLOSE forgets the old flow and is
// NEW. TCP segments with impossible flag combinations are always INVALID.
func (t *Table) Classify(p *Parsed, now int64) Class {
	switch p.Proto {
	case ctTCP:
		if !tcpFlagsValid(p.TCPFlags) {
			return ClassInvalid
		}
	case ctICMP, ctICMPv6:
		if icmpError(p.Proto, p.ICMPType) {
			return t.classifyError(p, now)
		}
	}
	k, d := KeyOf(p)
	s := t.shardOf(&k)
	s.mu.Lock()
	e, ok := s.m[k]
	if ok && e.expires <= now {
		s.remove(k, &e)
		t.n.Add(-1)
		t.expired.Add(1)
		ok = false
	}
	if !ok {
		s.mu.Unlock()
		return classifyUntracked(p)
	}
	c := t.track(s, k, e, p, e.dirOf(d), now)
	s.mu.Unlock()
	return c
}

// classifyUntracked classifies a packet that belongs to no tracked flow.
func classifyUntracked(p *Parsed) Class {
	switch p.Proto {
	case ctTCP:
		switch tcpIndexOf(p.TCPFlags) {
		case tcpSynSet:
		case tcpAckSet:
			return ClassPickup
		default:
			return ClassInvalid
		}
	case ctICMP, ctICMPv6:
		if req, ok := echoType(p.Proto, p.ICMPType); ok && !req {
			return ClassInvalid
		}
	}
	return ClassNew
}

// track moves tracked flow k (entry e) on with packet p travelling in
// direction fd. Caller holds s.mu.
func (t *Table) track(s *shard, k FlowKey, e entry, p *Parsed, fd flowDir, now int64) Class {
	old := e
	renew := true
	switch k.proto {
	case ctTCP:
		next := tcpNext(fd, e.state, p.TCPFlags)
		switch next {
		case tcpInvalid:
			return ClassInvalid
		case tcpIgnore:
			return ClassEstablished // may be valid; the state and timer stay
		}
		if next == TCPSynSent && (e.state == TCPTimeWait || e.state == TCPClose) {
			// Reopening a closed flow: forget it, decide the SYN afresh.
			s.remove(k, &e)
			t.n.Add(-1)
			return ClassNew
		}
		if e.flags&flagReplied == 0 {
			if p.TCPFlags&tcpFlagRST != 0 {
				// Only answer to the SYN is a RST: the flow is over (conntrack kills it).
				s.remove(k, &e)
				t.n.Add(-1)
				return ClassEstablished
			}
			// A SYN while in SYN_SENT (retransmitted, or the other
			// side's in a simultaneous open) does not renew the timer.
			renew = tcpIndexOf(p.TCPFlags) != tcpSynSet || e.state != TCPSynSent
		}
		// Assured as conntrack does it: a valid ACK in ESTABLISHED after
		// SYN_RECV, or a valid answer to a picked-up flow, once a reply
		// was seen before this packet.
		if e.flags&flagReplied != 0 && (e.state == TCPSynRecv || e.state == TCPEstablished) && next == TCPEstablished {
			e.flags |= flagAssured
		}
		e.state = next
	case ctUDP, ctUDPLite:
		if fd == dirReply {
			e.flags |= flagAssured // traffic both ways: a UDP stream
		}
	}
	if fd == dirReply {
		e.flags |= flagReplied
	}
	if renew {
		e.expires = now + t.to.Load().of(k.proto, &e)
	}
	if e != old {
		s.account(k.proto, &old, -1)
		s.account(k.proto, &e, 1)
		s.m[k] = e
	}
	return ClassEstablished
}

// classifyError classifies an ICMP error by the flow of the packet it
// quotes; the quoted flow's state is not changed.
func (t *Table) classifyError(p *Parsed, now int64) Class {
	if !p.HasInner {
		return ClassInvalid
	}
	k, _ := KeyOfInner(&p.Inner, p.Family)
	if t.live(k, now) {
		return ClassRelated
	}
	if k.kind == keyEcho && t.live(k.echoSwapped(), now) {
		return ClassRelated // the quoted packet was an echo reply
	}
	return ClassInvalid
}

// live reports whether k is tracked and not expired at now.
func (t *Table) live(k FlowKey, now int64) bool {
	s := t.shardOf(&k)
	s.mu.Lock()
	e, ok := s.m[k]
	s.mu.Unlock()
	return ok && e.expires > now
}

// Lookup reports whether k is tracked and not expired at now.
func (t *Table) Lookup(k FlowKey, now int64) bool { return t.live(k, now) }

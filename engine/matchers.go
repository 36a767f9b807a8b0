package engine

import (
	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/guard"
	"github.com/nfqfw/nfqfw/engine/knock"
	"github.com/nfqfw/nfqfw/engine/recent"
	"github.com/nfqfw/nfqfw/rules"
)

// Matchers are the stateful matchers a policy decides with. Whoever runs
// the engine builds them for each policy, restores and carries their state
// over a reload, and expires and persists it; the engine only decides with
// them (SetPolicy). Their methods are safe for concurrent use.
type Matchers struct {
	Bans   *guard.Bans   // banned sources, dropped before anything else
	Recent *recent.Lists // recent lists of rules' recent conditions
	Knock  *knock.Knocker
	Guards *guard.Guards // rate guards of rules' guard conditions
	FTP    Expectations  // nil: the FTP helper is disabled
	// Allows are the temporary allows (nfqfw allows): a new connection
	// from their sources is accepted (input) before bans, guards and
	// rules see it, as the allowlist's. nil: none.
	Allows *guard.Allows
}

// Expectations are the connections a protocol helper announced (FTP data
// connections), implemented by helpers/ftp.
type Expectations interface {
	// Take reports whether p opens an expected connection and returns the
	// flow it is related to; an expectation is taken once.
	Take(p *Parsed, now int64) (parent FlowKey, ok bool)
	// Expected tells whether Take would admit p, without taking the
	// expectation (for an explanation).
	Expected(p *Parsed, now int64) bool
	// Inspect reads a packet of a tracked flow (the control channel); b is
	// the whole packet.
	Inspect(p *Parsed, b []byte, now int64)
}

// stateful is a policy's matchers with each rule's stateful conditions
// resolved to indexes once. Every method is called from queue readers
// concurrently and does not allocate.
type stateful struct {
	Matchers
	failure rules.Action // queue.failure_verdict
	conds   []ruleCond   // index = rule id
}

// ruleCond is a rule's stateful conditions, resolved to indexes once.
type ruleCond struct {
	recent      int // list index, -1 none
	recentMatch *rules.RecentMatch
	guard       int // guard index, -1 none
	guardLog    bool
	knock       int // knock index, -1 none
}

func newStateful(pol *rules.Policy, m *Matchers) *stateful {
	cfg := pol.Config()
	s := &stateful{Matchers: *m, failure: cfg.Queue.FailureVerdict}
	for _, r := range pol.Rules() {
		c := ruleCond{recent: -1, guard: -1, knock: -1}
		if src := r.Src; src != nil {
			if src.Recent != nil {
				c.recent = s.Recent.Index(src.Recent.List)
				c.recentMatch = src.Recent
			}
			if src.Guard != "" {
				c.guard = s.Guards.Index(src.Guard)
				for _, g := range cfg.Guards {
					if g.Name == src.Guard {
						c.guardLog = g.Log != nil
					}
				}
			}
			if src.Knock != "" {
				c.knock = s.Knock.Index(src.Knock)
			}
		}
		s.conds = append(s.conds, c)
	}
	return s
}

// before looks at every NEW packet before the policy does, in this order:
// a source allowed by an allow in force is accepted (input); a banned
// source is dropped; an expected FTP data connection is admitted
// to flows as RELATED to its control connection; a knock step is observed
// and dropped, so the sequence stays invisible. ok false: none of them
// decides the packet.
//
// With a Trace (an explanation) each matcher records what it found and
// nothing changes: the matchers are asked with their side-effect-free
// variants (Peek, Expected) and flows is not touched.
func (s *stateful) before(p *Parsed, flows *Table, now int64, tr *Trace) (v Verdict, ok bool) {
	if p.Hook == rules.HookInput && s.Allows.Covers(p.Src, now) {
		if tr != nil {
			tr.add("allows", "", true, "the source is allowed (nfqfw allows list): accepted before bans, guards and rules")
		}
		return Verdict{Action: rules.ActionAccept, Rule: -1, Reason: ReasonAllowlist}, true
	}
	if tr != nil {
		tr.ban(s.Bans, p.Src, now)
	}
	if s.Bans.IsBanned(p.Src, now) {
		return Verdict{Action: rules.ActionDrop, Rule: -1, Reason: ReasonBanned}, true
	}
	if s.FTP != nil {
		if tr != nil {
			if s.FTP.Expected(p, now) {
				tr.add("ftp", "", true, "an expected FTP data connection: RELATED to its control connection")
				return Verdict{Action: rules.ActionAccept, Rule: -1, Reason: ReasonRelated}, true
			}
			tr.add("ftp", "", false, "no FTP data connection expected")
		} else if parent, ok := s.FTP.Take(p, now); ok {
			if !flows.AdmitRelated(p, parent, -1, now) {
				return Verdict{Action: s.failure, Rule: -1, Reason: ReasonTableFull}, true
			}
			return Verdict{Action: rules.ActionAccept, Rule: -1, Reason: ReasonRelated}, true
		}
	}
	// Knock steps are the first packets of flows: a TCP segment picked up
	// mid-stream is none.
	const syn = 0x02
	knockable := p.Proto == 17 || (p.Proto == 6 && p.TCPFlags&syn != 0)
	if !knockable {
		return Verdict{}, false
	}
	local := p.Hook == rules.HookInput
	var knock bool
	if tr != nil {
		knock = tr.knockStep(s.Knock, p, local, now)
	} else {
		knock = s.Knock.Observe(p.Src, p.Dst, local, p.Proto, p.DstPort, now)
	}
	if knock {
		return Verdict{Action: rules.ActionDrop, Rule: -1, Reason: ReasonKnock}, true
	}
	return Verdict{}, false
}

// Allow implements rules.Stateful for the policy's evaluation: a rule with
// a knock condition matches only inside a window its sequence opened, one
// with a recent condition only when the list says so.
func (s *stateful) Allow(rule int, pkt *rules.Packet) bool {
	return s.allow(rule, pkt, clock.Now(), nil)
}

// allow is Allow at now; with a Trace it records each condition and
// changes nothing (a knock window is not kept open, a recent list not set
// or updated).
func (s *stateful) allow(rule int, pkt *rules.Packet, now int64, tr *Trace) bool {
	if rule < 0 || rule >= len(s.conds) {
		return true
	}
	c := &s.conds[rule]
	if c.knock >= 0 {
		var open bool
		if tr != nil {
			open = tr.knockWindow(s.Knock, c.knock, rule, pkt, now)
		} else {
			open = s.Knock.Allowed(c.knock, pkt.Src, pkt.Dst, pkt.Proto, pkt.DstPort, now)
		}
		if !open {
			return false
		}
	}
	if c.recent >= 0 {
		addr := pkt.Src
		if c.recentMatch.ByDst {
			addr = pkt.Dst
		}
		var matched bool
		if tr != nil {
			matched = tr.recent(s.Recent, c.recent, c.recentMatch, rule, addr, pkt.TTL, now)
		} else {
			matched = s.Recent.Match(c.recent, c.recentMatch, addr, pkt.TTL, now)
		}
		if !matched {
			return false
		}
	}
	return true
}

// tracing is the rules.Stateful of an explanation: the policy's stateful
// conditions, recorded and without side effects.
type tracing struct {
	s   *stateful
	tr  *Trace
	now int64
}

func (t tracing) Allow(rule int, pkt *rules.Packet) bool { return t.s.allow(rule, pkt, t.now, t.tr) }

// limit is called when rule (which has stateful conditions) matched: its
// rate guard drops (and logs) what exceeds it, e.g. the 4th SSH connection
// within 10 s. With a Trace the attempt is not counted.
func (s *stateful) limit(rule int, p *Parsed, now int64, tr *Trace) (v Verdict, limited bool) {
	if rule < 0 || rule >= len(s.conds) {
		return Verdict{}, false
	}
	c := &s.conds[rule]
	if c.guard < 0 {
		return Verdict{}, false
	}
	var ok bool
	if tr != nil {
		ok = tr.guard(s.Guards, c.guard, rule, p.Src, now)
	} else {
		ok = s.Guards.Allow(c.guard, p.Src, now)
	}
	if ok {
		return Verdict{}, false
	}
	return Verdict{Action: rules.ActionDrop, Rule: rule, Reason: ReasonRateLimit, Log: c.guardLog}, true
}

// inspect hands packets of tracked flows that reach the engine (the FTP
// control channel) to the FTP helper.
func (s *stateful) inspect(p *Parsed, b []byte, now int64) {
	if s.FTP != nil {
		s.FTP.Inspect(p, b, now)
	}
}

package engine

import (
	"sync"
	"sync/atomic"

	"github.com/nfqfw/nfqfw/rules"
)

// numActions sizes per-action counter arrays (indexed by rules.Action).
const numActions = int(rules.ActionReject) + 1

// Protocol labels of the NEW-flow counter.
const (
	labelTCP = iota
	labelUDP
	labelICMP
	labelICMPv6
	labelOther
	numProtoLabels
)

var protoLabels = [numProtoLabels]string{"tcp", "udp", "icmp", "icmpv6", "other"}

func protoLabel(proto uint8) int {
	switch proto {
	case 6:
		return labelTCP
	case 17:
		return labelUDP
	case 1:
		return labelICMP
	case 58:
		return labelICMPv6
	}
	return labelOther
}

// ruleCounter counts the packets a rule (or a chain's policy) decided, by
// action.
type ruleCounter struct {
	name   string
	hook   rules.Hook
	policy bool
	n      [numActions]atomic.Uint64
}

// counterSet keeps one ruleCounter per (hook, name) for the life of the
// engine, so that a rule's counters survive a reload that keeps its name.
// It is only touched when a policy is installed, never per packet.
type counterSet struct {
	mu sync.Mutex
	m  map[counterKey]*ruleCounter
	l  []*ruleCounter // in creation order, for stable exposition
}

type counterKey struct {
	name   string
	hook   rules.Hook
	policy bool
}

func (s *counterSet) get(name string, h rules.Hook, policy bool) *ruleCounter {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := counterKey{name, h, policy}
	if c, ok := s.m[k]; ok {
		return c
	}
	if s.m == nil {
		s.m = make(map[counterKey]*ruleCounter)
	}
	c := &ruleCounter{name: name, hook: h, policy: policy}
	s.m[k] = c
	s.l = append(s.l, c)
	return c
}

func (s *counterSet) all() []*ruleCounter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*ruleCounter(nil), s.l...)
}

func (e *Engine) count(a *active, p *Parsed, v Verdict) {
	e.reasons[v.Reason][v.Action].Add(1)
	switch {
	case v.Rule >= 0 && v.Rule < len(a.rules):
		a.rules[v.Rule].n[v.Action].Add(1)
	case v.Reason == ReasonPolicy && p.Hook < rules.NumHooks:
		a.chains[p.Hook].n[v.Action].Add(1)
	}
}

// RuleCount is the number of packets one rule decided with one action.
// Rule is "" for a chain's default policy.
type RuleCount struct {
	Rule    string
	Hook    rules.Hook
	Action  rules.Action
	Packets uint64
}

// RuleCounts calls fn for every rule and chain policy counter that is not
// zero. Counters of rules removed by a reload are still reported.
func (e *Engine) RuleCounts(fn func(RuleCount)) {
	for _, c := range e.ruleCnt.all() {
		for a := range c.n {
			if n := c.n[a].Load(); n > 0 {
				fn(RuleCount{Rule: c.name, Hook: c.hook, Action: rules.Action(a), Packets: n})
			}
		}
	}
}

// ReasonCounts calls fn with the number of packets decided for each reason
// and action that is not zero.
func (e *Engine) ReasonCounts(fn func(r Reason, a rules.Action, n uint64)) {
	for r := range e.reasons {
		for a := range e.reasons[r] {
			if n := e.reasons[r][a].Load(); n > 0 {
				fn(Reason(r), rules.Action(a), n)
			}
		}
	}
}

// NewFlowCounts calls fn with the number of flows admitted per protocol
// label (tcp, udp, icmp, icmpv6, other).
func (e *Engine) NewFlowCounts(fn func(proto string, n uint64)) {
	for i := range e.newFlows {
		fn(protoLabels[i], e.newFlows[i].Load())
	}
}

// Pickups returns the number of flows admitted from a TCP segment picked
// up mid-stream (flows.tcp_pickup policy).
func (e *Engine) Pickups() uint64 { return e.pickups.Load() }

// Adopted returns the number of kernel flows Adopt admitted.
func (e *Engine) Adopted() uint64 { return e.adopted.Load() }

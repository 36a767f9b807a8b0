package engine

import (
	"log/slog"
	"sync/atomic"

	"github.com/nfqfw/nfqfw/rules"
)

// Engine decides queued packets. It owns the flow table and the running
// policy; queue readers each use their own Worker. The policy is swapped
// atomically by SetPolicy while readers run; flows and counters survive the
// swap.
type Engine struct {
	active atomic.Pointer[active]
	flows  *Table
	ifs    ifNames
	log    *packetLog

	reasons  [NumReasons][numActions]atomic.Uint64
	newFlows [numProtoLabels]atomic.Uint64
	pickups  atomic.Uint64 // flows admitted from a TCP segment picked up mid-stream
	adopted  atomic.Uint64 // kernel flows admitted by Adopt
	ruleCnt  counterSet

	trace atomic.Pointer[tracer] // nil: no trace runs
}

// active is a policy together with the counters of its rules and the
// stateful matchers built for it, swapped as one.
type active struct {
	policy *rules.Policy
	st     *stateful      // nil when the policy has no stateful matchers
	rules  []*ruleCounter // index = rule id
	chains [rules.NumHooks]*ruleCounter
	pickup bool // flows.tcp_pickup policy: mid-stream TCP segments are decided as NEW
}

// Options configure an Engine.
type Options struct {
	Logger  *slog.Logger // drop/reject log lines; nil discards them
	LogRate int          // log lines per second on the packet path (0: 10)
}

// New returns an engine running policy p.
func New(p *rules.Policy, opts Options) *Engine {
	c := p.Config()
	e := &Engine{
		flows: NewTable(c.Flows.Max, c.Flows.Timeouts),
		log:   newPacketLog(opts.Logger, opts.LogRate),
	}
	e.SetPolicy(p, nil)
	return e
}

// SetPolicy swaps in a new policy and the stateful matchers built for it
// (nil for none). Packets being decided keep the old pair; the next packet
// sees the new one. Counters of rules that keep their name keep counting.
// The policy's flow timeouts and packet log rate take effect with it.
func (e *Engine) SetPolicy(p *rules.Policy, m *Matchers) {
	e.flows.SetTimeouts(p.Config().Flows.Timeouts)
	if r := p.Config().Log.Rate; r > 0 {
		e.log.setRate(r)
	}
	a := &active{policy: p, pickup: p.Config().Flows.TCPPickup != rules.TCPPickupDrop}
	if m != nil {
		a.st = newStateful(p, m)
	}
	for _, r := range p.Rules() {
		a.rules = append(a.rules, e.ruleCnt.get(r.Name, r.Hook, false))
	}
	for h := rules.Hook(0); h < rules.NumHooks; h++ {
		a.chains[h] = e.ruleCnt.get("", h, true)
	}
	e.active.Store(a)
}

// Policy returns the running policy.
func (e *Engine) Policy() *rules.Policy { return e.active.Load().policy }

// Flows returns the engine's flow table.
func (e *Engine) Flows() *Table { return e.flows }

// LogRate returns the packet log lines allowed per second (log.rate).
func (e *Engine) LogRate() int { return e.log.limit.N() }

// RefreshInterfaces re-reads the interface names used to match in/out rules.
func (e *Engine) RefreshInterfaces() error { return e.ifs.refresh() }

// Worker decides packets for one queue reader. It owns the decode state and
// is not safe for concurrent use; create one per reader with NewWorker.
type Worker struct {
	e   *Engine
	dec *Decoder
	p   Parsed
}

// NewWorker returns a Worker for one queue reader.
func (e *Engine) NewWorker() *Worker {
	return &Worker{e: e, dec: NewDecoder()}
}

// Parsed returns the packet the worker decided last. Valid until the next
// call of Decide; for tests and logging.
func (w *Worker) Parsed() *Parsed { return &w.p }

// Decide decodes b (starting at the IP header), classifies it against the
// flow table and returns the verdict. now is the packet's time in unix
// nanoseconds. It does not allocate unless it logs.
func (w *Worker) Decide(b []byte, hook rules.Hook, inIf, outIf, mark uint32, now int64) Verdict {
	e := w.e
	a := e.active.Load()
	p := &w.p
	w.dec.Decode(b, p)
	p.Hook = hook
	p.InIface = e.ifs.name(inIf)
	p.OutIface = e.ifs.name(outIf)
	p.Mark = mark

	var (
		t  *tracer
		tr *Trace
	)
	if t = e.trace.Load(); t != nil {
		if !t.wants(p) || !t.admit(now) {
			t = nil
		} else if p.Kind == KindOK {
			tr = w.traceBefore(a, t)
		}
	}
	var v Verdict
	switch p.Kind {
	case KindOK:
		v = w.decide(a, b, now)
	case KindFragment:
		v = Verdict{Action: rules.ActionDrop, Rule: -1, Reason: ReasonFragment}
	case KindUnsupported:
		v = Verdict{Action: rules.ActionDrop, Rule: -1, Reason: ReasonUnsupported}
	default:
		v = Verdict{Action: rules.ActionDrop, Rule: -1, Reason: ReasonMalformed}
	}
	e.count(a, p, v)
	if t != nil {
		w.traceAfter(a, t, tr, v)
	}
	if v.Log {
		e.log.packet(a.policy, p, v)
	}
	return v
}

func (w *Worker) decide(a *active, b []byte, now int64) Verdict {
	e := w.e
	p := &w.p
	st := a.st
	class := e.flows.Classify(p, now)
	pickup := class == ClassPickup
	if pickup && !a.pickup {
		class = ClassInvalid
	}
	switch class {
	case ClassEstablished:
		if st != nil {
			st.inspect(p, b, now)
		}
		return Verdict{Action: rules.ActionAccept, Rule: -1, Reason: ReasonEstablished}
	case ClassRelated:
		if chainConfig(a.policy.Config(), p.Hook).RelatedPolicy {
			c := a.policy.Chain(p.Hook)
			return Verdict{Action: c.Action, Reject: c.RejectWith, Log: c.Log != nil, Rule: -1, Reason: ReasonPolicy}
		}
		return Verdict{Action: rules.ActionAccept, Rule: -1, Reason: ReasonRelated}
	case ClassInvalid:
		c := chainConfig(a.policy.Config(), p.Hook)
		return Verdict{Action: c.Invalid, Reject: c.InvalidRejectWith, Rule: -1, Reason: ReasonInvalid}
	}

	// NEW, or a TCP segment picked up mid-stream: decided as the
	// connection's first packet would be.
	v := decideNew(a, p, e.flows, now, nil)
	if v.Action == rules.ActionAccept && v.Reason != ReasonRelated {
		if !e.flows.Admit(p, v.Rule, now) {
			v = Verdict{Action: a.policy.Config().Queue.FailureVerdict, Rule: -1, Reason: ReasonTableFull}
		} else {
			e.newFlows[protoLabel(p.Proto)].Add(1)
			if pickup {
				e.pickups.Add(1)
				if st != nil {
					st.inspect(p, b, now) // an FTP command may ride on it
				}
			}
		}
	}
	return v
}

// decideNew decides the first packet of a connection: the stateful
// matchers look first, then the policy's rules with their stateful
// conditions, then the chain's policy. It does not admit the flow.
//
// tr nil is the packet path. With a Trace it explains: every matcher and
// stateful condition consulted records what it found, and nothing changes
// (no knock progress, no guard counting, no recent-list insertion, no flow
// admitted); flows may then be nil.
func decideNew(a *active, p *Parsed, flows *Table, now int64, tr *Trace) Verdict {
	st := a.st
	if st != nil {
		if v, decided := st.before(p, flows, now, tr); decided {
			return v
		}
	}
	var sr rules.Stateful = noState{}
	if st != nil {
		sr = st
		if tr != nil {
			sr = tracing{s: st, tr: tr, now: now}
		}
	}
	if i := a.policy.Eval(&p.Packet, sr); i >= 0 {
		r := &a.policy.Rules()[i]
		v := Verdict{Action: r.Action, Reject: r.RejectWith, Log: r.Log != nil, Rule: i, Reason: ReasonRule}
		if tr != nil {
			tr.matched(i)
		}
		if r.HasState && st != nil {
			if lv, limited := st.limit(i, p, now, tr); limited {
				v = lv
			}
		}
		return v
	}
	c := a.policy.Chain(p.Hook)
	if tr != nil {
		tr.add("policy", "", true, "no rule of the %s chain matched: its policy %s", p.Hook, c.Action)
	}
	return Verdict{Action: c.Action, Reject: c.RejectWith, Log: c.Log != nil, Rule: -1, Reason: ReasonPolicy}
}

// noState is the Stateful of an engine without stateful matchers: every
// stateful condition holds.
type noState struct{}

func (noState) Allow(int, *rules.Packet) bool { return true }

// chainConfig returns the configuration of the chain of hook h.
func chainConfig(c *rules.Config, h rules.Hook) *rules.Chain {
	switch h {
	case rules.HookForward:
		return &c.Forward
	case rules.HookOutput:
		return &c.Output
	}
	return &c.Input
}

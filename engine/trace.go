package engine

import (
	"errors"
	"net/netip"
	"sync/atomic"

	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/rules"
)

// TraceFilter selects the packets a trace explains: an address and a port
// on either side (zero values: any).
type TraceFilter struct {
	Addr netip.Addr `json:"addr,omitzero"`
	Port uint16     `json:"port,omitempty"`
}

// ErrTraceBusy refuses a second trace while one runs.
var ErrTraceBusy = errors.New("another trace is running")

// tracer is a running trace: the packets it wants are explained and sent
// to out, at most rate a second; what exceeds the rate or finds out full
// is counted in dropped.
type tracer struct {
	addr    [16]byte
	anyAddr bool
	port    uint16
	rate    int64
	out     chan Explanation
	second  atomic.Int64 // the second the tokens are for
	used    atomic.Int64 // explanations sent in that second
	dropped atomic.Uint64
}

// StartTrace starts explaining the packets the engine decides that f
// selects, at most rate a second (at least 1), into the returned channel;
// stop ends the trace and returns how many explanations were dropped (over
// the rate, or not read in time). One trace runs at a time. The packet
// path pays one atomic load while no trace runs.
func (e *Engine) StartTrace(f TraceFilter, rate int) (<-chan Explanation, func() uint64, error) {
	t := &tracer{anyAddr: !f.Addr.IsValid(), port: f.Port, rate: int64(max(rate, 1)), out: make(chan Explanation, 256)}
	if f.Addr.IsValid() {
		t.addr = f.Addr.Unmap().As16()
		if f.Addr.Unmap().Is6() {
			t.addr = f.Addr.As16()
		}
	}
	if !e.trace.CompareAndSwap(nil, t) {
		return nil, nil, ErrTraceBusy
	}
	return t.out, func() uint64 { e.trace.CompareAndSwap(t, nil); return t.dropped.Load() }, nil
}

func (t *tracer) wants(p *Parsed) bool {
	if !t.anyAddr && p.Src != t.addr && p.Dst != t.addr {
		return false
	}
	return t.port == 0 || p.SrcPort == t.port || p.DstPort == t.port
}

// admit takes a token of the current second.
func (t *tracer) admit(now int64) bool {
	sec := now / 1e9
	if old := t.second.Load(); old != sec && t.second.CompareAndSwap(old, sec) {
		t.used.Store(0)
	}
	if t.used.Add(1) > t.rate {
		t.dropped.Add(1)
		return false
	}
	return true
}

// traceBefore explains p, a packet a trace wants, before the decision
// changes any state: as a NEW flow's first packet would be decided.
func (w *Worker) traceBefore(a *active, t *tracer) *Trace {
	tr := &Trace{pol: a.policy}
	p := w.p // a copy: the decision reads the worker's
	decideNew(a, &p, nil, clock.Now(), tr)
	return tr
}

// traceAfter sends the explanation of the decided packet: the steps found
// before, when the verdict came from the new-flow decision, else what the
// flow table said.
func (w *Worker) traceAfter(a *active, t *tracer, tr *Trace, v Verdict) {
	p := &w.p
	f := Flow{Hook: p.Hook, Proto: p.Proto, Src: unmapped(p.Src), Dst: unmapped(p.Dst), SrcPort: p.SrcPort, DstPort: p.DstPort,
		InIface: p.InIface, OutIface: p.OutIface, ICMPType: p.ICMPType, ICMPCode: p.ICMPCode}
	x := Explanation{Flow: f.String(), Action: v.Action.String(), Reason: v.Reason.String(), Log: v.Log}
	if v.Action == rules.ActionReject {
		x.Reject = v.Reject.String()
	}
	if rs := a.policy.Rules(); v.Rule >= 0 && v.Rule < len(rs) {
		x.Rule = rs[v.Rule].Name
	}
	switch v.Reason {
	case ReasonEstablished, ReasonInvalid, ReasonMalformed, ReasonFragment, ReasonUnsupported:
		x.Steps = []Step{{Matcher: "flows", Decided: true, Text: "the packet is " + v.Reason.String() + " (not the first packet of a new flow)"}}
	case ReasonRelated, ReasonPolicy:
		if tr == nil || len(tr.steps) == 0 || (v.Reason == ReasonRelated && !hasMatcher(tr.steps, "ftp")) {
			x.Steps = []Step{{Matcher: "flows", Decided: true, Text: "the packet is RELATED to a tracked flow"}}
			break
		}
		x.Steps = tr.steps
	default:
		if tr != nil {
			x.Steps = tr.steps
		}
	}
	select {
	case t.out <- x:
	default:
		t.dropped.Add(1)
	}
}

func hasMatcher(steps []Step, m string) bool {
	for _, s := range steps {
		if s.Matcher == m && s.Decided {
			return true
		}
	}
	return false
}

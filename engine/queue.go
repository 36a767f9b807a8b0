package engine

import (
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/nfq"
	"github.com/nfqfw/nfqfw/rules"
)

// Observer records one value, such as a verdict latency in seconds
// (prometheus.Observer is one).
type Observer interface {
	Observe(float64)
}

// QueueDecider decides the packets of one NFQUEUE reader with its own
// Worker: it implements nfq.Decider and is used from that reader's receive
// goroutine only.
type QueueDecider struct {
	w       *Worker
	eng     *Engine
	latency Observer // verdict latency of this queue, resolved once
}

// NewQueueDecider returns the decider of one queue reader; latency
// receives the time from receipt to verdict of every packet.
func (e *Engine) NewQueueDecider(latency Observer) *QueueDecider {
	return &QueueDecider{w: e.NewWorker(), eng: e, latency: latency}
}

// Decide implements nfq.Decider: the netfilter hook names the chain, the
// Worker decides, and the verdict becomes the queue's answer (a reject is
// a repeat with the reject kind's mark, which a REJECT rule in the kernel
// matches). Packets of hooks without a chain are accepted.
func (dc *QueueDecider) Decide(pkt []byte, m nfq.Meta) nfq.Verdict {
	var hook rules.Hook
	switch m.Hook {
	case nfq.HookInput:
		hook = rules.HookInput
	case nfq.HookForward:
		hook = rules.HookForward
	case nfq.HookOutput:
		hook = rules.HookOutput
	default:
		return nfq.Accept
	}
	start := time.Now()
	v := dc.w.Decide(pkt, hook, m.InDev, m.OutDev, m.Mark, clock.Now())
	dc.latency.Observe(time.Since(start).Seconds())
	switch v.Action {
	case rules.ActionAccept:
		return nfq.Accept
	case rules.ActionReject:
		q := dc.eng.Policy().Config().Queue
		return nfq.RepeatWithMark(m.Mark&^q.MarkBits() | q.RejectMark(v.Reject))
	}
	return nfq.Drop
}

package engine

import (
	"sync/atomic"
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

	// ready, until closed, holds the first packet (the kernel queues the
	// rest); nil once passed.
	ready <-chan struct{}
	// unplaced counts packets from a hook without a chain.
	unplaced atomic.Uint64
}

// NewQueueDecider returns the decider of one queue reader; latency
// receives the time from receipt to verdict of every packet. No packet is
// decided before ready is closed (nil: at once): the daemon binds its
// queues and installs its ruleset first, then restores its state, and the
// packets that arrive meanwhile wait in the kernel's queue.
func (e *Engine) NewQueueDecider(latency Observer, ready <-chan struct{}) *QueueDecider {
	return &QueueDecider{w: e.NewWorker(), eng: e, latency: latency, ready: ready}
}

// Unplaced returns how many packets came from a hook without a chain; safe
// from any goroutine.
func (dc *QueueDecider) Unplaced() uint64 { return dc.unplaced.Load() }

// Decide implements nfq.Decider: the netfilter hook names the chain, the
// Worker decides, and the verdict becomes the queue's answer (a reject is
// a repeat with the reject kind's mark, which a REJECT rule in the kernel
// matches). A packet from a hook without a chain, which nfqfw's ruleset
// never queues, gets the failure verdict and is counted: never an
// implicit accept.
func (dc *QueueDecider) Decide(pkt []byte, m nfq.Meta) nfq.Verdict {
	if dc.ready != nil {
		<-dc.ready
		dc.ready = nil
	}
	var hook rules.Hook
	switch m.Hook {
	case nfq.HookInput:
		hook = rules.HookInput
	case nfq.HookForward:
		hook = rules.HookForward
	case nfq.HookOutput:
		hook = rules.HookOutput
	default:
		dc.unplaced.Add(1)
		if dc.eng.Policy().Config().Queue.FailureVerdict == rules.ActionAccept {
			return nfq.Accept
		}
		return nfq.Drop
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

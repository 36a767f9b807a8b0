package nfq

import "sync/atomic"

// Stats are a Reader's counters since Open. All are totals.
type Stats struct {
	Packets       uint64 // packets received from the queue
	Accepted      uint64 // accept verdicts sent
	Dropped       uint64 // drop verdicts sent
	Repeated      uint64 // repeat+mark verdicts sent
	Panics        uint64 // Decide panics, answered with the failure verdict
	Errors        uint64 // receive errors other than ENOBUFS (the reader went on)
	ENOBUFS       uint64 // receive buffer overruns: the kernel lost messages for us
	VerdictErrors uint64 // verdicts the kernel did not take
	Malformed     uint64 // queue messages without a packet id (unanswerable)
	// Unseen counts packet ids skipped in the queue's sequence (messages
	// lost or unparsable, or packets the kernel dropped with a full
	// socket); with batching they are answered with the failure verdict.
	Unseen uint64
}

// counters is the live, atomically updated form of Stats. The receive
// goroutine writes, anyone reads.
type counters struct {
	packets, accepted, dropped, repeated      atomic.Uint64
	panics, errors, enobufs, verdictErrs, bad atomic.Uint64
	unseen                                    atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Packets:       c.packets.Load(),
		Accepted:      c.accepted.Load(),
		Dropped:       c.dropped.Load(),
		Repeated:      c.repeated.Load(),
		Panics:        c.panics.Load(),
		Errors:        c.errors.Load(),
		ENOBUFS:       c.enobufs.Load(),
		VerdictErrors: c.verdictErrs.Load(),
		Malformed:     c.bad.Load(),
		Unseen:        c.unseen.Load(),
	}
}

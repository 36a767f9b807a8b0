package nfq

import "sync/atomic"

// verdictSink takes verdict messages in order: the socket queues them for
// the next send. verdict is NF_ACCEPT, NF_DROP or NF_REPEAT; batch answers
// every queued id up to id; mark is set when withMark.
type verdictSink interface {
	verdict(id, verdict uint32, batch, withMark bool, mark uint32)
}

// issuer turns verdicts into verdict messages. Consecutive accepts are held
// back and answered by one batch verdict (which answers every queued id up
// to the given one and carries no mark) when batch of them are held or the
// reader flushes (it has decided everything one receive read); any other
// verdict flushes the held accepts first, so
// the order of answers is kept and no mark is lost. With batch <= 1 every
// accept gets its own message. Only the receive goroutine uses an issuer.
type issuer struct {
	sink  verdictSink
	c     *counters
	batch int    // accepts held at most before a batch verdict
	held  int    // accepts held now
	last  uint32 // highest held id, valid when held > 0
	next  uint32 // id expected next, valid when started
	// started is set by the first packet.
	started bool
	// unseen is the verdict (nfDrop or nfAccept) for ids the reader never
	// saw, valid with batch > 1. The failure verdict may change with a
	// reload, from another goroutine.
	unseen *atomic.Uint32
}

func (is *issuer) issue(id uint32, v Verdict) {
	if is.batch > 1 {
		is.skipped(id)
	}
	switch {
	case v.Accept:
		is.accept(id)
	case v.Repeat:
		is.flush()
		is.c.repeated.Add(1)
		is.sink.verdict(id, nfRepeat, false, true, v.Mark)
	default:
		is.flush()
		is.c.dropped.Add(1)
		is.sink.verdict(id, nfDrop, false, false, 0)
	}
}

func (is *issuer) accept(id uint32) {
	is.c.accepted.Add(1)
	if is.batch <= 1 {
		is.sink.verdict(id, nfAccept, false, false, 0)
		return
	}
	is.held++
	is.last = id
	if is.held >= is.batch {
		is.flush()
	}
}

// skipped answers the ids before id that never reached the reader. The
// kernel numbers the packets of a queue in order and sends them in order,
// so a gap means messages the reader could not parse, or packets the
// kernel dropped (or accepted, fail-open) because the socket was full. The
// first kind still waits in the queue and the next batch accept would let
// it through undecided: answer the whole gap with the failure verdict in one
// batch message first. For the second kind there is nothing left to answer
// and the kernel replies ENOENT, which the reader counts.
//
// Ids are 32-bit and wrap: a gap is id - next in modular arithmetic, and
// an id "behind" next (a gap of 2^31 or more, which no queue holds) is not
// one.
func (is *issuer) skipped(id uint32) {
	if gap := id - is.next; is.started && gap != 0 && gap < 1<<31 {
		is.flush()
		is.c.unseen.Add(uint64(gap))
		is.sink.verdict(id-1, is.unseen.Load(), true, false, 0)
	}
	is.next, is.started = id+1, true
}

// flush answers the held accepts with one batch verdict.
func (is *issuer) flush() {
	if is.held == 0 {
		return
	}
	is.held = 0
	is.sink.verdict(is.last, nfAccept, true, false, 0)
}

package nfq

import (
	nfqueue "github.com/florianl/go-nfqueue/v2"
)

// verdictSink is the part of *nfqueue.Nfqueue that answers packets.
type verdictSink interface {
	SetVerdict(id uint32, verdict int) error
	SetVerdictBatch(id uint32, verdict int) error
	SetVerdictWithOption(id uint32, verdict int, opts ...nfqueue.VerdictOption) error
}

// issuer sends verdicts. Consecutive accepts are held back and answered by
// one SetVerdictBatch (which answers every queued id up to the given one and
// carries no mark) when batch of them are held or the reader flushes (the
// socket is drained); any other verdict flushes the held accepts first, so
// the order of answers is kept and no mark is lost. With batch <= 1 every
// accept is sent at once. Only the receive goroutine uses an issuer.
type issuer struct {
	sink  verdictSink
	c     *counters
	batch int    // accepts held at most before a batch verdict
	held  int    // accepts held now
	last  uint32 // highest held id, valid when held > 0
	next  uint32 // id expected next; 0 before the first packet
	// unseen is the verdict (nfqueue.NfDrop or NfAccept) for ids the
	// reader never saw, valid with batch > 1.
	unseen int
	onErr  func(op string, id uint32, err error)
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
		is.check("repeat", id, is.sink.SetVerdictWithOption(id, nfqueue.NfRepeat, nfqueue.WithMark(v.Mark)))
	default:
		is.flush()
		is.c.dropped.Add(1)
		is.check("drop", id, is.sink.SetVerdict(id, nfqueue.NfDrop))
	}
}

func (is *issuer) accept(id uint32) {
	is.c.accepted.Add(1)
	if is.batch <= 1 {
		is.check("accept", id, is.sink.SetVerdict(id, nfqueue.NfAccept))
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
// so a gap means messages the library could not parse, or packets the
// kernel dropped (or accepted, fail-open) because the socket was full. The
// first kind still waits in the queue and the next batch accept would let
// it through undecided: answer the whole gap with the failure verdict in one
// batch message first. For the second kind there is nothing left to answer
// and the kernel replies ENOENT, which the reader counts.
func (is *issuer) skipped(id uint32) {
	if is.next != 0 && id > is.next {
		is.flush()
		is.c.unseen.Add(uint64(id - is.next))
		is.check("answer unseen", id-1, is.sink.SetVerdictBatch(id-1, is.unseen))
	}
	is.next = id + 1
}

// flush answers the held accepts with one batch verdict.
func (is *issuer) flush() {
	if is.held == 0 {
		return
	}
	is.held = 0
	is.check("accept batch", is.last, is.sink.SetVerdictBatch(is.last, nfqueue.NfAccept))
}

func (is *issuer) check(op string, id uint32, err error) {
	if err != nil {
		is.c.verdictErrs.Add(1)
		if is.onErr != nil {
			is.onErr(op, id, err)
		}
	}
}

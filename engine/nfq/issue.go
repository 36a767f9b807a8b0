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

// issuer sends verdicts. It is prepared for batching: consecutive accepts
// may be held back and answered by one SetVerdictBatch (which answers every
// queued id up to the given one and carries no mark); any other verdict
// flushes the held accepts first, so the order of answers is kept and no
// mark is lost. With batch <= 1 every accept is sent at once. Only the
// receive goroutine uses an issuer.
type issuer struct {
	sink  verdictSink
	c     *counters
	batch int    // accepts held at most before a batch verdict
	held  int    // accepts held now
	last  uint32 // highest held id, valid when held > 0
	onErr func(op string, id uint32, err error)
}

func (is *issuer) issue(id uint32, v Verdict) {
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

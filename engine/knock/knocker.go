package knock

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/engine/internal/lru"
	"github.com/nfqfw/nfqfw/rules"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// DefaultMaxSources is the default bound on the sources a Knocker tracks,
// separately for sequences in progress and for open windows.
const DefaultMaxSources = 65536

// recentFailures is how many failures Status reports.
const recentFailures = 50

// Knocker tracks knock sequences per source and the windows they open. It
// is safe for concurrent use by every queue reader: state is sharded by
// source, each shard behind its own mutex, and the per-sequence counters
// are atomic, so the packet path takes no global lock.
//
// Times are Unix nanoseconds (time.Time.UnixNano) throughout.
type Knocker struct {
	seqs   []*sequence
	shards []*shard
	mask   uint64
	seed   uint64
	clock  func() time.Time

	// startPorts marks the first step's (protocol, port) of every static
	// sequence: a packet from a source without progress that is none of
	// these (nor a rotating first step) is no knock.
	startPorts [2][1024]uint64
	rotating   bool

	evicted     atomic.Uint64
	evictedOpen atomic.Uint64

	onDecision func(decision.Decision) // WithDecisions; nil: none
}

// shard is the state of the sources that hash to it.
type shard struct {
	mu       sync.Mutex
	prog     *table[progress]
	open     *table[window]
	fails    [recentFailures]failure
	failNext int
	changes  uint64 // progress, windows or failures changed: Changes

	// Entry counts, readable without mu so that a shard with nothing to
	// look at costs no lock.
	nprog atomic.Int32
	nopen atomic.Int32
}

// progress is a source's progress in one sequence.
type progress struct {
	step    uint8 // steps taken; 0: none
	started int64 // time of the first step
	last    int64 // time of the latest step
	ctr     int64 // time-step counter the ports are derived from (rotating)
}

// window is an open window of one sequence for a source.
type window struct {
	until int64 // 0: none
}

// failure is one entry of a shard's ring of recent failures.
type failure struct {
	when   int64
	src    [16]byte
	seq    uint16
	reason FailReason
}

// Option changes how New builds a Knocker.
type Option func(*Knocker, *config)

type config struct{ maxSources int }

// WithMaxSources bounds the sources tracked with progress (and, separately,
// with open windows) to about n; the least recently active source is evicted
// when a shard is full, and counted in Stats.
func WithMaxSources(n int) Option {
	return func(_ *Knocker, c *config) { c.maxSources = max(n, 1) }
}

// WithClock sets the clock Now reads (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(k *Knocker, _ *config) { k.clock = now }
}

// WithDecisions makes the Knocker report every knock decision it makes to
// fn: a window opened (decision.KnockWindow: source, sequence, until when)
// and the use of a one-shot sequence (decision.KnockUse: source, sequence,
// the time step used, until when a replay is refused). Not what Apply
// applies. fn is called on the packet path with a shard's lock held: it
// must only queue the decision (never block, never call the Knocker).
func WithDecisions(fn func(decision.Decision)) Option {
	return func(k *Knocker, _ *config) { k.onDecision = fn }
}

// Now reads the Knocker's clock (see WithClock); the control socket answers
// Status at it.
func (k *Knocker) Now() time.Time { return k.clock() }

// New compiles the knock sequences of a validated configuration. Zero
// durations take defaults: StepWindow DefaultStepWindow, Window
// StepWindow times the number of steps, OpenFor DefaultOpenFor, Period
// DefaultPeriod.
func New(knocks []rules.Knock, opts ...Option) *Knocker {
	k := &Knocker{clock: time.Now}
	c := config{maxSources: DefaultMaxSources}
	for _, o := range opts {
		o(k, &c)
	}
	for _, kn := range knocks {
		if len(kn.Steps) == 0 || len(kn.Steps) > 255 {
			continue // Parse refuses these; a sequence of none would open for anyone
		}
		s := compile(kn)
		k.seqs = append(k.seqs, s)
		if s.rotating() {
			k.rotating = true
			s.refresh(clock.Now(), 1)
		} else if pi := protoIndex(s.steps[0].proto); pi >= 0 {
			p := s.steps[0].port
			k.startPorts[pi][p/64] |= 1 << (p % 64)
		}
	}
	// Shards: a power of two up to 64, each holding at least 16 sources.
	n := 1
	for n < 64 && n*2*16 <= c.maxSources {
		n *= 2
	}
	per := (c.maxSources + n - 1) / n
	nseq := max(len(k.seqs), 1)
	k.shards = make([]*shard, n)
	for i := range k.shards {
		k.shards[i] = &shard{prog: newTable[progress](per, nseq), open: newTable[window](per, nseq)}
	}
	k.mask = uint64(n - 1)
	var b [8]byte
	rand.Read(b[:])
	k.seed = binary.LittleEndian.Uint64(b[:])
	return k
}

func protoIndex(p uint8) int {
	switch p {
	case 6:
		return 0
	case 17:
		return 1
	}
	return -1
}

// Index returns the index of the sequence named name, for Allowed, or -1.
func (k *Knocker) Index(name string) int {
	for i, s := range k.seqs {
		if s.name == name {
			return i
		}
	}
	return -1
}

func (k *Knocker) shard(src [16]byte) *shard {
	return k.shards[lru.Hash(&src, k.seed)&k.mask]
}

// mayStart reports whether pk is the first step of some sequence at now.
func (k *Knocker) mayStart(pk step, now int64) bool {
	if pi := protoIndex(pk.proto); pi >= 0 && k.startPorts[pi][pk.port/64]&(1<<(pk.port%64)) != 0 {
		return true
	}
	if k.rotating {
		for _, s := range k.seqs {
			if s.rotating() {
				if _, ok := s.startCounter(pk, now); ok {
					return true
				}
			}
		}
	}
	return false
}

// Observe is called for the first packet of every NEW TCP or UDP flow
// (a SYN, a UDP datagram) before the policy; local says it is addressed to
// the host itself (INPUT). It returns true when the packet was a knock,
// which the engine then drops (reason "knock") like a packet to a closed
// port, so that the sequence is invisible to a scanner.
//
// Only the sequences the packet is addressed to take part: a sequence
// without a target (rules.Knock.Dst) sees what is addressed to the host,
// one with a target what is addressed to it. A packet is a knock when, for
// some such sequence, it is the next step of the source's progress, a
// repeat of the step just taken (a retransmitted SYN), or the first step.
// For each such sequence in which the source has progress: the next step
// advances it, completing the sequence opens its window (see Allowed); a
// repeat changes nothing; a packet that is a knock only for other
// sequences leaves it alone (sequences may be interleaved); another step
// of this sequence out of order resets it and counts a wrong_port failure
// (and if the packet is the sequence's first step, it starts again); a
// packet to a port that is no step of the sequence leaves it alone, unless
// the sequence resets on any port (rules.Knock.ResetOnAnyPort). Progress
// older than StepWindow since the last step or Window since the first
// resets with a timeout failure.
//
// Observe does not allocate once the tables have grown to the working set:
// they start small and double up to the capacity, and the Go map under them
// may rehash a few times while deletions and insertions settle (measured:
// a few hundred allocations in the first million operations of 100k
// churning sources, then none). A rotating sequence derives its ports once
// per Period, which allocates; Expire does that ahead of the packet path.
func (k *Knocker) Observe(src, dst [16]byte, local bool, proto uint8, dport uint16, now int64) bool {
	if (proto != 6 && proto != 17) || len(k.seqs) == 0 {
		return false
	}
	pk := step{proto, dport}
	if k.rotating {
		for _, s := range k.seqs {
			s.refresh(now, 0)
		}
	}
	sh := k.shard(src)
	if sh.nprog.Load() == 0 && !k.mayStart(pk, now) {
		return false
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()

	e, found := sh.prog.get(src)
	var ps []progress
	if found {
		ps = sh.prog.values(e)
	}
	// Pass 1: is the packet a knock for any sequence?
	knock := k.stepOf(ps, dst, local, pk, now) >= 0
	if !knock && !found {
		return false
	}
	// Pass 2: apply.
	for i, s := range k.seqs {
		if !s.targets(dst, local) {
			continue
		}
		var p progress
		if found {
			p = ps[i]
		}
		if p.step > 0 && s.expired(p, now) {
			k.fail(sh, s, i, src, s.deadline(p), FailTimeout)
			p = progress{}
		}
		if p.step > 0 {
			switch {
			case pk == s.stepAt(p.ctr, int(p.step)):
				p.step++
				p.last = now
				if int(p.step) == len(s.steps) {
					k.complete(sh, s, i, src, p.ctr, now)
					p = progress{}
				}
			case pk == s.stepAt(p.ctr, int(p.step)-1):
				// A retransmission of the step just taken.
			default:
				if _, restart := s.startCounter(pk, now); knock && !restart {
					// A step of another sequence: this one goes on.
				} else if !restart && !s.resetAny && !s.isStep(pk, p.ctr) {
					// Ordinary traffic to a port of no step: this one goes on.
				} else {
					k.fail(sh, s, i, src, now, FailWrongPort)
					p = progress{}
				}
			}
		}
		if p.step == 0 {
			if ctr, ok := s.startCounter(pk, now); ok {
				if len(s.steps) == 1 {
					k.complete(sh, s, i, src, ctr, now)
				} else {
					p = progress{step: 1, started: now, last: now, ctr: ctr}
				}
			}
		}
		if !found && p.step > 0 {
			var evicted bool
			e, evicted = sh.prog.insert(src)
			if evicted {
				k.evicted.Add(1)
			}
			ps, found = sh.prog.values(e), true
		}
		if found {
			ps[i] = p
		}
	}
	if found {
		if anyProgress(ps) {
			sh.prog.touch(e)
		} else {
			sh.prog.remove(e)
		}
		sh.nprog.Store(int32(sh.prog.len()))
	}
	sh.changes++
	return knock
}

// stepOf returns the index of the first sequence for which pk is a knock,
// given the source's progress ps (nil: none), or -1. sh.mu is held.
func (k *Knocker) stepOf(ps []progress, dst [16]byte, local bool, pk step, now int64) int {
	for i, s := range k.seqs {
		if !s.targets(dst, local) {
			continue
		}
		if ps != nil {
			if p := ps[i]; p.step > 0 && !s.expired(p, now) &&
				(pk == s.stepAt(p.ctr, int(p.step)) || pk == s.stepAt(p.ctr, int(p.step)-1)) {
				return i
			}
		}
		if _, ok := s.startCounter(pk, now); ok {
			return i
		}
	}
	return -1
}

// Peek tells whether Observe would take the packet for a knock, and of
// which sequence (its name) and step, without changing any progress. For
// "nfqfw explain".
func (k *Knocker) Peek(src, dst [16]byte, local bool, proto uint8, dport uint16, now int64) (name string, n int, ok bool) {
	if (proto != 6 && proto != 17) || len(k.seqs) == 0 {
		return "", 0, false
	}
	pk := step{proto, dport}
	if k.rotating {
		for _, s := range k.seqs {
			s.refresh(now, 0) // the ports of the time step: a cache, not progress
		}
	}
	sh := k.shard(src)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var ps []progress
	if e, found := sh.prog.get(src); found {
		ps = sh.prog.values(e)
	}
	i := k.stepOf(ps, dst, local, pk, now)
	if i < 0 {
		return "", 0, false
	}
	n = 1
	if ps != nil && ps[i].step > 0 && !k.seqs[i].expired(ps[i], now) {
		n = int(ps[i].step) + 1
		if pk != k.seqs[i].stepAt(ps[i].ctr, int(ps[i].step)) {
			n-- // a repeat of the step just taken
		}
	}
	return k.seqs[i].name, n, true
}

func anyProgress(ps []progress) bool {
	for _, p := range ps {
		if p.step > 0 {
			return true
		}
	}
	return false
}

// deadline is when progress p times out.
func (s *sequence) deadline(p progress) int64 {
	return min(p.last+s.stepWindow, p.started+s.window)
}

func (s *sequence) expired(p progress, now int64) bool { return now >= s.deadline(p) }

// complete opens sequence i for src, unless it is a one-shot replay.
// sh.mu is held.
func (k *Knocker) complete(sh *shard, s *sequence, i int, src [16]byte, ctr, now int64) {
	if s.oneShot {
		until, ok := s.claim(ctr, now)
		if !ok {
			k.fail(sh, s, i, src, now, FailReplay)
			return
		}
		k.report(decision.KnockUse, s, src, now, until, ctr)
	}
	s.successes.Add(1)
	w := k.openWindow(sh, src, i)
	w.until = max(w.until, now+s.openFor)
	k.report(decision.KnockWindow, s, src, now, w.until, 0)
}

// openWindow returns src's window of sequence i, making room for it (the
// least recently active source's windows evicted, counted) when src has
// none. sh.mu is held.
func (k *Knocker) openWindow(sh *shard, src [16]byte, i int) *window {
	e, found := sh.open.getOrInsert(src, &k.evictedOpen)
	if found {
		sh.open.touch(e)
	} else {
		sh.nopen.Store(int32(sh.open.len()))
	}
	return &sh.open.values(e)[i]
}

// report tells WithDecisions' function about a knock decision.
func (k *Knocker) report(kind decision.Kind, s *sequence, src [16]byte, now, until, ctr int64) {
	if k.onDecision == nil {
		return
	}
	d := decision.Decision{Kind: kind, Scope: decision.ScopeOf(netip.AddrFrom16(src)),
		Issued: clock.Wall(now), Expires: clock.Wall(until), Source: s.name, Sequence: s.name}
	if kind == decision.KnockUse && s.rotating() {
		d.TimeStep = ctr
	}
	k.onDecision(d)
}

// Apply enforces a knock decision made elsewhere (the fleet link) and
// reports whether it changed anything: a KnockWindow opens the window of
// its sequence for its source until its expiry (a window open longer
// stays as it is), a KnockUse refuses the replay of its sequence's steps
// (of its time step, for a rotating sequence) until its expiry. Applying
// the same decision twice changes nothing. A sequence of another name is
// ErrUnknownKnock, another kind ErrKind. WithDecisions' function is not
// told.
func (k *Knocker) Apply(d decision.Decision, now int64) (bool, error) {
	if err := d.Validate(); err != nil {
		return false, fmt.Errorf("apply knock decision: %w", err)
	}
	if d.Kind != decision.KnockWindow && d.Kind != decision.KnockUse {
		return false, fmt.Errorf("apply knock decision %s: %w", d.Kind, ErrKind)
	}
	i := k.Index(d.Sequence)
	if i < 0 {
		return false, fmt.Errorf("apply knock decision: %w: %q", ErrUnknownKnock, d.Sequence)
	}
	s := k.seqs[i]
	until := clock.Mono(d.Expires)
	if until <= now {
		return false, nil
	}
	if d.Kind == decision.KnockUse {
		if !s.oneShot {
			return false, nil
		}
		ctr := int64(0)
		if s.rotating() {
			ctr = d.TimeStep
		}
		return s.refuse(ctr, until, now), nil
	}
	src := d.Scope.Addr().As16()
	sh := k.shard(src)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	w := k.openWindow(sh, src, i)
	if w.until >= until {
		return false, nil
	}
	w.until = until
	return true, nil
}

// fail counts a failure and records it in the shard's ring. sh.mu is held.
func (k *Knocker) fail(sh *shard, s *sequence, i int, src [16]byte, when int64, r FailReason) {
	s.failures[r].Add(1)
	sh.fails[sh.failNext] = failure{when: when, src: src, seq: uint16(i), reason: r}
	sh.failNext = (sh.failNext + 1) % len(sh.fails)
}

// Allowed reports whether a window opened by sequence i (see Index) covers
// a NEW connection from src to dst proto/port: the window is open for src
// and the sequence's open spec names the protocol, port and destination.
//
// Without KeepOpen the window closes OpenFor after the sequence completed,
// whatever is admitted meanwhile. With KeepOpen every admitted connection
// pushes the close to OpenFor after it, so the window stays open while it
// is used and closes OpenFor after the last admitted connection. Either way
// only the start of a connection needs the window: established flows go on
// in the kernel's fast path after it closes.
//
// Allowed does not allocate (the same caveat on table growth as Observe).
func (k *Knocker) Allowed(i int, src, dst [16]byte, proto uint8, dport uint16, now int64) bool {
	return k.window(i, src, dst, proto, dport, now, true) > now
}

// Window tells what Allowed would answer, without keeping the window open
// or touching it: the time the window of sequence i for src closes
// (0: none covers the connection). For "nfqfw explain".
func (k *Knocker) Window(i int, src, dst [16]byte, proto uint8, dport uint16, now int64) (until int64, ok bool) {
	until = k.window(i, src, dst, proto, dport, now, false)
	return until, until > now
}

// window returns when the window of sequence i for src, covering the
// connection, closes (0: none); use says a connection is admitted through
// it (KeepOpen pushes the close, the source is touched).
func (k *Knocker) window(i int, src, dst [16]byte, proto uint8, dport uint16, now int64, use bool) int64 {
	if i < 0 || i >= len(k.seqs) {
		return 0
	}
	s := k.seqs[i]
	if !s.admits(dst, proto, dport) {
		return 0
	}
	sh := k.shard(src)
	if sh.nopen.Load() == 0 {
		return 0
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.open.get(src)
	if !ok {
		return 0
	}
	w := &sh.open.values(e)[i]
	if w.until <= now || !use {
		return w.until
	}
	if s.keepOpen {
		w.until = max(w.until, now+s.openFor)
		sh.changes++
	}
	sh.open.touch(e)
	return w.until
}

// Changes returns a count that grows whenever a knock is taken, a
// sequence progresses, fails or completes, or a kept-open window is pushed:
// the state saver compares two readings to know whether there is anything
// new to save. It takes every shard's lock in turn; the packet path pays
// one increment per change, under the lock it already holds.
func (k *Knocker) Changes() uint64 {
	var n uint64
	for _, sh := range k.shards {
		sh.mu.Lock()
		n += sh.changes
		sh.mu.Unlock()
	}
	return n
}

// Expire drops progress that has timed out (counting the timeouts) and
// windows that have closed, forgets one-shot completions whose refusal has
// ended, and derives the ports of rotating sequences for the coming time
// step. Call it from a ticker, about every second.
func (k *Knocker) Expire(now int64) {
	for _, s := range k.seqs {
		s.refresh(now, 1) // a step ahead: keeps the derivation off the packet path
		if s.oneShot {
			s.usedMu.Lock()
			kept := s.used[:0]
			for _, u := range s.used {
				if u.until > now {
					kept = append(kept, u)
				}
			}
			s.used = kept
			s.usedMu.Unlock()
		}
	}
	for _, sh := range k.shards {
		sh.mu.Lock()
		sh.prog.each(func(e int32) {
			ps := sh.prog.values(e)
			for i, s := range k.seqs {
				if p := ps[i]; p.step > 0 && s.expired(p, now) {
					k.fail(sh, s, i, sh.prog.key(e), s.deadline(p), FailTimeout)
					ps[i] = progress{}
				}
			}
			if !anyProgress(ps) {
				sh.prog.remove(e)
			}
		})
		sh.open.each(func(e int32) {
			open := false
			for i, w := range sh.open.values(e) {
				if w.until > now {
					open = true
				} else {
					sh.open.values(e)[i] = window{}
				}
			}
			if !open {
				sh.open.remove(e)
			}
		})
		sh.nprog.Store(int32(sh.prog.len()))
		sh.nopen.Store(int32(sh.open.len()))
		sh.mu.Unlock()
	}
}

package nfq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfqfw/nfqfw/engine/internal/loglimit"
)

// Defaults for Config fields left zero.
const (
	DefaultReadBuffer = 8 << 20 // bytes of socket receive buffer
	MaxPacketLen      = 0xffff  // bytes copied per packet: the whole packet
	// MaxConsecutiveErrors receive errors in a row, with no packet in
	// between, stop the reader: the socket is broken, not busy.
	MaxConsecutiveErrors = 1000
	// DefaultBatchSize is the longest run of accepts answered by one batch
	// verdict.
	DefaultBatchSize = 64
)

// Config configures one Reader.
type Config struct {
	// Queue is the NFQUEUE number (iptables --queue-num).
	Queue uint16
	// MaxLen is the kernel's queue length in packets; 0 is the kernel
	// default (1024).
	MaxLen uint32
	// FailOpen makes the kernel accept packets when the queue is full
	// instead of dropping them.
	FailOpen bool
	// FailureAccept is the verdict for a packet whose Decide panicked:
	// accept when true, drop when false.
	FailureAccept bool
	// ReadBuffer is the socket receive buffer in bytes; 0 means
	// DefaultReadBuffer. As root the system limit is overridden.
	ReadBuffer int
	// NetNS is a network namespace file descriptor to open the socket in;
	// 0 is the caller's namespace. The socket stays in that namespace.
	NetNS int
	// Logger receives error lines (rate-limited); nil discards them.
	Logger *slog.Logger
	// BatchSize is the longest run of consecutive accepts answered by one
	// batch verdict (the kernel accepts every queued id up to the last),
	// and the most messages one receive reads (up to 256). Everything one
	// receive read is decided and answered, in one write, before the next
	// receive, so an accept waits only while the reader decides the
	// packets read with it. 0 means DefaultBatchSize; 1 reads and answers
	// every packet on its own.
	BatchSize int
}

// busyGap is the time between two receives (in nanoseconds) under which
// the queue counts as busy: above about 10,000 receives per second.
const busyGap = int64(100 * time.Microsecond)

// nanotime is a monotonic clock reading in nanoseconds.
func nanotime() int64 { return int64(time.Since(clockStart)) }

var clockStart = time.Now()

// Reader answers the packets of one queue. Open binds the queue and starts
// the receive goroutine; Run waits for the end. Stats may be called from any
// goroutine.
type Reader struct {
	cfg     Config
	log     *slog.Logger
	s       *sock
	decider Decider
	is      issuer
	c       counters

	// failAccept is the failure verdict (accept when set), and unseen the
	// same as a verdict code for the issuer; SetFailureAccept changes both.
	failAccept atomic.Bool
	unseen     atomic.Uint32

	ctx    context.Context // ends the receive loop
	cancel context.CancelFunc
	done   chan struct{} // closed when the receive loop has returned
	fatal  chan error    // first error that stops the reader

	consecutive int // receive errors since the last packet; receive goroutine only

	// decidingSince is the nanotime at which the receive goroutine began
	// deciding and answering what one receive read, 0 while it waits for
	// packets: Deciding.
	decidingSince atomic.Int64

	errLog, verdictLog, panicLog loglimit.Limiter // one line per second each

	runOnce, closeOnce sync.Once
}

// Open opens a socket for cfg.Queue, configures it and binds the queue, so
// packets flow to d from this moment. It fails with ErrQueueInUse when
// another socket holds the queue. Call Run to wait for the end, or Close.
func Open(cfg Config, d Decider) (*Reader, error) {
	if cfg.ReadBuffer == 0 {
		cfg.ReadBuffer = DefaultReadBuffer
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("queue", cfg.Queue)
	s, err := openSock(cfg, min(cfg.BatchSize, maxVector))
	if err != nil {
		if errors.Is(err, ErrQueueInUse) {
			return nil, fmt.Errorf("nfq: bind queue %d: %w", cfg.Queue, err)
		}
		return nil, fmt.Errorf("nfq: queue %d: %w", cfg.Queue, err)
	}
	r := newReader(cfg, log, s, s, d)
	go r.loop()
	return r, nil
}

// newReader builds the Reader around socket s (nil in tests, which call
// datagram directly) whose verdicts go to sink.
func newReader(cfg Config, log *slog.Logger, s *sock, sink verdictSink, d Decider) *Reader {
	r := &Reader{cfg: cfg, log: log, s: s, decider: d, fatal: make(chan error, 1), done: make(chan struct{})}
	r.is = issuer{sink: sink, c: &r.c, batch: cfg.BatchSize, unseen: &r.unseen}
	r.SetFailureAccept(cfg.FailureAccept)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

// SetFailureAccept sets the verdict for a packet the reader cannot decide
// (a Decide panic, a cut-short message, an id it never saw): accept when
// true, drop otherwise. A reload calls it; it is safe from any goroutine.
func (r *Reader) SetFailureAccept(accept bool) {
	r.failAccept.Store(accept)
	if accept {
		r.unseen.Store(nfAccept)
	} else {
		r.unseen.Store(nfDrop)
	}
}

// Run blocks until ctx ends (returning nil) or the reader stops on its own
// (returning why: ErrReaderStopped, ErrTooManyErrors). Either way the queue
// is unbound and the socket closed when Run returns. Packets that arrive
// while nobody reads are handled by the kernel as --queue-bypass says.
func (r *Reader) Run(ctx context.Context) error {
	err := ErrRunTwice
	r.runOnce.Do(func() {
		select {
		case <-ctx.Done():
			err = nil
		case err = <-r.fatal:
		}
		if cerr := r.Close(); err == nil && cerr != nil {
			err = cerr
		}
	})
	return err
}

// Close stops the receive loop, unbinds the queue and closes the socket;
// it is idempotent.
func (r *Reader) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.cancel()
		if werr := r.s.wake(); werr != nil {
			// The receive timeout ends the wait instead.
			r.log.Warn("nfq: wake the reader", "err", werr)
		}
		<-r.done
		if cerr := r.s.close(); cerr != nil && err == nil {
			err = fmt.Errorf("nfq: close queue %d: %w", r.cfg.Queue, cerr)
		}
	})
	return err
}

// Stats returns the counters so far.
func (r *Reader) Stats() Stats { return r.c.snapshot() }

// loop is the receive goroutine: read what the socket holds, decide each
// packet, send every verdict for it in one write. It looks at ctx after
// every receive, which Close ends and then wakes it.
//
// How it waits depends on the load. On a quiet queue the thread sleeps in
// the kernel and is woken by the packet, like a C reader: no trip through
// the runtime's poller, whose wake-up added tens of microseconds to every
// packet. On a busy queue (a receive found a backlog, or came less than
// busyGap after the one before) the next receive waits in the poller
// instead: the packets that arrive meanwhile are read and answered
// together, one receive and one write for the lot. Waking the thread for
// every packet of a flood cost a third of the flood rate (measured).
func (r *Reader) loop() {
	defer close(r.done)
	busy := false
	var last int64
	for r.ctx.Err() == nil {
		n, err := r.s.recv(busy)
		if err != nil {
			if r.onError(err) != 0 {
				return
			}
			continue
		}
		if n == 0 {
			busy = false
			continue // receive timeout or wake-up
		}
		now := nanotime()
		busy = n > 1 || now-last < busyGap
		last = now
		r.consecutive = 0
		r.decidingSince.Store(now)
		for i := range n {
			r.datagram(r.s.datagram(i), r.s.truncated(i))
		}
		r.is.flush() // everything read is decided: answer the held accepts
		if err := r.s.send(); err != nil {
			r.verdictError(err)
		}
		r.decidingSince.Store(0)
	}
}

// Deciding returns how long the receive goroutine has been deciding and
// answering the packets of one receive, 0 while it waits for packets (an
// idle queue). A reader stuck in a verdict (a Decide that does not return,
// a send that blocks) reports an ever longer time: the daemon's watchdog
// stops on it. Safe from any goroutine; it costs the receive goroutine two
// atomic stores per receive.
func (r *Reader) Deciding() time.Duration {
	since := r.decidingSince.Load()
	if since == 0 {
		return 0
	}
	return time.Duration(max(nanotime()-since, 1))
}

// datagram handles the messages of one datagram: queued packets, and the
// kernel's answers to verdicts it did not take.
func (r *Reader) datagram(b []byte, truncated bool) {
	for len(b) > 0 {
		m, rest, err := nextMessage(b)
		if err != nil {
			r.c.bad.Add(1)
			return
		}
		b = rest
		switch m.typ {
		case msgPacket:
			p, err := parsePacket(m.body)
			r.packet(p, err != nil || truncated)
		case nlmsgError:
			if errno, _, err := errorCode(m.body); err == nil && errno != 0 {
				r.verdictError(unix.Errno(errno))
			}
		}
	}
}

// packet decides one queued packet. A message without a packet id cannot
// be answered; one whose packet is cut short gets the failure verdict. A
// packet queued before the bind's copy mode applied came without its
// bytes: it goes through its hook again, to be queued with them.
func (r *Reader) packet(p packetMsg, broken bool) {
	switch {
	case !p.hasID:
		r.c.bad.Add(1)
	case broken:
		r.c.bad.Add(1)
		r.is.issue(p.id, Verdict{Accept: r.failAccept.Load()})
	case !p.hasData:
		r.is.issue(p.id, Verdict{Repeat: true, Mark: p.meta.Mark})
	default:
		r.c.packets.Add(1)
		r.is.issue(p.id, r.decide(p.payload, p.meta))
	}
}

// decide calls the Decider, turning a panic into the failure verdict.
func (r *Reader) decide(pkt []byte, m Meta) (v Verdict) {
	defer func() {
		if p := recover(); p != nil {
			r.c.panics.Add(1)
			v = Verdict{Accept: r.failAccept.Load()}
			if ok, n := r.panicLog.Allow(time.Now()); ok {
				r.log.Error("nfq: decider panicked; failure verdict given",
					"panic", fmt.Sprint(p), "accept", v.Accept, "suppressed", n)
			}
		}
	}()
	return r.decider.Decide(pkt, m)
}

// onError handles a receive error in the receive goroutine. It returns 0 to
// keep reading, anything else stops the loop.
func (r *Reader) onError(err error) int {
	if r.ctx.Err() != nil {
		return 1 // stopping
	}
	switch {
	case errors.Is(err, unix.ENOBUFS):
		r.c.enobufs.Add(1)
		if ok, n := r.errLog.Allow(time.Now()); ok {
			r.log.Warn("nfq: receive buffer overrun, kernel lost queue messages", "suppressed", n)
		}
		return 0
	case errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrClosed), errors.Is(err, unix.EBADF):
		r.stop(fmt.Errorf("nfq: receive on queue %d: %w: %v", r.cfg.Queue, ErrReaderStopped, err))
		return 1
	}
	r.c.errors.Add(1)
	r.consecutive++
	if r.consecutive >= MaxConsecutiveErrors {
		r.stop(fmt.Errorf("nfq: receive on queue %d: %w (last: %v)", r.cfg.Queue, ErrTooManyErrors, err))
		return 1
	}
	if ok, n := r.errLog.Allow(time.Now()); ok {
		r.log.Warn("nfq: receive error, reader goes on", "err", err, "suppressed", n)
	}
	return 0
}

func (r *Reader) stop(err error) {
	r.log.Error("nfq: reader stopped", "err", err)
	select {
	case r.fatal <- err:
	default:
	}
}

// verdictError counts a verdict the kernel did not take: ENOENT for an id
// no longer queued (an unseen id the kernel had dropped itself), or a failed
// send. The socket is fine either way.
func (r *Reader) verdictError(err error) {
	r.c.verdictErrs.Add(1)
	if ok, n := r.verdictLog.Allow(time.Now()); ok {
		r.log.Warn("nfq: verdict not taken", "err", err, "suppressed", n)
	}
}

package nfq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
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
	// batch verdict (the kernel accepts every queued id up to the last).
	// A run is also answered as soon as the socket holds no further
	// message, before any drop or repeat, and on a receive error, so an
	// accept waits only while the reader works through a burst. 0 means
	// DefaultBatchSize; 1 answers every packet on its own.
	BatchSize int
}

// Reader answers the packets of one queue. Open binds the queue; Run keeps
// answering until its context ends. Stats may be called from any goroutine.
type Reader struct {
	cfg     Config
	log     *slog.Logger
	nf      *nfqueue.Nfqueue
	decider Decider
	is      issuer
	c       counters

	ctx    context.Context // ends the receive loop
	cancel context.CancelFunc
	fatal  chan error // first error that stops the reader

	consecutive int // receive errors since the last packet; receive goroutine only
	// pending reports whether more messages wait on the socket; nil
	// (no batching) counts as none. Receive goroutine only.
	pending func() bool

	errLog, verdictLog, panicLog limiter

	runOnce, closeOnce sync.Once
}

// Open opens a socket for cfg.Queue, configures it and binds the queue, so
// packets flow to d from this moment. It fails with ErrQueueInUse when
// another socket holds the queue. Call Run to wait for the end, or Close.
func Open(cfg Config, d Decider) (*Reader, error) {
	if cfg.ReadBuffer == 0 {
		cfg.ReadBuffer = DefaultReadBuffer
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("queue", cfg.Queue)
	flags := uint32(nfqueue.NfQaCfgFlagGSO)
	if cfg.FailOpen {
		flags |= nfqueue.NfQaCfgFlagFailOpen
	}
	nf, err := nfqueue.Open(&nfqueue.Config{
		NetNS:        cfg.NetNS,
		NfQueue:      cfg.Queue,
		MaxQueueLen:  cfg.MaxLen,
		MaxPacketLen: MaxPacketLen,
		Copymode:     nfqueue.NfQnlCopyPacket,
		Flags:        flags,
		// The family only matters to pre-3.8 kernels: one socket
		// carries both IPv4 and IPv6.
		AfFamily: unix.AF_INET,
		Logger:   libLogger{log},
	})
	if err != nil {
		return nil, fmt.Errorf("nfq: open queue %d socket: %w", cfg.Queue, err)
	}
	r := &Reader{cfg: cfg, log: log, nf: nf, decider: d, fatal: make(chan error, 1)}
	r.is = issuer{sink: nf, c: &r.c, batch: cfg.BatchSize, unseen: nfqueue.NfDrop, onErr: r.verdictError}
	if cfg.FailureAccept {
		r.is.unseen = nfqueue.NfAccept
	}
	if cfg.BatchSize > 1 {
		bl, err := newBacklog(nf.Con)
		if err != nil {
			nf.Close()
			return nil, fmt.Errorf("nfq: queue %d: raw socket: %w", cfg.Queue, err)
		}
		r.pending = bl.pending
	}
	// Without NoENOBUFS a full receive buffer is reported as an error
	// and, with the library's default handling, ends the reader.
	if err := nf.Con.SetOption(netlink.NoENOBUFS, true); err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfq: queue %d: set NoENOBUFS: %w", cfg.Queue, err)
	}
	if err := nf.Con.SetReadBuffer(cfg.ReadBuffer); err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfq: queue %d: set read buffer %d: %w", cfg.Queue, cfg.ReadBuffer, err)
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if err := nf.RegisterWithErrorFunc(r.ctx, r.hook, r.onError); err != nil {
		r.cancel()
		nf.Close()
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("nfq: bind queue %d: %w (%v)", cfg.Queue, ErrQueueInUse, err)
		}
		return nil, fmt.Errorf("nfq: bind queue %d: %w", cfg.Queue, err)
	}
	return r, nil
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

// Close unbinds the queue and closes the socket; it is idempotent.
func (r *Reader) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.cancel()
		if cerr := r.nf.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("nfq: close queue %d: %w", r.cfg.Queue, cerr)
		}
	})
	return err
}

// Stats returns the counters so far.
func (r *Reader) Stats() Stats { return r.c.snapshot() }

// hook handles one queue message in the receive goroutine. It always
// returns 0: the loop must go on whatever one packet did.
func (r *Reader) hook(a nfqueue.Attribute) int {
	r.consecutive = 0
	if a.PacketID == nil {
		r.c.bad.Add(1)
		return 0
	}
	r.c.packets.Add(1)
	r.is.issue(*a.PacketID, r.decide(payload(a), meta(a)))
	if r.is.held > 0 && (r.pending == nil || !r.pending()) {
		r.is.flush() // the burst is read: answer the held accepts now
	}
	return 0
}

// decide calls the Decider, turning a panic into the failure verdict.
func (r *Reader) decide(pkt []byte, m Meta) (v Verdict) {
	defer func() {
		if p := recover(); p != nil {
			r.c.panics.Add(1)
			v = Verdict{Accept: r.cfg.FailureAccept}
			if ok, n := r.panicLog.allow(time.Now()); ok {
				r.log.Error("nfq: decider panicked; failure verdict given",
					"panic", fmt.Sprint(p), "accept", r.cfg.FailureAccept, "suppressed", n)
			}
		}
	}()
	return r.decider.Decide(pkt, m)
}

func payload(a nfqueue.Attribute) []byte {
	if a.Payload == nil {
		return nil
	}
	return *a.Payload
}

func meta(a nfqueue.Attribute) Meta {
	var m Meta
	if a.Hook != nil {
		m.Hook = *a.Hook
	}
	if a.InDev != nil {
		m.InDev = *a.InDev
	}
	if a.OutDev != nil {
		m.OutDev = *a.OutDev
	}
	if a.Mark != nil {
		m.Mark = *a.Mark
	}
	return m
}

// onError handles a receive error in the receive goroutine. It returns 0 to
// keep reading, anything else stops the loop.
func (r *Reader) onError(err error) int {
	r.is.flush() // no accept waits behind an error
	if r.ctx.Err() != nil {
		return 1 // stopping: the error is the read deadline Close set
	}
	switch {
	case errors.Is(err, unix.ENOBUFS):
		r.c.enobufs.Add(1)
		if ok, n := r.errLog.allow(time.Now()); ok {
			r.log.Warn("nfq: receive buffer overrun, kernel lost queue messages", "suppressed", n)
		}
		return 0
	case errors.Is(err, unix.ENOENT):
		// The kernel's answer to a verdict for an id no longer queued
		// (an unseen id it had dropped itself): the socket is fine.
		r.c.verdictErrs.Add(1)
		return 0
	case errors.Is(err, net.ErrClosed), errors.Is(err, unix.EBADF):
		r.stop(fmt.Errorf("nfq: receive on queue %d: %w: %v", r.cfg.Queue, ErrReaderStopped, err))
		return 1
	}
	r.c.errors.Add(1)
	r.consecutive++
	if r.consecutive >= MaxConsecutiveErrors {
		r.stop(fmt.Errorf("nfq: receive on queue %d: %w (last: %v)", r.cfg.Queue, ErrTooManyErrors, err))
		return 1
	}
	if ok, n := r.errLog.allow(time.Now()); ok {
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

func (r *Reader) verdictError(op string, id uint32, err error) {
	if ok, n := r.verdictLog.allow(time.Now()); ok {
		r.log.Warn("nfq: verdict failed", "op", op, "id", id, "err", err, "suppressed", n)
	}
}

// libLogger routes go-nfqueue's own log lines to slog.
type libLogger struct{ log *slog.Logger }

func (l libLogger) Debugf(format string, args ...any) {
	l.log.Debug("go-nfqueue: " + fmt.Sprintf(format, args...))
}

func (l libLogger) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	// Every orderly stop says the first; the second comes when Close wins
	// the race against the library's own unbind, which is harmless: the
	// kernel releases the queue when the socket closes.
	if strings.HasPrefix(msg, "Stop receiving") || strings.HasPrefix(msg, "Could not unbind") {
		l.log.Debug("go-nfqueue: " + msg)
		return
	}
	l.log.Warn("go-nfqueue: " + msg)
}

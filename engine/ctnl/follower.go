package ctnl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/nfqfw/nfqfw/engine/internal/loglimit"
	"github.com/nfqfw/nfqfw/engine/internal/mmsg"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// Defaults and limits.
const (
	DefaultReadBuffer = 8 << 20 // bytes of event socket receive buffer
	// MaxConsecutiveErrors receive errors in a row, with no event in
	// between, stop Run: the socket is broken, not busy.
	MaxConsecutiveErrors = 1000
)

// Options configure a Follower and the package-level queries.
type Options struct {
	// NetNS is a network namespace file descriptor; 0 is the caller's.
	// The sockets stay in that namespace.
	NetNS int
	// ReadBuffer is the event socket's receive buffer in bytes; 0 means
	// DefaultReadBuffer. As root the system limit is overridden.
	ReadBuffer int
	// Resync, when set, is called from Run's goroutine with the whole
	// table after the kernel dropped events (ENOBUFS): flows the consumer
	// knows that are absent from table are gone. When nil, the dumped
	// flows are passed to Run's callback as EventDump events instead.
	Resync func(table []Event)
	// Logger receives error lines (rate-limited); nil discards them.
	Logger *slog.Logger
	// SkipNew leaves out the new-flow group: for a consumer that learns of
	// new flows on its own. The kernel builds a conntrack event only for
	// groups somebody listens to, so with no other listener it then builds
	// none for new flows.
	SkipNew bool
}

// Stats are a Follower's counters since Listen.
type Stats struct {
	Events       uint64 // events delivered to Run's callback
	DecodeErrors uint64 // messages that were not a decodable conntrack event (skipped)
	Errors       uint64 // receive errors other than ENOBUFS (Run went on)
	ENOBUFS      uint64 // event socket overruns: the kernel dropped events
	Resyncs      uint64 // table dumps done after an overrun
	ResyncErrors uint64 // resync dumps that failed
}

// Follower follows the conntrack table. Run reads events in one goroutine;
// Dump and DeleteBySource may be called from any goroutine, also while Run
// runs (they use a separate socket, serialized).
type Follower struct {
	opts Options
	log  *slog.Logger
	ev   *eventSocket
	in   *mmsg.Vector // receive buffers of the event socket; Run's goroutine only
	q    querier

	events, decodeErrs, errs, enobufs, resyncs, resyncErrs atomic.Uint64

	runOnce, closeOnce sync.Once
	closed             chan struct{}
}

// Listen opens the event socket, subscribes it to the update and destroy
// groups (and the new-flow group unless opts.SkipNew), and returns a
// Follower. Events queue in the socket until
// Run reads them.
func Listen(opts Options) (*Follower, error) {
	if opts.ReadBuffer == 0 {
		opts.ReadBuffer = DefaultReadBuffer
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ev, err := openEventSocket(opts.NetNS, opts.ReadBuffer, opts.SkipNew)
	if err != nil {
		return nil, fmt.Errorf("ctnl: event socket: %w", err)
	}
	return &Follower{opts: opts, log: log, ev: ev, in: mmsg.NewVector(eventVector, eventBuffer), q: querier{netns: opts.NetNS}, closed: make(chan struct{})}, nil
}

// Stats returns the counters so far.
func (f *Follower) Stats() Stats {
	return Stats{
		Events:       f.events.Load(),
		DecodeErrors: f.decodeErrs.Load(),
		Errors:       f.errs.Load(),
		ENOBUFS:      f.enobufs.Load(),
		Resyncs:      f.resyncs.Load(),
		ResyncErrors: f.resyncErrs.Load(),
	}
}

// FollowNew joins the event socket to the new-flow group (on) or leaves
// it, while Run runs or before: a consumer that learns of new flows on its
// own (Options.SkipNew) may want them for a while, and the kernel builds
// new-flow events only while somebody listens. Safe from any goroutine;
// idempotent.
func (f *Follower) FollowNew(on bool) error {
	if err := f.ev.setNew(on); err != nil {
		return fmt.Errorf("ctnl: follow new flows %v: %w", on, err)
	}
	return nil
}

// Close closes both sockets; a running Run returns ErrClosed. Idempotent.
func (f *Follower) Close() error {
	var err error
	f.closeOnce.Do(func() {
		close(f.closed)
		err = f.ev.f.Close()
		f.q.close()
	})
	return err
}

// Run reads events and calls fn for each, in this goroutine, until ctx ends
// (returning nil) or the event socket breaks. fn must not block for long:
// while it runs, events queue in the socket buffer, and an overrun costs a
// table dump. An overrun (ENOBUFS) is counted and logged, then the table
// is dumped (see Options.Resync) and Run goes on. The Follower is closed
// when Run returns.
func (f *Follower) Run(ctx context.Context, fn func(Event)) error {
	err := ErrRunTwice
	f.runOnce.Do(func() {
		stop := context.AfterFunc(ctx, func() {
			// Wake the blocked Receive.
			f.ev.f.SetReadDeadline(time.Now().Add(-time.Second))
		})
		defer stop()
		err = f.loop(ctx, fn)
		f.Close()
	})
	return err
}

func (f *Follower) loop(ctx context.Context, fn func(Event)) error {
	var lim loglimit.Limiter // one line per second
	consecutive := 0
	for {
		n, err := f.ev.recv(f.in)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			switch {
			case errors.Is(err, unix.ENOBUFS):
				f.enobufs.Add(1)
				if ok, n := lim.Allow(time.Now()); ok {
					f.log.Warn("ctnl: event socket overrun, kernel dropped conntrack events; resyncing", "suppressed", n)
				}
				if err := f.drain(ctx, fn); err != nil {
					return err
				}
				if ctx.Err() != nil {
					return nil
				}
				f.resync(ctx, fn)
				continue
			case errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrClosed), errors.Is(err, unix.EBADF), isClosed(f.closed):
				return fmt.Errorf("ctnl: receive events: %w", ErrClosed)
			}
			f.errs.Add(1)
			consecutive++
			if consecutive >= MaxConsecutiveErrors {
				return fmt.Errorf("ctnl: receive events: %w (last: %v)", ErrTooManyErrors, err)
			}
			if ok, n := lim.Allow(time.Now()); ok {
				f.log.Warn("ctnl: receive error, follower goes on", "err", err, "suppressed", n)
			}
			continue
		}
		consecutive = 0
		f.deliverAll(n, fn)
	}
}

// drainWait is how long drain waits for one more queued message before it
// takes the socket queue for empty.
const drainWait = 20 * time.Millisecond

// drain delivers what is queued in the event socket until it is empty.
// After an overrun the kernel marks the socket congested and drops further
// events silently until its queue has been emptied: only a dump taken after
// that sees everything the lost events would have told.
func (f *Follower) drain(ctx context.Context, fn func(Event)) error {
	defer func() {
		// Block again; a cancel that came meanwhile re-arms the past
		// deadline after this, or is seen by the caller's ctx check.
		f.ev.f.SetReadDeadline(time.Time{})
		if ctx.Err() != nil {
			f.ev.f.SetReadDeadline(time.Now().Add(-time.Second))
		}
	}()
	for ctx.Err() == nil {
		f.ev.f.SetReadDeadline(time.Now().Add(drainWait))
		n, err := f.ev.recv(f.in)
		var ne net.Error
		switch {
		case err == nil:
			f.deliverAll(n, fn)
		case errors.As(err, &ne) && ne.Timeout():
			return nil // empty
		case errors.Is(err, unix.ENOBUFS):
			f.enobufs.Add(1) // lost more while draining: the dump covers it
		case errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrClosed), errors.Is(err, unix.EBADF), isClosed(f.closed):
			return fmt.Errorf("ctnl: receive events: %w", ErrClosed)
		default:
			f.errs.Add(1)
			return nil
		}
	}
	return nil
}

// A receive reads up to eventVector datagrams, each into a buffer of
// eventBuffer bytes: a datagram is one conntrack event of a few hundred
// bytes.
const (
	eventVector = 64
	eventBuffer = 16 << 10
)

// deliverAll delivers the n datagrams of the last receive.
func (f *Follower) deliverAll(n int, fn func(Event)) {
	for i := range n {
		if f.in.Truncated(i) {
			f.decodeErrs.Add(1) // its end is lost: decode what came
		}
		f.deliver(f.in.Datagram(i), fn)
	}
}

// deliver decodes the conntrack events in b (one read of the event socket)
// and passes each to fn; messages that do not decode are counted and
// skipped.
func (f *Follower) deliver(b []byte, fn func(Event)) {
	n, bad := decodeMessages(b, fn)
	f.events.Add(uint64(n))
	if bad > 0 {
		f.decodeErrs.Add(uint64(bad))
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// resync dumps the table after an overrun and hands it to the consumer.
func (f *Follower) resync(ctx context.Context, fn func(Event)) {
	table, err := f.Dump(ctx)
	if err != nil {
		f.resyncErrs.Add(1)
		f.log.Error("ctnl: resync dump failed", "err", err)
		return
	}
	f.resyncs.Add(1)
	if f.opts.Resync != nil {
		f.opts.Resync(table)
		return
	}
	for _, e := range table {
		fn(e)
	}
}

// Dump returns the whole conntrack table (IPv4 and IPv6) as EventDump
// events. When ctx ends first, the query is abandoned and ctx's error
// returned.
func (f *Follower) Dump(ctx context.Context) ([]Event, error) {
	var out []Event
	err := f.q.do(ctx, func(c *conntrack.Conn) error {
		flows, err := c.Dump(nil)
		if err != nil {
			return fmt.Errorf("ctnl: dump: %w", err)
		}
		out = make([]Event, len(flows))
		for i := range flows {
			out[i] = fromFlow(EventDump, &flows[i])
		}
		return nil
	})
	return out, err
}

// Dump returns the conntrack table of the namespace in opts, over a
// socket of its own.
func Dump(ctx context.Context, opts Options) ([]Event, error) {
	f := &Follower{q: querier{netns: opts.NetNS}}
	defer f.q.close()
	return f.Dump(ctx)
}

// DeleteBySource deletes the flows whose original source is addr in the
// namespace in opts, over a socket of its own.
func DeleteBySource(ctx context.Context, opts Options, addr netip.Addr) (int, error) {
	f := &Follower{q: querier{netns: opts.NetNS}}
	defer f.q.close()
	return f.DeleteBySource(ctx, addr)
}

// DeleteByPrefix deletes the flows whose original source lies in p in the
// namespace in opts, over a socket of its own (see Follower.DeleteByPrefix).
func DeleteByPrefix(ctx context.Context, opts Options, p netip.Prefix) (int, error) {
	f := &Follower{q: querier{netns: opts.NetNS}}
	defer f.q.close()
	return f.DeleteByPrefix(ctx, p)
}

// querier owns the query socket: dialed on first use, one query at a time,
// and thrown away when a query is abandoned.
type querier struct {
	netns int
	mu    sync.Mutex
	c     *conntrack.Conn // dumps
	nf    *netfilter.Conn // filtered queries the library does not build
	done  bool
}

func (q *querier) do(ctx context.Context, fn func(*conntrack.Conn) error) error {
	return q.run(ctx, func() (io.Closer, error) {
		if q.c == nil {
			c, err := conntrack.Dial(&netlink.Config{NetNS: q.netns})
			if err != nil {
				return nil, err
			}
			q.c = c
		}
		return q.c, nil
	}, func() error { return fn(q.c) }, func() { q.c = nil })
}

func (q *querier) raw(ctx context.Context, fn func(*netfilter.Conn) error) error {
	return q.run(ctx, func() (io.Closer, error) {
		if q.nf == nil {
			c, err := netfilter.Dial(&netlink.Config{NetNS: q.netns})
			if err != nil {
				return nil, err
			}
			q.nf = c
		}
		return q.nf, nil
	}, func() error { return fn(q.nf) }, func() { q.nf = nil })
}

// run dials (once) the socket conn returns and runs fn with it, one query
// at a time; when ctx ends first the socket is closed, which ends the
// blocked query, and forget drops it so that the next query dials afresh.
func (q *querier) run(ctx context.Context, conn func() (io.Closer, error), fn func() error, forget func()) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.done {
		return fmt.Errorf("ctnl: query: %w", ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := conn()
	if err != nil {
		return fmt.Errorf("ctnl: dial query socket: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- fn() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		c.Close()
		<-errc
		forget()
		return ctx.Err()
	}
}

func (q *querier) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.done = true
	if q.c != nil {
		q.c.Close()
		q.c = nil
	}
	if q.nf != nil {
		q.nf.Close()
		q.nf = nil
	}
}

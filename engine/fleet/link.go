package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/rules"
)

// Defaults and bounds of the link.
const (
	// DefaultOutbox is how many decisions wait for the stream while it is
	// unreachable; beyond it the oldest is dropped and counted.
	DefaultOutbox = 1 << 16
	// DefaultMaxAge is the stream's MaxAge when Options.MaxAge is 0.
	DefaultMaxAge = 7 * 24 * time.Hour
	// publishTimeout bounds one publish's wait for the stream's ack.
	publishTimeout = 5 * time.Second
	// retryMin and retryMax bound the wait between two attempts to set the
	// stream up or to publish while the servers do not answer.
	retryMin = 250 * time.Millisecond
	retryMax = 5 * time.Second
	// stallCheck is how often the consumer's progress is checked
	// against the stream.
	stallCheck = 5 * time.Second
	// MaxBatch is the most decisions one Apply call gets.
	MaxBatch = 4096
	// applyQueue is how many batches wait for Apply while the consumer
	// reads the next: the stream is read while the kernel sets are
	// written, and a slow Apply holds the consumer back (its pulls wait)
	// instead of piling decisions up in memory.
	applyQueue = 2
	// duplicates is the stream's duplicate window: a decision published
	// again within it (its ack was lost) is stored once.
	duplicates = 2 * time.Minute
	// updateTimeout bounds the wait for a stream update: a server whose
	// permissions refuse it does not answer.
	updateTimeout = 2 * time.Second
)

// Options configure a Link.
type Options struct {
	Config rules.Fleet
	Logger *slog.Logger
	// Apply enforces decisions of other gateways, in stream order. It
	// runs on the link's apply goroutine, while the consumer reads the
	// next batch; it must not keep the slice. Live decisions come one at
	// a time; a backlog (a start, a reconnect after an outage) comes in
	// batches of up to MaxBatch, so that the kernel sets are loaded in
	// bulk.
	Apply func([]decision.Decision)
	// Changed is called (never blocking for long) when the outbox or the
	// cursor changed, so the daemon saves them soon: after each decision
	// published, and after each batch applied that leaves nothing more
	// pending, not after each of a backlog's batches (a save of 100,000
	// bans costs about 0.5 s of CPU, and the backlog is in the stream
	// until it is saved).
	Changed func()
	// MaxAge is how long the stream keeps a decision: the longest decision
	// the fleet makes (default DefaultMaxAge).
	MaxAge time.Duration
	// Outbox bounds the decisions waiting to be published (default
	// DefaultOutbox).
	Outbox int
}

// Link is a running fleet link; build it with New, start it with Run.
type Link struct {
	opts    Options
	log     *slog.Logger
	subject string // this gateway's subjects' prefix: nfqfw.<stream>.
	ready   chan struct{}

	mu      sync.Mutex
	outbox  [][]byte // encoded decisions, oldest first
	wake    chan struct{}
	resub   chan struct{} // a reconnect: make the consumer again from the cursor
	recvMu  sync.Mutex    // one receive at a time, across consumers
	cursor  atomic.Uint64 // last stream sequence applied (or skipped)
	protect atomic.Pointer[[]netip.Prefix]

	// The consumer hands batches to the apply goroutine through applyq;
	// free returns their slices. queued is the last stream sequence
	// handed over (a consumer made again starts after it); epoch counts
	// the cursor's resets, so that a batch read before a reset does not
	// move the cursor after it.
	batch   []decision.Decision // accepted, not yet handed over; under recvMu
	runCtx  context.Context     // Run's; under recvMu
	applyq  chan applyJob
	free    chan []decision.Decision
	queued  atomic.Uint64
	epoch   atomic.Uint64
	pending atomic.Uint64 // the consumer's count of messages after the last read

	updateRefused atomic.Bool // the stream's update was refused once: not tried again

	state  atomic.Int32 // linkDown, linkUp
	reason atomic.Pointer[string]

	stats counters
}

// applyJob is a batch for Apply and the stream sequence the cursor moves
// to once it is applied; last: the consumer had nothing more pending.
type applyJob struct {
	ds    []decision.Decision
	seq   uint64
	epoch uint64
	last  bool
}

// Link states.
const (
	linkDown int32 = iota
	linkUp
)

// counters are the link's statistics, by kind where it has one.
type counters struct {
	published, received, refused  [decision.MaxKind + 1]atomic.Uint64
	malformed, oversized, spoofed atomic.Uint64
	expired, outboxDropped        atomic.Uint64
	skippedOwn                    atomic.Uint64
	connects, disconnects         atomic.Uint64
	lag                           lagHistogram
}

// LagBuckets are the upper bounds, in seconds, of the propagation lag
// histogram: from a decision's issue on its gateway to its arrival here.
var LagBuckets = [...]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// lagHistogram counts lags per bucket of LagBuckets (the last slot: above
// every bound).
type lagHistogram struct {
	counts [len(LagBuckets) + 1]atomic.Uint64
	sumNs  atomic.Int64
}

func (h *lagHistogram) observe(d time.Duration) {
	i := len(LagBuckets)
	for j, b := range LagBuckets {
		if d.Seconds() <= b {
			i = j
			break
		}
	}
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
}

// Lag is a snapshot of the propagation lag histogram.
type Lag struct {
	Count   uint64
	Sum     time.Duration
	Buckets []uint64 // cumulative: Buckets[i] lags were at most LagBuckets[i]
}

func (h *lagHistogram) snapshot() Lag {
	l := Lag{Sum: time.Duration(h.sumNs.Load()), Buckets: make([]uint64, len(LagBuckets))}
	for i := range LagBuckets {
		l.Count += h.counts[i].Load()
		l.Buckets[i] = l.Count
	}
	l.Count += h.counts[len(LagBuckets)].Load()
	return l
}

// New returns a link for cfg; it connects when Run starts.
func New(opts Options) (*Link, error) {
	if !opts.Config.Enabled() || opts.Config.Gateway == "" {
		return nil, fmt.Errorf("%w: no servers or no gateway name", ErrConfig)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Outbox <= 0 {
		opts.Outbox = DefaultOutbox
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	l := &Link{
		opts:    opts,
		log:     opts.Logger.With("subsystem", "fleet", "gateway", opts.Config.Gateway),
		subject: "nfqfw." + opts.Config.Stream + ".",
		wake:    make(chan struct{}, 1),
		resub:   make(chan struct{}, 1),
		applyq:  make(chan applyJob, applyQueue),
		free:    make(chan []decision.Decision, applyQueue+2),
	}
	l.setDown("not connected yet")
	return l, nil
}

// Subject returns the subject a decision of kind k made by gateway is
// published on.
func (l *Link) Subject(k decision.Kind, gateway string) string {
	return l.subject + k.String() + "." + gateway
}

// SetProtected sets the prefixes no remote decision may touch: a received
// decision whose scope overlaps one of them is refused and counted.
func (l *Link) SetProtected(p []netip.Prefix) {
	p = append([]netip.Prefix(nil), p...)
	l.protect.Store(&p)
}

// Restore sets the outbox and cursor the last run persisted. Call it
// before Run.
func (l *Link) Restore(outbox [][]byte, cursor uint64) {
	l.mu.Lock()
	for _, b := range outbox {
		if _, err := decision.Unmarshal(b); err == nil {
			l.outbox = append(l.outbox, b)
		}
	}
	if n := len(l.outbox) - l.opts.Outbox; n > 0 {
		l.outbox = l.outbox[n:]
	}
	l.mu.Unlock()
	l.cursor.Store(cursor)
	l.queued.Store(cursor)
	l.poke()
}

// Outbox returns the encoded decisions not yet acknowledged by the
// stream, oldest first, for the daemon to persist.
func (l *Link) Outbox() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.outbox...)
}

// Cursor returns the last stream sequence this gateway applied.
func (l *Link) Cursor() uint64 { return l.cursor.Load() }

// Publish queues a local decision for the fleet and returns at once. Its
// Origin is set to this gateway. A decision that does not encode is
// logged and dropped; when the outbox is full the oldest is dropped and
// counted.
func (l *Link) Publish(d decision.Decision) {
	d.Origin = l.opts.Config.Gateway
	if d.Issued.IsZero() {
		d.Issued = time.Now()
	}
	b, err := d.Marshal()
	if err != nil {
		l.log.Error("decision not published: it does not encode", "decision", d.String(), "err", err)
		return
	}
	l.mu.Lock()
	if len(l.outbox) >= l.opts.Outbox {
		l.outbox[0] = nil
		l.outbox = l.outbox[1:]
		l.stats.outboxDropped.Add(1)
	}
	l.outbox = append(l.outbox, b)
	l.mu.Unlock()
	l.poke()
	l.changed()
}

func (l *Link) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Link) changed() {
	if l.opts.Changed != nil {
		l.opts.Changed()
	}
}

// Up reports whether the link is connected with its stream set up, and
// when it is not, why.
func (l *Link) Up() (bool, string) {
	if l.state.Load() == linkUp {
		return true, ""
	}
	if r := l.reason.Load(); r != nil {
		return false, *r
	}
	return false, "down"
}

func (l *Link) setUp() {
	if l.state.Swap(linkUp) != linkUp {
		l.log.Info("fleet link up: sharing decisions", "backlog", l.Backlog(), "cursor", l.Cursor())
	}
	l.reason.Store(nil)
}

func (l *Link) setDown(why string) {
	if l.state.Swap(linkDown) == linkUp {
		l.log.Warn("fleet link down: this gateway goes on enforcing and deciding alone; decisions are queued",
			"why", why, "backlog", l.Backlog())
	}
	l.reason.Store(&why)
}

// Backlog returns how many decisions wait to be published.
func (l *Link) Backlog() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.outbox)
}

// connectOptions builds the NATS options from the config: identity,
// credentials (read now), and reconnection for ever.
func (l *Link) connectOptions() ([]nats.Option, error) {
	c := l.opts.Config.Credentials
	opts := []nats.Option{
		nats.Name("nfqfw " + l.opts.Config.Gateway),
		// Replies come on this gateway's own inboxes: a server can
		// let each gateway subscribe to its own only.
		nats.CustomInboxPrefix(InboxPrefix(l.opts.Config.Gateway)),
		nats.MaxReconnects(-1),
		// A server back after an outage is tried again within about
		// 0.3 s: the backlog then waits for nothing else.
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(dialTimeout),
		// A new connection attempt every 0.25 s while a server does
		// not answer: a heal is seen within about that.
		nats.SetCustomDialer(eagerDialer{timeout: dialTimeout, redial: redial}),
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.ReconnectBufSize(-1), // the outbox is the buffer: publish only while connected
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			l.stats.disconnects.Add(1)
			why := "disconnected"
			if err != nil {
				why = "disconnected: " + err.Error()
			}
			l.setDown(why)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			l.stats.connects.Add(1)
			l.log.Info("fleet server reconnected", "server", nc.ConnectedUrlRedacted())
			l.poke()
			select {
			case l.resub <- struct{}{}:
			default:
			}
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			l.stats.connects.Add(1)
			l.log.Info("fleet server connected", "server", nc.ConnectedUrlRedacted())
			l.poke()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			l.log.Debug("fleet connection error", "err", err)
		}),
	}
	if c.PasswordFile != "" {
		pass, err := readSecret(c.PasswordFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserInfo(c.User, pass))
	}
	if c.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("%w: nkey_seed_file: %v", ErrCredentials, err)
		}
		opts = append(opts, o)
	}
	if c.CertFile != "" {
		opts = append(opts, nats.ClientCert(c.CertFile, c.KeyFile))
	}
	if c.CAFile != "" {
		opts = append(opts, nats.RootCAs(c.CAFile))
	}
	return opts, nil
}

// InboxPrefix is the prefix of the reply subjects of gateway's
// connection: _INBOX.<gateway>. A server's permissions can allow each
// gateway to subscribe to _INBOX.<gateway>.> only.
func InboxPrefix(gateway string) string { return "_INBOX." + gateway }

// readSecret reads a one-line secret file.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrCredentials, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" || strings.ContainsAny(s, "\r\n") || len(s) > 4096 {
		return "", fmt.Errorf("%w: %s: want the secret alone on one line", ErrCredentials, path)
	}
	return s, nil
}

// Run connects and shares decisions until ctx ends. It returns early only
// for an error that retrying cannot fix (credentials): an unreachable
// server is waited for, never an error. The caller's supervisor runs it
// again after a returned error.
func (l *Link) Run(ctx context.Context) error {
	l.recvMu.Lock()
	l.runCtx = ctx // receive's, before any consumer is made
	l.recvMu.Unlock()
	opts, err := l.connectOptions()
	if err != nil {
		l.setDown(err.Error())
		return err
	}
	nc, err := nats.Connect(strings.Join(l.opts.Config.Servers, ","), opts...)
	if err != nil {
		l.setDown(err.Error())
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	defer l.setDown("stopped")

	// Set the stream and the consumer up, retrying while the servers do
	// not answer; then the publisher sends the outbox.
	var cc jetstream.ConsumeContext
	for wait := retryMin; ; wait = min(2*wait, retryMax) {
		if !nc.IsConnected() {
			why := "no NATS server reachable"
			if e := nc.LastError(); e != nil {
				why += ": " + e.Error()
			}
			l.setDown(why)
		} else if cc, err = l.setup(ctx, js); err == nil {
			break
		} else {
			l.setDown(err.Error())
		}
		l.log.Debug("fleet stream not ready", "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	l.setUp()
	done := make(chan struct{})
	go func() { defer close(done); l.consume(ctx, js, cc) }()
	applied := make(chan struct{})
	go func() { defer close(applied); l.applyLoop(ctx) }()
	l.publish(ctx, nc, js)
	<-done
	<-applied
	return nil
}

// setup creates the stream, or updates it, and starts the ordered
// consumer after the cursor.
func (l *Link) setup(ctx context.Context, js jetstream.JetStream) (jetstream.ConsumeContext, error) {
	cfg := l.opts.Config
	sctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	info, err := l.stream(sctx, js)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.Stream, err)
	}
	// After the decisions read already, applied or waiting for Apply.
	start := max(l.queued.Load(), l.cursor.Load()) + 1
	switch {
	case start > info.State.LastSeq+1:
		// The stream is younger than the cursor (it was deleted and made
		// again): read it whole.
		l.log.Warn("fleet stream is behind this gateway's cursor (recreated?): reading it whole", "cursor", start-1, "stream_last", info.State.LastSeq)
		start = 1
		l.epoch.Add(1)
		l.cursor.Store(0)
		l.queued.Store(0)
	case info.State.Msgs > 0 && start < info.State.FirstSeq:
		l.log.Warn("fleet stream no longer holds the decisions after this gateway's cursor: reading what it holds",
			"cursor", start-1, "stream_first", info.State.FirstSeq)
	}
	cons, err := js.OrderedConsumer(sctx, cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{l.subject + ">"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	// Short pulls with a heartbeat each second: a consumer whose server
	// died is noticed, and made again on another, within about 2 s.
	cc, err := cons.Consume(l.receive, jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second), jetstream.PullMaxMessages(MaxBatch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			l.log.Debug("fleet consumer", "err", err)
		}))
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	return cc, nil
}

// stream returns the stream's info, creating the stream when it does not
// exist. An existing stream is updated only when it falls short of this
// gateway's settings (subjects, replicas, duplicate window, a shorter
// MaxAge or message size), so that gateways whose longest bans differ do
// not take turns resetting it; a refused update (a server that does not
// let gateways change the stream) is logged once and the stream used as
// it is.
func (l *Link) stream(ctx context.Context, js jetstream.JetStream) (*jetstream.StreamInfo, error) {
	want := jetstream.StreamConfig{
		Name:        l.opts.Config.Stream,
		Description: "nfqfw fleet decisions",
		Subjects:    []string{l.subject + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      l.opts.MaxAge,
		MaxMsgSize:  decision.MaxSize,
		Replicas:    l.opts.Config.Replicas,
		Duplicates:  duplicates,
	}
	st, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if st, err = js.CreateStream(ctx, want); err != nil {
			return nil, fmt.Errorf("create: %w", err)
		}
		l.log.Info("fleet stream created", "stream", want.Name, "replicas", want.Replicas, "max_age", want.MaxAge)
		return st.CachedInfo(), nil
	}
	if err != nil {
		return nil, err
	}
	info := st.CachedInfo()
	have := info.Config
	short := !slices.Equal(have.Subjects, want.Subjects) || have.Replicas != want.Replicas || have.Duplicates != want.Duplicates ||
		(have.MaxAge != 0 && have.MaxAge < want.MaxAge) || (have.MaxMsgSize > 0 && have.MaxMsgSize < want.MaxMsgSize)
	if !short || l.updateRefused.Load() {
		return info, nil
	}
	upd := have
	upd.Subjects, upd.Replicas, upd.Duplicates = want.Subjects, want.Replicas, want.Duplicates
	upd.MaxAge, upd.MaxMsgSize = max(have.MaxAge, want.MaxAge), max(have.MaxMsgSize, want.MaxMsgSize)
	uctx, cancel := context.WithTimeout(ctx, updateTimeout)
	defer cancel()
	if ust, uerr := js.UpdateStream(uctx, upd); uerr == nil {
		l.log.Info("fleet stream updated", "stream", want.Name, "replicas", upd.Replicas, "max_age", upd.MaxAge)
		return ust.CachedInfo(), nil
	} else if ctx.Err() != nil {
		return nil, ctx.Err()
	} else {
		l.updateRefused.Store(true)
		l.log.Warn("fleet stream not updated to this gateway's settings (is this gateway allowed to?): using it as it is",
			"stream", want.Name, "replicas", have.Replicas, "want_replicas", want.Replicas, "max_age", have.MaxAge, "want_max_age", want.MaxAge, "err", uerr)
	}
	return info, nil
}

// consume keeps the consumer until ctx ends. After a reconnect it makes
// the consumer again from the cursor at once, instead of waiting for the
// ordered consumer's own recovery, whose retries back off during a long
// outage.
func (l *Link) consume(ctx context.Context, js jetstream.JetStream, cc jetstream.ConsumeContext) {
	defer func() { cc.Stop() }()
	tick := time.NewTicker(stallCheck)
	defer tick.Stop()
	var lastCursor, lastConnects uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.resub:
		case <-tick.C:
			// A consumer that stopped delivering while the stream
			// holds more (its server died and its own recovery
			// stalled) is made again from the cursor. One across a
			// reconnect is not judged: the reconnect makes it again.
			cur, conns := l.cursor.Load(), l.stats.connects.Load()
			stalled := cur == lastCursor && conns == lastConnects && l.behind(ctx, js, cur)
			lastCursor, lastConnects = cur, conns
			if !stalled {
				continue
			}
			l.log.Warn("fleet consumer delivers nothing while the stream holds more: making it again", "cursor", cur)
		}
		for wait := retryMin; ; wait = min(2*wait, retryMax) {
			next, err := l.setup(ctx, js)
			if err == nil {
				// The old consumer is stopped aside: its Stop waits
				// for its own recovery attempt (4 s measured after a
				// reconnect). What it still delivers meanwhile is
				// applied twice, which changes nothing.
				go cc.Stop()
				cc = next
				break
			}
			l.log.Debug("fleet consumer not made again yet", "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		// A consumer just made is judged after a whole stallCheck, not
		// by a cursor that stood still while the link was down; a
		// reconnect it was made after asks for nothing more.
		tick.Reset(stallCheck)
		lastCursor = math.MaxUint64
		select {
		case <-l.resub:
		default:
		}
	}
}

// behind reports whether the stream holds decisions after cursor.
func (l *Link) behind(ctx context.Context, js jetstream.JetStream, cursor uint64) bool {
	sctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	st, err := js.Stream(sctx, l.opts.Config.Stream)
	if err != nil {
		return false
	}
	info, err := st.Info(sctx)
	return err == nil && info.State.LastSeq > cursor
}

// publish sends the outbox, oldest first, each decision until the stream
// acknowledges it, until ctx ends.
func (l *Link) publish(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) {
	wait := retryMin
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		l.mu.Lock()
		var head []byte
		if len(l.outbox) > 0 {
			head = l.outbox[0]
		}
		l.mu.Unlock()
		if head == nil || !nc.IsConnected() {
			if nc.IsConnected() {
				l.setUp()
			}
			select {
			case <-ctx.Done():
				return
			case <-l.wake:
			case <-tick.C:
			}
			continue
		}
		kind := decision.Kind(head[1]) // a Marshal'ed decision: byte 1 is its kind
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		_, err := js.Publish(pctx, l.Subject(kind, l.opts.Config.Gateway), head, jetstream.WithMsgID(msgID(head)),
			jetstream.WithExpectStream(l.opts.Config.Stream))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.setDown("publish: " + err.Error())
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, retryMax)
			continue
		}
		wait = retryMin
		l.setUp()
		l.mu.Lock()
		if len(l.outbox) > 0 && &l.outbox[0][0] == &head[0] {
			l.outbox[0] = nil
			l.outbox = l.outbox[1:]
		}
		l.mu.Unlock()
		if kind.Valid() {
			l.stats.published[kind].Add(1)
		}
		l.changed()
	}
}

// msgID is the stream's de-duplication id of an encoded decision.
func msgID(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// receive handles one message of the stream, on the consumer's goroutine:
// an accepted decision joins the batch, handed to the apply goroutine once
// the consumer has nothing more pending (or the batch is full); the cursor
// moves past it once it is applied. While the apply goroutine has
// applyQueue batches waiting, receive waits: the consumer then pulls no
// more.
func (l *Link) receive(m jetstream.Msg) {
	l.recvMu.Lock()
	defer l.recvMu.Unlock()
	seq, pending, ok := ackSequence(m.Reply())
	if !ok {
		l.stats.malformed.Add(1)
		return
	}
	l.pending.Store(pending)
	if d, ok := l.accept(m.Subject(), m.Data(), time.Now()); ok {
		if l.batch == nil {
			// Sized for what is pending: a backlog's batch is
			// not grown (and copied) one doubling at a time, a
			// live decision's is one long.
			want := int(min(pending+1, MaxBatch))
			select {
			case l.batch = <-l.free:
			default:
			}
			if cap(l.batch) < want {
				l.batch = make([]decision.Decision, 0, want)
			}
		}
		l.batch = append(l.batch, d)
	}
	if pending > 0 && len(l.batch) < MaxBatch {
		return
	}
	if seq <= l.queued.Load() && len(l.batch) == 0 {
		return // read again by a consumer made again: nothing to do
	}
	select {
	case l.applyq <- applyJob{ds: l.batch, seq: seq, epoch: l.epoch.Load(), last: pending == 0}:
		l.queued.Store(max(seq, l.queued.Load()))
	case <-l.runCtx.Done():
		// Stopping: the next run reads it again from the cursor.
	}
	l.batch = nil
}

// ackSequence returns the stream sequence of a message and how many more
// its consumer has pending, read from the message's reply subject
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
//	$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>[.<token>]
//
// as jetstream's Msg.Metadata reads it, without allocating: Metadata
// allocates its answer and splits the subject again for each message
// (the ordered consumer has split it once already), half a microsecond
// of each decision of a backlog. ok is false for a subject of any other
// shape.
func ackSequence(reply string) (seq, pending uint64, ok bool) {
	rest, ok := strings.CutPrefix(reply, "$JS.ACK.")
	if !ok {
		return 0, 0, false
	}
	// The tokens after $JS.ACK.: 7 (v1), or 9 and more (v2: the
	// last ones are not read).
	var tok [9]string
	n := 0
	for ; n < len(tok); n++ {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			tok[n] = rest
			n++
			break
		}
		tok[n], rest = rest[:i], rest[i+1:]
	}
	var s, p string
	switch n {
	case 7:
		s, p = tok[3], tok[6]
	case 9:
		s, p = tok[5], tok[8]
	default:
		return 0, 0, false
	}
	seq, ok1 := decimal(s)
	pending, ok2 := decimal(p)
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	return seq, pending, true
}

// decimal parses a non-empty unsigned decimal number that fits 64 bits.
func decimal(s string) (uint64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// Pending returns how many decisions the consumer had still to read after
// the last one it read: the rest of a backlog being loaded, 0 once it is
// all read. Apply can size its tables with it.
func (l *Link) Pending() int { return int(min(l.pending.Load(), math.MaxInt32)) }

// applyLoop applies the batches receive hands over, in order, and moves
// the cursor past each, until ctx ends (batches still waiting are read
// again by the next run: the cursor has not passed them).
func (l *Link) applyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-l.applyq:
			if len(j.ds) > 0 {
				l.opts.Apply(j.ds)
				clear(j.ds)
				select {
				case l.free <- j.ds[:0]:
				default:
				}
			}
			if j.epoch == l.epoch.Load() && j.seq > l.cursor.Load() {
				l.cursor.Store(j.seq)
			}
			if j.last {
				l.changed()
			}
		}
	}
}

// accept decodes and checks one message published on subject; it reports
// whether the decision is to be applied. Everything it drops is counted.
func (l *Link) accept(subject string, data []byte, now time.Time) (decision.Decision, bool) {
	kind, ok := strings.CutPrefix(subject, l.subject)
	var gw string
	if ok {
		kind, gw, ok = strings.Cut(kind, ".")
	}
	if !ok || gw == "" {
		l.stats.malformed.Add(1)
		return decision.Decision{}, false
	}
	if gw == l.opts.Config.Gateway {
		l.stats.skippedOwn.Add(1)
		return decision.Decision{}, false
	}
	if len(data) > decision.MaxSize {
		l.stats.oversized.Add(1)
		l.log.Warn("fleet message dropped: oversized", "from", gw, "bytes", len(data), "max", decision.MaxSize)
		return decision.Decision{}, false
	}
	d, err := decision.Unmarshal(data)
	if err != nil {
		l.stats.malformed.Add(1)
		l.log.Warn("fleet message dropped: malformed", "from", gw, "err", err)
		return decision.Decision{}, false
	}
	if d.Origin != gw || d.Kind.String() != kind {
		l.stats.spoofed.Add(1)
		l.log.Warn("fleet message dropped: its subject does not match its origin or kind", "subject", subject, "decision", d.String())
		return decision.Decision{}, false
	}
	// An unban, an allow or its end blocks no one: only the kinds that
	// can are checked against the protected sources.
	if p := l.protect.Load(); p != nil && d.Kind.Blocks() {
		for _, q := range *p {
			if q.Overlaps(d.Scope) {
				l.stats.refused[d.Kind].Add(1)
				l.log.Warn("fleet decision refused: its scope covers a protected source (allowlist or management session)",
					"decision", d.String(), "protected", q)
				return decision.Decision{}, false
			}
		}
	}
	if !d.Expires.IsZero() && !d.Expires.After(now) {
		l.stats.expired.Add(1)
		return decision.Decision{}, false
	}
	l.stats.received[d.Kind].Add(1)
	if !d.Issued.IsZero() {
		l.stats.lag.observe(max(now.Sub(d.Issued), 0))
	}
	return d, true
}

// Stats are the link's counters.
type Stats struct {
	Up                            bool
	Backlog                       int
	Cursor                        uint64
	Published, Received, Refused  map[decision.Kind]uint64 // by kind
	Malformed, Oversized, Spoofed uint64                   // messages dropped
	Expired                       uint64                   // decisions that arrived after their expiry
	OutboxDropped                 uint64                   // local decisions dropped from a full outbox
	Connects, Disconnects         uint64
	Lag                           Lag // propagation of the decisions received
}

// Stats returns the link's counters.
func (l *Link) Stats() Stats {
	up, _ := l.Up()
	s := Stats{Up: up, Backlog: l.Backlog(), Cursor: l.Cursor(),
		Published: map[decision.Kind]uint64{}, Received: map[decision.Kind]uint64{}, Refused: map[decision.Kind]uint64{},
		Malformed: l.stats.malformed.Load(), Oversized: l.stats.oversized.Load(), Spoofed: l.stats.spoofed.Load(),
		Expired: l.stats.expired.Load(), OutboxDropped: l.stats.outboxDropped.Load(),
		Connects: l.stats.connects.Load(), Disconnects: l.stats.disconnects.Load(),
		Lag: l.stats.lag.snapshot(),
	}
	for k := decision.Ban; k <= decision.MaxKind; k++ {
		s.Published[k] = l.stats.published[k].Load()
		s.Received[k] = l.stats.received[k].Load()
		s.Refused[k] = l.stats.refused[k].Load()
	}
	return s
}

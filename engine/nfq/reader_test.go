package nfq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// newTestReader builds a Reader around a fake sink, without a socket.
func newTestReader(cfg Config, d Decider) (*Reader, *fakeSink) {
	sink := &fakeSink{}
	r := &Reader{cfg: cfg, decider: d, fatal: make(chan error, 1)}
	r.log = discardLogger()
	r.is = issuer{sink: sink, c: &r.c, batch: 1, onErr: r.verdictError}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, sink
}

func attr(id uint32, payload []byte, hook uint8, in, out, mark uint32) nfqueue.Attribute {
	return nfqueue.Attribute{PacketID: &id, Payload: &payload, Hook: &hook, InDev: &in, OutDev: &out, Mark: &mark}
}

func TestHookPassesPacketAndMeta(t *testing.T) {
	var gotPkt []byte
	var gotMeta Meta
	r, sink := newTestReader(Config{}, DeciderFunc(func(pkt []byte, m Meta) Verdict {
		gotPkt, gotMeta = pkt, m
		return Accept
	}))
	pkt := []byte{0x45, 0, 0, 20} // the start of an IPv4 header
	if ret := r.hook(attr(9, pkt, HookForward, 2, 3, 0x42)); ret != 0 {
		t.Fatalf("hook returned %d, want 0 (keep reading)", ret)
	}
	if diff := cmp.Diff(pkt, gotPkt); diff != "" {
		t.Errorf("packet (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Meta{Hook: HookForward, InDev: 2, OutDev: 3, Mark: 0x42}, gotMeta); diff != "" {
		t.Errorf("meta (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"accept 9"}, sink.calls); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}

func TestHookAnswersPanicsWithFailureVerdict(t *testing.T) {
	panicky := DeciderFunc(func([]byte, Meta) Verdict { panic("decoder bug") })
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{name: "fail closed drops", cfg: Config{}, want: []string{"drop 1"}},
		{name: "fail open accepts", cfg: Config{FailureAccept: true}, want: []string{"accept 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, sink := newTestReader(tt.cfg, panicky)
			r.hook(attr(1, nil, HookInput, 1, 0, 0))
			if diff := cmp.Diff(tt.want, sink.calls); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
			}
			if got := r.Stats().Panics; got != 1 {
				t.Errorf("Stats().Panics = %d, want 1", got)
			}
		})
	}
}

func TestHookWithoutPacketIDIsCountedNotAnswered(t *testing.T) {
	r, sink := newTestReader(Config{}, DeciderFunc(func([]byte, Meta) Verdict { return Accept }))
	if ret := r.hook(nfqueue.Attribute{}); ret != 0 {
		t.Fatalf("hook returned %d, want 0", ret)
	}
	if len(sink.calls) != 0 {
		t.Errorf("verdicts = %v, want none", sink.calls)
	}
	if diff := cmp.Diff(Stats{Malformed: 1}, r.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestOnError(t *testing.T) {
	enobufs := fmt.Errorf("receive: %w", unix.ENOBUFS)
	other := errors.New("transient")
	tests := []struct {
		name      string
		errs      []error
		stopping  bool
		wantRet   int // of the last call
		wantStats Stats
		wantFatal error
	}{
		{name: "ENOBUFS is counted and the reader goes on", errs: []error{enobufs, enobufs},
			wantStats: Stats{ENOBUFS: 2}},
		{name: "other errors are counted and the reader goes on", errs: []error{other},
			wantStats: Stats{Errors: 1}},
		{name: "closed socket stops the reader", errs: []error{net.ErrClosed},
			wantRet: 1, wantFatal: ErrReaderStopped},
		{name: "errors while stopping end the loop quietly", errs: []error{other}, stopping: true,
			wantRet: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newTestReader(Config{}, nil)
			if tt.stopping {
				r.cancel()
			}
			var ret int
			for _, err := range tt.errs {
				ret = r.onError(err)
			}
			if ret != tt.wantRet {
				t.Errorf("onError returned %d, want %d", ret, tt.wantRet)
			}
			if diff := cmp.Diff(tt.wantStats, r.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			select {
			case err := <-r.fatal:
				if !errors.Is(err, tt.wantFatal) || tt.wantFatal == nil {
					t.Errorf("fatal error %v, want %v", err, tt.wantFatal)
				}
			default:
				if tt.wantFatal != nil {
					t.Errorf("no fatal error, want %v", tt.wantFatal)
				}
			}
		})
	}
}

func TestOnErrorStopsAfterConsecutiveErrors(t *testing.T) {
	r, _ := newTestReader(Config{}, DeciderFunc(func([]byte, Meta) Verdict { return Accept }))
	for range MaxConsecutiveErrors - 1 {
		if r.onError(errors.New("x")) != 0 {
			t.Fatal("reader stopped before MaxConsecutiveErrors")
		}
	}
	r.hook(attr(1, nil, HookInput, 0, 0, 0)) // a packet resets the run
	for range MaxConsecutiveErrors - 1 {
		if r.onError(errors.New("x")) != 0 {
			t.Fatal("a packet did not reset the error run")
		}
	}
	if r.onError(errors.New("x")) == 0 {
		t.Fatal("reader goes on after MaxConsecutiveErrors errors in a row")
	}
	if err := <-r.fatal; !errors.Is(err, ErrTooManyErrors) {
		t.Errorf("fatal = %v, want ErrTooManyErrors", err)
	}
}

func TestLimiter(t *testing.T) {
	var l limiter
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at             time.Duration
		wantOK         bool
		wantSuppressed uint64
	}{
		{0, true, 0},
		{100 * time.Millisecond, false, 0},
		{900 * time.Millisecond, false, 0},
		{logEvery, true, 2},
		{logEvery + 1, false, 0},
	}
	for i, s := range steps {
		ok, n := l.allow(t0.Add(s.at))
		if ok != s.wantOK || n != s.wantSuppressed {
			t.Errorf("step %d at %v: allow = %v, %d; want %v, %d", i, s.at, ok, n, s.wantOK, s.wantSuppressed)
		}
	}
}

// TestHookAllocs proves the reader adds no allocation per packet between
// the library's message and the verdict call (the fake sink allocates
// nothing for accepts here; the library's own parse and send are outside).
func TestHookAllocs(t *testing.T) {
	r, _ := newTestReader(Config{}, DeciderFunc(func([]byte, Meta) Verdict { return Drop }))
	r.is.sink = nopSink{}
	a := attr(1, make([]byte, 60), HookInput, 1, 0, 0)
	if n := testing.AllocsPerRun(1000, func() { r.hook(a) }); n != 0 {
		t.Errorf("hook allocates %v times per packet, want 0", n)
	}
}

// TestHookBatchesBursts shows when the reader answers held accepts: at
// once when the socket is drained, at the end of a burst otherwise, and
// before any other verdict.
func TestHookBatchesBursts(t *testing.T) {
	acc, rep := Accept, RepeatWithMark(0x10000)
	tests := []struct {
		name     string
		verdicts []Verdict
		pending  []bool // socket backlog seen after each packet
		want     []string
	}{
		{
			name:     "idle socket: every accept answered at once",
			verdicts: []Verdict{acc, acc},
			pending:  []bool{false, false},
			want:     []string{"batch-accept 1", "batch-accept 2"},
		},
		{
			name:     "burst of three: one message at its end",
			verdicts: []Verdict{acc, acc, acc},
			pending:  []bool{true, true, false},
			want:     []string{"batch-accept 3"},
		},
		{
			name:     "burst longer than the batch size: a message per full batch",
			verdicts: []Verdict{acc, acc, acc, acc, acc},
			pending:  []bool{true, true, true, true, false},
			want:     []string{"batch-accept 3", "batch-accept 5"},
		},
		{
			name:     "a reject inside a burst flushes the accepts before it",
			verdicts: []Verdict{acc, acc, rep, acc},
			pending:  []bool{true, true, true, false},
			want:     []string{"batch-accept 2", "repeat 3", "batch-accept 4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := 0
			r, sink := newTestReader(Config{}, DeciderFunc(func([]byte, Meta) Verdict { return tt.verdicts[i] }))
			r.is.batch = 3
			r.pending = func() bool { return tt.pending[i] }
			for i = range tt.verdicts {
				r.hook(attr(uint32(i+1), nil, HookInput, 1, 0, 0))
			}
			if diff := cmp.Diff(tt.want, sink.calls); diff != "" {
				t.Errorf("verdict messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOnErrorFlushesHeldAccepts(t *testing.T) {
	r, sink := newTestReader(Config{}, DeciderFunc(func([]byte, Meta) Verdict { return Accept }))
	r.is.batch = 64
	r.pending = func() bool { return true }
	r.hook(attr(1, nil, HookInput, 1, 0, 0))
	r.hook(attr(2, nil, HookInput, 1, 0, 0))
	r.onError(fmt.Errorf("receive: %w", unix.ENOBUFS))
	if diff := cmp.Diff([]string{"batch-accept 2"}, sink.calls); diff != "" {
		t.Errorf("verdict messages (-want +got):\n%s", diff)
	}
}

// TestHookAllocsBatched proves batching adds no allocation per packet,
// whether the accept is held or flushed.
func TestHookAllocsBatched(t *testing.T) {
	for _, backlog := range []bool{false, true} {
		r, _ := newTestReader(Config{}, DeciderFunc(func([]byte, Meta) Verdict { return Accept }))
		r.is.sink = nopSink{}
		r.is.batch = DefaultBatchSize
		r.pending = func() bool { return backlog }
		id := uint32(0)
		a := attr(0, make([]byte, 60), HookInput, 1, 0, 0)
		if n := testing.AllocsPerRun(1000, func() { id++; *a.PacketID = id; r.hook(a) }); n != 0 {
			t.Errorf("backlog %v: hook allocates %v times per packet, want 0", backlog, n)
		}
	}
}

// TestBacklog checks the socket probe on a datagram socket pair: nothing
// pending, then a waiting datagram, without allocating.
func TestBacklog(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	rd, wr := os.NewFile(uintptr(fds[0]), "rd"), os.NewFile(uintptr(fds[1]), "wr")
	defer rd.Close()
	defer wr.Close()
	b, err := newBacklog(rd)
	if err != nil {
		t.Fatal(err)
	}
	if b.pending() {
		t.Error("pending() = true on an empty socket")
	}
	if _, err := wr.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if !b.pending() {
		t.Error("pending() = false with a datagram waiting")
	}
	if n := testing.AllocsPerRun(1000, func() { b.pending() }); n != 0 {
		t.Errorf("pending() allocates %v times, want 0", n)
	}
	rd.Close()
	if b.pending() {
		t.Error("pending() = true on a closed socket")
	}
}

func BenchmarkBacklog(b *testing.B) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	rd, wr := os.NewFile(uintptr(fds[0]), "rd"), os.NewFile(uintptr(fds[1]), "wr")
	defer rd.Close()
	defer wr.Close()
	bl, err := newBacklog(rd)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		bl.pending()
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

type nopSink struct{}

func (nopSink) SetVerdict(uint32, int) error      { return nil }
func (nopSink) SetVerdictBatch(uint32, int) error { return nil }
func (nopSink) SetVerdictWithOption(uint32, int, ...nfqueue.VerdictOption) error {
	return nil
}

func BenchmarkHook(b *testing.B) {
	r, _ := newTestReader(Config{}, DeciderFunc(func([]byte, Meta) Verdict { return Accept }))
	r.is.sink = nopSink{}
	a := attr(1, make([]byte, 60), HookInput, 1, 0, 0)
	b.ReportAllocs()
	for b.Loop() {
		r.hook(a)
	}
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

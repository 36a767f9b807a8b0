package nfq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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

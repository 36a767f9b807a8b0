package nfq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// newTestReader builds a Reader around a fake sink, without a socket.
func newTestReader(cfg Config, d Decider) (*Reader, *fakeSink) {
	sink := &fakeSink{}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 1
	}
	return newReader(cfg, discardLogger(), nil, sink, d), sink
}

// hook hands one queued packet to r as the receive loop would.
func hook(r *Reader, id uint32, payload []byte, hookNum uint8, in, out, mark uint32) {
	r.datagram(packetMessage(id, payload, hookNum, in, out, mark), false)
}

func TestHookPassesPacketAndMeta(t *testing.T) {
	var gotPkt []byte
	var gotMeta Meta
	r, sink := newTestReader(Config{}, DeciderFunc(func(pkt []byte, m Meta) Verdict {
		gotPkt, gotMeta = pkt, m
		return Accept
	}))
	pkt := []byte{0x45, 0, 0, 20} // the start of an IPv4 header
	hook(r, 9, pkt, HookForward, 2, 3, 0x42)
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
			hook(r, 1, nil, HookInput, 1, 0, 0)
			if diff := cmp.Diff(tt.want, sink.calls); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
			}
			if got := r.Stats().Panics; got != 1 {
				t.Errorf("Stats().Panics = %d, want 1", got)
			}
		})
	}
}

func TestBrokenMessages(t *testing.T) {
	ok := packetMessage(5, []byte{0x45}, HookInput, 1, 0, 0)
	noPayload := packetMessage(6, nil, HookInput, 1, 0, 7)
	noPayload = noPayload[:len(noPayload)-nlaHdrLen] // drop the empty payload attribute
	binary.NativeEndian.PutUint32(noPayload, uint32(len(noPayload)))
	cutAttr := slices.Clone(ok)
	binary.NativeEndian.PutUint16(cutAttr[len(cutAttr)-8:], 200) // payload attribute longer than the message
	tests := []struct {
		name      string
		msg       []byte
		truncated bool
		want      []string
		wantStats Stats
	}{
		{name: "no packet id: counted, not answered",
			msg:       packetMessage(0, nil, 0, 0, 0, 0)[:nlmsgHdrLen+nfgenHdrLen],
			wantStats: Stats{Malformed: 1}},
		{name: "message longer than the datagram: counted",
			msg:       ok[:len(ok)-4],
			wantStats: Stats{Malformed: 1}},
		{name: "attribute cut short: failure verdict",
			msg:       fixLen(cutAttr),
			want:      []string{"drop 5"},
			wantStats: Stats{Malformed: 1, Dropped: 1}},
		{name: "datagram cut to the buffer: failure verdict",
			msg: ok, truncated: true,
			want:      []string{"drop 5"},
			wantStats: Stats{Malformed: 1, Dropped: 1}},
		{name: "no payload (queued before the copy mode applied): sent through the hook again",
			msg:       noPayload,
			want:      []string{"repeat 6 mark=0x7"},
			wantStats: Stats{Repeated: 1}},
		{name: "the kernel refused a verdict: counted",
			msg:       errorMessage(-int32(unix.ENOENT), 0),
			wantStats: Stats{VerdictErrors: 1}},
		{name: "an ack is no error",
			msg: errorMessage(0, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, sink := newTestReader(Config{}, DeciderFunc(func([]byte, Meta) Verdict { return Accept }))
			r.datagram(tt.msg, tt.truncated)
			if diff := cmp.Diff(tt.want, sink.calls); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStats, r.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDatagramWithSeveralMessages reads every message of one datagram.
func TestDatagramWithSeveralMessages(t *testing.T) {
	r, sink := newTestReader(Config{}, DeciderFunc(func([]byte, Meta) Verdict { return Accept }))
	b := slices.Concat(packetMessage(1, []byte{1, 2, 3}, HookInput, 1, 0, 0), packetMessage(2, []byte{4}, HookInput, 1, 0, 0))
	r.datagram(b, false)
	if diff := cmp.Diff([]string{"accept 1", "accept 2"}, sink.calls); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
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
	hook(r, 1, nil, HookInput, 0, 0, 0)
	r.consecutive = 0 // what the loop does after a successful receive
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

// TestHookAllocs proves the reader adds no allocation per packet between
// the receive buffer and the verdict message.
func TestHookAllocs(t *testing.T) {
	for _, batch := range []int{1, DefaultBatchSize} {
		r, _ := newTestReader(Config{BatchSize: batch}, DeciderFunc(func([]byte, Meta) Verdict { return Accept }))
		r.is.sink = nopSink{}
		msg := packetMessage(1, make([]byte, 60), HookInput, 1, 0, 0)
		id := uint32(0)
		if n := testing.AllocsPerRun(1000, func() {
			id++
			setPacketID(msg, id)
			r.datagram(msg, false)
		}); n != 0 {
			t.Errorf("batch %d: a packet allocates %v times, want 0", batch, n)
		}
	}
}

// TestLoopBatchesWhatOneReceiveRead shows when the reader answers held
// accepts: at the end of what one receive read, when the batch is full,
// and before any other verdict.
func TestLoopBatchesWhatOneReceiveRead(t *testing.T) {
	acc, rep := Accept, RepeatWithMark(0x10000)
	tests := []struct {
		name     string
		verdicts []Verdict
		reads    []int // packets per receive
		want     []string
	}{
		{
			name:     "a packet per receive: every accept answered at once",
			verdicts: []Verdict{acc, acc},
			reads:    []int{1, 1},
			want:     []string{"batch-accept 1", "batch-accept 2"},
		},
		{
			name:     "three in one receive: one message",
			verdicts: []Verdict{acc, acc, acc},
			reads:    []int{3},
			want:     []string{"batch-accept 3"},
		},
		{
			name:     "more than the batch size: a message per full batch",
			verdicts: []Verdict{acc, acc, acc, acc, acc},
			reads:    []int{5},
			want:     []string{"batch-accept 3", "batch-accept 5"},
		},
		{
			name:     "a reject among them flushes the accepts before it",
			verdicts: []Verdict{acc, acc, rep, acc},
			reads:    []int{4},
			want:     []string{"batch-accept 2", "repeat 3 mark=0x10000", "batch-accept 4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := 0
			r, sink := newTestReader(Config{BatchSize: 3}, DeciderFunc(func([]byte, Meta) Verdict { return tt.verdicts[i] }))
			for _, n := range tt.reads {
				for range n {
					hook(r, uint32(i+1), nil, HookInput, 1, 0, 0)
					i++
				}
				r.is.flush() // the loop's end of a receive
			}
			if diff := cmp.Diff(tt.want, sink.calls); diff != "" {
				t.Errorf("verdict messages (-want +got):\n%s", diff)
			}
		})
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

type nopSink struct{}

func (nopSink) verdict(uint32, uint32, bool, bool, uint32) {}

// BenchmarkHook is the reader's own cost per packet: parse the queue
// message, decide (accept), issue the verdict message.
func BenchmarkHook(b *testing.B) {
	r, _ := newTestReader(Config{BatchSize: DefaultBatchSize}, DeciderFunc(func([]byte, Meta) Verdict { return Accept }))
	s := &sock{queue: 0}
	r.is.sink = s
	msg := packetMessage(1, make([]byte, 60), HookInput, 1, 0, 0)
	id := uint32(0)
	b.ReportAllocs()
	for b.Loop() {
		id++
		setPacketID(msg, id)
		r.datagram(msg, false)
		s.out = s.out[:0]
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

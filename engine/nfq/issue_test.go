package nfq

import (
	"errors"
	"fmt"
	"testing"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/google/go-cmp/cmp"
)

// fakeSink records verdict calls as strings: "accept 1", "batch-accept 3",
// "drop 2", "repeat 4 mark=0x10000".
type fakeSink struct {
	calls []string
	fail  bool
}

var errSink = errors.New("sink refused")

func (f *fakeSink) SetVerdict(id uint32, v int) error {
	name := map[int]string{nfqueue.NfAccept: "accept", nfqueue.NfDrop: "drop"}[v]
	f.calls = append(f.calls, fmt.Sprintf("%s %d", name, id))
	return f.err()
}

func (f *fakeSink) SetVerdictBatch(id uint32, v int) error {
	name := map[int]string{nfqueue.NfAccept: "accept", nfqueue.NfDrop: "drop"}[v]
	f.calls = append(f.calls, fmt.Sprintf("batch-%s %d", name, id))
	return f.err()
}

func (f *fakeSink) SetVerdictWithOption(id uint32, v int, opts ...nfqueue.VerdictOption) error {
	if v != nfqueue.NfRepeat || len(opts) != 1 {
		f.calls = append(f.calls, fmt.Sprintf("unexpected verdict %d with %d options", v, len(opts)))
	}
	f.calls = append(f.calls, fmt.Sprintf("repeat %d", id))
	return f.err()
}

func (f *fakeSink) err() error {
	if f.fail {
		return errSink
	}
	return nil
}

func TestIssuer(t *testing.T) {
	acc, drop, rep := Accept, Drop, RepeatWithMark(0x10000)
	tests := []struct {
		name     string
		batch    int
		ids      []uint32  // ids of the verdicts; nil: 1, 2, 3, ...
		verdicts []Verdict // for ids 1, 2, 3, ...
		flush    bool      // flush at the end, as an idle reader would
		want     []string
	}{
		{
			name:     "no batching: one message per verdict",
			batch:    1,
			verdicts: []Verdict{acc, drop, rep, acc},
			want:     []string{"accept 1", "drop 2", "repeat 3", "accept 4"},
		},
		{
			name:     "batch of 3 accepts is one message",
			batch:    3,
			verdicts: []Verdict{acc, acc, acc, acc},
			want:     []string{"batch-accept 3"},
		},
		{
			name:     "held accepts are flushed before a mark verdict",
			batch:    64,
			verdicts: []Verdict{acc, acc, rep, acc},
			flush:    true,
			want:     []string{"batch-accept 2", "repeat 3", "batch-accept 4"},
		},
		{
			name:     "held accepts are flushed before a drop",
			batch:    64,
			verdicts: []Verdict{acc, drop, drop},
			want:     []string{"batch-accept 1", "drop 2", "drop 3"},
		},
		{
			name:     "held accepts wait for the flush",
			batch:    64,
			verdicts: []Verdict{acc, acc, acc},
			want:     nil,
		},
		{
			name:     "a gap in the ids is answered with the failure verdict before the next batch",
			batch:    64,
			ids:      []uint32{1, 2, 5, 6},
			verdicts: []Verdict{acc, acc, acc, acc},
			flush:    true,
			want:     []string{"batch-accept 2", "batch-drop 4", "batch-accept 6"},
		},
		{
			name:     "a gap after a drop answers only the gap",
			batch:    64,
			ids:      []uint32{10, 12},
			verdicts: []Verdict{drop, acc},
			flush:    true,
			want:     []string{"drop 10", "batch-drop 11", "batch-accept 12"},
		},
		{
			name:     "no batching leaves gaps to the kernel",
			batch:    1,
			ids:      []uint32{1, 3},
			verdicts: []Verdict{acc, acc},
			want:     []string{"accept 1", "accept 3"},
		},
		{
			name:     "a verdict with both flags accepts",
			batch:    1,
			verdicts: []Verdict{{Accept: true, Repeat: true, Mark: 7}},
			want:     []string{"accept 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &fakeSink{}
			is := issuer{sink: sink, c: &counters{}, batch: tt.batch, unseen: nfqueue.NfDrop}
			for i, v := range tt.verdicts {
				id := uint32(i + 1)
				if tt.ids != nil {
					id = tt.ids[i]
				}
				is.issue(id, v)
			}
			if tt.flush {
				is.flush()
			}
			if diff := cmp.Diff(tt.want, sink.calls); diff != "" {
				t.Errorf("verdict messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIssuerCountsVerdictErrors(t *testing.T) {
	sink := &fakeSink{fail: true}
	var logged []string
	is := issuer{sink: sink, c: &counters{}, batch: 1, onErr: func(op string, id uint32, err error) {
		logged = append(logged, fmt.Sprintf("%s %d: %v", op, id, err))
	}}
	is.issue(1, Accept)
	is.issue(2, Drop)
	is.issue(3, RepeatWithMark(1))
	want := Stats{Accepted: 1, Dropped: 1, Repeated: 1, VerdictErrors: 3}
	if diff := cmp.Diff(want, is.c.snapshot()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	wantLog := []string{"accept 1: sink refused", "drop 2: sink refused", "repeat 3: sink refused"}
	if diff := cmp.Diff(wantLog, logged); diff != "" {
		t.Errorf("logged errors (-want +got):\n%s", diff)
	}
}

func TestIssuerCountsUnseen(t *testing.T) {
	is := issuer{sink: &fakeSink{}, c: &counters{}, batch: 64, unseen: nfqueue.NfAccept}
	for _, id := range []uint32{3, 4, 8, 20} {
		is.issue(id, Accept)
	}
	if got, want := is.c.snapshot().Unseen, uint64(3+11); got != want {
		t.Errorf("Unseen = %d, want %d", got, want)
	}
}

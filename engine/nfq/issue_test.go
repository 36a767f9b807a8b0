package nfq

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeSink records verdict messages as strings: "accept 1", "batch-accept 3",
// "drop 2", "repeat 4 mark=0x10000".
type fakeSink struct {
	calls []string
}

func (f *fakeSink) verdict(id, v uint32, batch, withMark bool, mark uint32) {
	name := map[uint32]string{nfAccept: "accept", nfDrop: "drop", nfRepeat: "repeat"}[v]
	if batch {
		name = "batch-" + name
	}
	if withMark {
		f.calls = append(f.calls, fmt.Sprintf("%s %d mark=%#x", name, id, mark))
		return
	}
	f.calls = append(f.calls, fmt.Sprintf("%s %d", name, id))
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
			want:     []string{"accept 1", "drop 2", "repeat 3 mark=0x10000", "accept 4"},
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
			want:     []string{"batch-accept 2", "repeat 3 mark=0x10000", "batch-accept 4"},
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
			is := issuer{sink: sink, c: &counters{}, batch: tt.batch, unseen: verdictCode(nfDrop)}
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

func TestIssuerCountsUnseen(t *testing.T) {
	is := issuer{sink: &fakeSink{}, c: &counters{}, batch: 64, unseen: verdictCode(nfAccept)}
	for _, id := range []uint32{3, 4, 8, 20} {
		is.issue(id, Accept)
	}
	if got, want := is.c.snapshot().Unseen, uint64(3+11); got != want {
		t.Errorf("Unseen = %d, want %d", got, want)
	}
}

func verdictCode(v uint32) *atomic.Uint32 {
	var a atomic.Uint32
	a.Store(v)
	return &a
}

// TestIssuerGapWraps checks the gap check across the 32-bit wrap of packet
// ids: no gap is seen where there is none, and a real one is answered.
func TestIssuerGapWraps(t *testing.T) {
	sink := &fakeSink{}
	is := issuer{sink: sink, c: &counters{}, batch: 64, unseen: verdictCode(nfDrop)}
	for _, id := range []uint32{0xfffffffe, 0xffffffff, 0, 1, 4} {
		is.issue(id, Accept)
	}
	is.flush()
	want := []string{"batch-accept 1", "batch-drop 3", "batch-accept 4"}
	if diff := cmp.Diff(want, sink.calls); diff != "" {
		t.Errorf("verdict messages (-want +got):\n%s", diff)
	}
	if got := is.c.snapshot().Unseen; got != 2 {
		t.Errorf("Unseen = %d, want 2", got)
	}
}

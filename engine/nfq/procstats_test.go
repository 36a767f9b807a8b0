package nfq

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadProcStats(t *testing.T) {
	// testdata/nfnetlink_queue is laid out as the kernel prints it
	// ("%5u %6u %5u %1u %5u %5u %5u %8u %2d"): three bound queues.
	got, err := ReadProcStats(filepath.Join("testdata", "nfnetlink_queue"))
	if err != nil {
		t.Fatal(err)
	}
	want := []QueueProcStats{
		{Queue: 0, PeerPortID: 4026531, CopyMode: 2, CopyRange: 65535},
		{Queue: 7, PeerPortID: 3456789, QueueTotal: 5, CopyMode: 2, CopyRange: 65535, Dropped: 17, UserDropped: 2, IDSequence: 42},
		{Queue: 100, PeerPortID: 4294965001, QueueTotal: 12, CopyMode: 2, CopyRange: 65535, Dropped: 3, UserDropped: 1, IDSequence: 1234567},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadProcStats (-want +got):\n%s", diff)
	}
}

func TestReadProcStatsMissingFileIsNoQueue(t *testing.T) {
	got, err := ReadProcStats(filepath.Join(t.TempDir(), "absent"))
	if err != nil || len(got) != 0 {
		t.Errorf("ReadProcStats(absent) = %v, %v; want empty, nil", got, err)
	}
}

func TestParseProcStats(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []QueueProcStats
		wantErr bool
	}{
		{name: "empty file: no queue bound", in: ""},
		{name: "blank lines are skipped", in: "\n  \n"},
		{name: "an appended column is ignored",
			in:   "1 2 3 2 65535 4 5 6 1 99\n",
			want: []QueueProcStats{{Queue: 1, PeerPortID: 2, QueueTotal: 3, CopyMode: 2, CopyRange: 65535, Dropped: 4, UserDropped: 5, IDSequence: 6}}},
		{name: "too few columns", in: "1 2 3 2 65535 4 5 6\n", wantErr: true},
		{name: "not a number", in: "1 2 x 2 65535 4 5 6 1\n", wantErr: true},
		{name: "queue number out of range", in: "65536 2 3 2 65535 4 5 6 1\n", wantErr: true},
		{name: "negative", in: "1 -2 3 2 65535 4 5 6 1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStats([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrProcFormat) {
					t.Fatalf("parseProcStats() error = %v, want ErrProcFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseProcStats (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseProcStats(f *testing.F) {
	f.Add([]byte("    7 3456789     5 2 65535    17     2       42  1\n"))
	f.Add([]byte("1 2 3 2 65535 4 5 6 1 99\n\n0 0 0 0 0 0 0 0 0"))
	f.Add([]byte("65536 -1 x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseProcStats(data)
		if err != nil && !errors.Is(err, ErrProcFormat) {
			t.Fatalf("error %v is not ErrProcFormat", err)
		}
		if err != nil && got != nil {
			t.Fatalf("both result and error")
		}
	})
}

package store

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type state struct {
	Bans  []ban          `json:"bans"`
	Lists map[string]int `json:"lists"`
}

type ban struct {
	Addr  string    `json:"addr"`
	Until time.Time `json:"until"`
}

var sample = state{
	Bans:  []ban{{Addr: "192.0.2.7", Until: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, {Addr: "2001:db8::1", Until: time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)}},
	Lists: map[string]int{"portscan": 2},
}

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bans.json")
	if err := Save(path, sample); err != nil {
		t.Fatal(err)
	}
	var got state
	if err := Load(path, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sample, got); diff != "" {
		t.Errorf("Load after Save (-want +got):\n%s", diff)
	}
	// Saving again replaces the file and leaves no temporary file behind.
	if err := Save(path, state{}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the state file", len(entries))
	}
}

func TestSaveEnvelopeAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode = %v, want 0600 (a replaced 0644 file must not keep its mode)", perm)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), `{"version":1,"saved_at":"`) || !strings.HasSuffix(string(b), `"data":{"a":1}}`+"\n") {
		t.Errorf("file = %s, want the versioned envelope", b)
	}
}

func TestLoadMissingIsEmpty(t *testing.T) {
	got := state{Lists: map[string]int{"kept": 1}}
	if err := Load(filepath.Join(t.TempDir(), "none.json"), &got); err != nil {
		t.Fatalf("Load of a missing file = %v, want nil", err)
	}
	if got.Lists["kept"] != 1 || got.Bans != nil {
		t.Errorf("Load of a missing file changed the value: %+v", got)
	}
}

func TestLoadBadFilesMovedAside(t *testing.T) {
	valid := func(t *testing.T) []byte {
		path := filepath.Join(t.TempDir(), "v.json")
		if err := Save(path, sample); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		return b
	}(t)
	tests := []struct {
		name    string
		content []byte
		want    error
	}{
		{"truncated mid-file", valid[:len(valid)/2], ErrCorrupt},
		{"truncated to nothing", nil, ErrCorrupt},
		{"garbage", []byte("\x00\x13\xffnot json at all"), ErrCorrupt},
		{"json but no envelope", []byte(`{"bans":[]}`), ErrCorrupt},
		{"data of the wrong shape", []byte(`{"version":1,"saved_at":"2026-01-01T00:00:00Z","data":[1,2]}`), ErrCorrupt},
		{"future version", []byte(`{"version":2,"saved_at":"2026-01-01T00:00:00Z","data":{}}`), ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "bans.json")
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			var got state
			err := Load(path, &got)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Load = %v, want an error wrapping %v", err, tt.want)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("bad file still at %s (stat: %v), want it moved aside", path, err)
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("moved-aside files = %v, want one", aside)
			}
			if b, _ := os.ReadFile(aside[0]); string(b) != string(tt.content) {
				t.Errorf("moved-aside content = %q, want the original %q", b, tt.content)
			}
			if !strings.Contains(err.Error(), aside[0]) {
				t.Errorf("error %q does not say where the file went (%s)", err, aside[0])
			}
			// The next start finds no file: empty state, no error.
			if err := Load(path, &got); err != nil {
				t.Errorf("Load after moving aside = %v, want nil", err)
			}
		})
	}
}

func TestSaveMissingDirectory(t *testing.T) {
	err := Save(filepath.Join(t.TempDir(), "nope", "bans.json"), sample)
	if err == nil || !strings.Contains(err.Error(), "store: save") {
		t.Fatalf("Save into a missing directory = %v, want an error naming the operation", err)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"version":1,"saved_at":"2026-01-01T00:00:00Z","data":{"bans":[{"addr":"192.0.2.1"}]}}`))
	f.Add([]byte(`{"version":1,"data":null}`))
	f.Add([]byte(`{"version":`))
	f.Add([]byte("\xff\xfe"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(dir, "fz.json")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		var got state
		err := Load(path, &got)
		_, statErr := os.Stat(path)
		switch {
		case err == nil && statErr != nil:
			t.Fatalf("Load succeeded but the file is gone: %v", statErr)
		case err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion):
			t.Fatalf("Load = %v, want nil, ErrCorrupt or ErrVersion", err)
		case err != nil && statErr == nil:
			t.Fatalf("Load = %v but the file was not moved aside", err)
		}
		aside, _ := filepath.Glob(path + ".corrupt-*")
		for _, a := range aside {
			os.Remove(a)
		}
	})
}

// TestEnvelopeAsMarshal: the envelope Save writes is byte for byte what
// json.Marshal writes for it.
func TestEnvelopeAsMarshal(t *testing.T) {
	at := time.Date(2026, 12, 5, 8, 0, 0, 123456789, time.UTC)
	for _, v := range []any{state{Bans: []ban{{Addr: `a "quoted" <address> & more`, Until: at}}, Lists: map[string]int{"x": 1}}, nil, []int{}} {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(envelope{Version: Version, SavedAt: at, Data: json.RawMessage(data)})
		if err != nil {
			t.Fatal(err)
		}
		head, tail, err := envelopeAround(at)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(head) + string(data) + string(tail); got != string(want)+"\n" {
			t.Errorf("envelope of %s:\n got %s\nwant %s", data, got, want)
		}
	}
}

// BenchmarkSave saves 100,000 bans, a fleet gateway's table after a
// start's load.
func BenchmarkSave(b *testing.B) {
	st := state{}
	until := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 100_000 {
		st.Bans = append(st.Bans, ban{Addr: "10.1." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255), Until: until})
	}
	path := filepath.Join(b.TempDir(), "state.json")
	// "marshal": json.Marshal of the whole state; "pieces": the bans
	// written in pieces (a JSONWriter, as the daemon's state is).
	for name, v := range map[string]any{"marshal": &st, "pieces": &streamed{st}} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := Save(path, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// streamed is a state that writes its bans in pieces.
type streamed struct{ state }

func (s *streamed) WriteJSON(w io.Writer) error {
	rest := struct {
		Lists map[string]int `json:"lists"`
	}{s.Lists}
	return WriteWithArray(w, &rest, "bans", s.Bans)
}

// TestWriteWithArray: a state written in pieces loads as the same state,
// with no items, fewer than a piece, and several pieces and a part.
func TestWriteWithArray(t *testing.T) {
	until := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, n := range []int{0, 1, arrayChunk, 2*arrayChunk + 7} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			want := state{Lists: map[string]int{"portscan": n}}
			for i := range n {
				want.Bans = append(want.Bans, ban{Addr: "10.2.0." + strconv.Itoa(i), Until: until.Add(time.Duration(i))})
			}
			path := filepath.Join(t.TempDir(), "state.json")
			if err := Save(path, &streamed{want}); err != nil {
				t.Fatal(err)
			}
			var got state
			if err := Load(path, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("loaded state (-want +got):\n%s", diff)
			}
			data, _ := os.ReadFile(path)
			if !json.Valid(data) {
				t.Errorf("not JSON: %.200s", data)
			}
		})
	}
	// An empty object gets the field without a comma.
	var b strings.Builder
	if err := WriteWithArray(&b, struct{}{}, "bans", []int{1, 2}); err != nil || b.String() != `{"bans":[1,2]}` {
		t.Errorf(`WriteWithArray of {} = %q, %v; want {"bans":[1,2]}`, b.String(), err)
	}
}

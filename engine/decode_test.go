package engine

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var updateDecodeSeeds = flag.Bool("update-decode-seeds", false, "rewrite the FuzzDecode seed corpus under testdata/ from the fixtures")

func TestDecode(t *testing.T) {
	d := NewDecoder()
	for _, tt := range decodeFixtures() {
		t.Run(tt.name, func(t *testing.T) {
			var got Parsed
			d.Decode(tt.b, &got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decode(% x) mismatch (-want +got):\n%s", tt.b, diff)
			}
		})
	}
}

// TestDecodeResets checks that nothing of the previous packet survives:
// Decode starts from the zero Parsed, the caller fields included.
func TestDecodeResets(t *testing.T) {
	d := NewDecoder()
	fx := decodeFixtures()
	for _, prev := range fx {
		for _, tt := range fx {
			var got Parsed
			d.Decode(prev.b, &got)
			got.Hook, got.InIface, got.OutIface, got.Mark = 2, "eth0", "eth1", 7
			d.Decode(tt.b, &got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("Decode of %s after %s (-want +got):\n%s", tt.name, prev.name, diff)
			}
		}
	}
}

// TestDecodeAllocs proves the packet path's promise: no fixture of any
// protocol or family, malformed ones included, allocates.
func TestDecodeAllocs(t *testing.T) {
	d := NewDecoder()
	var p Parsed
	for _, tt := range decodeFixtures() {
		if n := testing.AllocsPerRun(100, func() { d.Decode(tt.b, &p) }); n != 0 {
			t.Errorf("Decode(%s) allocates %v times per packet, want 0", tt.name, n)
		}
	}
}

// TestDecodeSeedsAllocs runs the fuzz corpus (seeds and inputs the fuzzer
// kept) through the allocation check too: the layers' pre-checks must catch
// every input gopacket would build an error for.
func TestDecodeSeedsAllocs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecode", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no FuzzDecode corpus: run go test -run TestDecodeFuzzSeeds -update-decode-seeds ./engine/")
	}
	d := NewDecoder()
	var p Parsed
	for _, f := range files {
		b, err := readDecodeSeed(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(20, func() { d.Decode(b, &p) }); n != 0 {
			t.Errorf("Decode(%s) allocates %v times per packet, want 0", f, n)
		}
	}
}

// TestDecodeFuzzSeeds keeps the seed corpus in step with the fixtures
// (-update-decode-seeds rewrites it).
func TestDecodeFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for _, tt := range decodeFixtures() {
		path := filepath.Join(dir, decodeSeedName(tt.name))
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", tt.b)
		if *updateDecodeSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("seed of %s: %v (run with -update-decode-seeds)", tt.name, err)
			continue
		}
		if string(got) != want {
			t.Errorf("seed %s is stale (run with -update-decode-seeds)", path)
		}
	}
}

func decodeSeedName(fixture string) string { return "fixture-" + strings.ReplaceAll(fixture, "/", "-") }

// readDecodeSeed reads a corpus file of one []byte value, as go test writes them.
func readDecodeSeed(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.SplitN(strings.TrimSpace(string(raw)), "\n", 2)
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("%s: not a fuzz corpus file", path)
	}
	v := strings.TrimSpace(lines[1])
	if !strings.HasPrefix(v, "[]byte(") || !strings.HasSuffix(v, ")") {
		return nil, fmt.Errorf("%s: not a []byte value", path)
	}
	var s string
	if _, err := fmt.Sscanf(v[len("[]byte("):len(v)-1], "%q", &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return []byte(s), nil
}

func BenchmarkDecode(b *testing.B) {
	d := NewDecoder()
	var p Parsed
	for _, tt := range decodeFixtures() {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tt.b)))
			for b.Loop() {
				d.Decode(tt.b, &p)
			}
		})
	}
}

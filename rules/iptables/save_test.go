package iptables

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/rules"
)

// readSaved reads an iptables-save fixture. saved-gateway.txt is
// iptables-legacy-save after the nat-gateway ruleset was installed into a
// namespace that already held an operator's rules (an INPUT rule with an
// escaped quote in its comment, a DOCKER-USER chain, a docker masquerade
// and a mangle mark).
func readSaved(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRemovalGolden(t *testing.T) {
	got, err := Removal(readSaved(t, "saved-gateway.txt"))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "removal-gateway", got)
}

func TestReinstallGolden(t *testing.T) {
	c := base()
	c.IPv6 = false
	c.Input.Rules = []rules.Rule{tcp("ssh", 22)}
	got, err := Reinstall(readSaved(t, "saved-gateway.txt"), c, rules.FamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "reinstall-gateway", got)
}

func TestRemoval(t *testing.T) {
	tests := []struct {
		name  string
		saved string
		want  string
		err   error
	}{
		{name: "empty", saved: "", want: ""},
		{
			name:  "nothing of ours",
			saved: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n",
			want:  "",
		},
		{
			name: "stale jump saved twice after a crash",
			saved: "*filter\n:INPUT DROP [0:0]\n:NFQFW-INPUT - [0:0]\n" +
				"-A INPUT -j NFQFW-INPUT\n-A INPUT -j NFQFW-INPUT\n-A NFQFW-INPUT -j NFQFW-REJECT\n:NFQFW-REJECT - [0:0]\nCOMMIT\n",
			want: "*filter\n-D INPUT -j NFQFW-INPUT\n-D INPUT -j NFQFW-INPUT\n-F NFQFW-INPUT\n-F NFQFW-REJECT\n-X NFQFW-INPUT\n-X NFQFW-REJECT\nCOMMIT\n",
		},
		{
			name:  "goto and quoted comments",
			saved: "*raw\n:NFQFW-RPF - [0:0]\n-A PREROUTING -m comment --comment \"a \\\"-j NFQFW-X\\\" b\" -g NFQFW-RPF\nCOMMIT\n",
			want:  "*raw\n-D PREROUTING -m comment --comment \"a \\\"-j NFQFW-X\\\" b\" -g NFQFW-RPF\n-F NFQFW-RPF\n-X NFQFW-RPF\nCOMMIT\n",
		},
		{
			name:  "a comment naming our chain is not a jump",
			saved: "*filter\n-A INPUT -m comment --comment \"-j NFQFW-INPUT\" -j ACCEPT\nCOMMIT\n",
			want:  "",
		},
		{name: "rule outside a table", saved: "-A INPUT -j NFQFW-INPUT\n", err: ErrSave},
		{name: "missing COMMIT", saved: "*filter\n:NFQFW-INPUT - [0:0]\n", err: ErrSave},
		{name: "unterminated quote", saved: "*filter\n-A INPUT -m comment --comment \"x -j NFQFW-INPUT\nCOMMIT\n", err: ErrSave},
		{name: "unknown line", saved: "*filter\n-I INPUT 1 -j NFQFW-INPUT\nCOMMIT\n", err: ErrSave},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Removal(tt.saved)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Removal error = %v, want %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Removal mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// asSaved turns generated restore input into what iptables-save prints
// after it was applied to empty tables: hooks become -A in the built-in
// chains.
func asSaved(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "-I ") {
			f := strings.Fields(l)
			l = "-A " + f[1] + " " + strings.Join(f[3:], " ")
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// TestRemovalUndoesGenerate checks that for every golden setup the removal
// computed from the installed ruleset deletes each hook and each chain.
func TestRemovalUndoesGenerate(t *testing.T) {
	for _, tt := range goldenCases {
		for _, fam := range []rules.Family{rules.FamilyIPv4, rules.FamilyIPv6} {
			gen, err := Generate(tt.cfg(), fam)
			if err != nil {
				t.Fatal(err)
			}
			rm, err := Removal(asSaved(gen))
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			var hooks, chains, dels, xs int
			for _, l := range strings.Split(gen, "\n") {
				hooks += b2i(strings.HasPrefix(l, "-I "))
				chains += b2i(strings.HasPrefix(l, ":"))
			}
			for _, l := range strings.Split(rm, "\n") {
				dels += b2i(strings.HasPrefix(l, "-D "))
				xs += b2i(strings.HasPrefix(l, "-X "))
			}
			if dels != hooks || xs != chains {
				t.Errorf("%s/%v: removal deletes %d jumps and %d chains, installed %d and %d:\n%s", tt.name, fam, dels, xs, hooks, chains, rm)
			}
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzRemoval feeds arbitrary text to the iptables-save parser: it must not
// panic, and what it deletes must be rules that the input held.
func FuzzRemoval(f *testing.F) {
	f.Add(readSaved(f, "saved-gateway.txt"))
	f.Add("*filter\n:NFQFW-INPUT - [0:0]\n-A INPUT -j NFQFW-INPUT\nCOMMIT\n")
	f.Add("*raw\n-A X -m comment --comment \"\\\"\" -g NFQFW-Y\nCOMMIT\n")
	f.Add("*nat\n-A\nCOMMIT\n")
	f.Fuzz(func(t *testing.T, saved string) {
		out, err := Removal(saved)
		if err != nil {
			if !errors.Is(err, ErrSave) {
				t.Fatalf("error %v is not ErrSave", err)
			}
			return
		}
		for _, l := range strings.Split(out, "\n") {
			if rest, ok := strings.CutPrefix(l, "-D "); ok && !strings.Contains(saved, "-A "+rest) {
				t.Errorf("deletes %q, which the input does not hold", l)
			}
		}
	})
}

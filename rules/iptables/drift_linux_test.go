package iptables

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/rules"
)

// TestCheckReinstall installs a gateway ruleset, lets "another tool" damage
// it the ways firewall managers do, and checks that Check names the damage
// and Reinstall repairs it.
func TestCheckReinstall(t *testing.T) {
	eachBackend(t, func(t *testing.T, ns []string, b Backend) {
		createBanSets(t, ns, families...)
		c := gateway()
		in := NewInstaller(c, b)
		if d, err := in.Check(ctx(t)); err != nil || len(d) != 0 {
			t.Fatalf("Check before Install = %q, %v; want nothing", d, err)
		}
		if err := in.Install(ctx(t)); err != nil {
			t.Fatalf("Install: %v", err)
		}
		if d, err := in.Check(ctx(t)); err != nil || len(d) != 0 {
			t.Fatalf("Check after Install = %q, %v; want nothing", d, err)
		}
		for _, tc := range []struct {
			name   string
			damage [][]string // commands, v4 tools; the ipv6 one is derived
			want   string     // part of Check's description
		}{
			{"flush", [][]string{{"iptables", "-F"}}, "filter chain NFQFW-INPUT: 0 rules"},
			{"flush and delete", [][]string{{"iptables", "-F"}, {"iptables", "-X"}}, "filter chain NFQFW-INPUT missing"},
			{"jump deleted", [][]string{{"iptables", "-D", "INPUT", "-j", ChainInput}}, "filter jump INPUT -> NFQFW-INPUT missing"},
			{"nat flushed", [][]string{{"iptables", "-t", "nat", "-F"}, {"iptables", "-t", "nat", "-X"}}, "nat chain NFQFW-PREROUTING missing"},
			{"restore without noflush", [][]string{{"iptables-restore"}}, "filter chain NFQFW-INPUT missing"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, cmd := range tc.damage {
					bin := strings.TrimSuffix(b.Save4, "-save")
					stdin := ""
					if cmd[0] == "iptables-restore" {
						bin = b.Restore4
						stdin = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
					}
					inNetns(t, ns, stdin, append([]string{bin}, cmd[1:]...)...)
				}
				d, err := in.Check(ctx(t))
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if !strings.Contains(d[rules.FamilyIPv4], tc.want) {
					t.Errorf("Check = %q, want its ipv4 entry to say %q", d, tc.want)
				}
				if _, ok := d[rules.FamilyIPv6]; ok {
					t.Errorf("Check = %q: ipv6 was not touched", d)
				}
				if err := in.Reinstall(ctx(t), rules.FamilyIPv4); err != nil {
					t.Fatalf("Reinstall: %v", err)
				}
				if d, err := in.Check(ctx(t)); err != nil || len(d) != 0 {
					t.Errorf("Check after Reinstall = %q, %v; want nothing", d, err)
				}
				for _, fam := range families {
					if diff := cmp.Diff(expected(t, c, fam), ourRules(t, ns, b, fam)); diff != "" {
						t.Errorf("%s rules after Reinstall (-want +got):\n%s", famName(fam), diff)
					}
				}
			})
		}
		if err := in.Remove(ctx(t)); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if d, err := in.Check(ctx(t)); err != nil || len(d) != 0 {
			t.Errorf("Check after Remove = %q, %v; want nothing", d, err)
		}
	})
}

// TestCheckReadsOnlyAfterChange: with the nft backend a Check at an
// unchanged nf_tables generation reads nothing, any committed change makes
// the next one read (and name the damage), and so does nfqfw's own
// reinstall; the legacy backend reads every time.
func TestCheckReadsOnlyAfterChange(t *testing.T) {
	eachBackend(t, func(t *testing.T, ns []string, b Backend) {
		createBanSets(t, ns, families...)
		in := NewInstaller(gateway(), b)
		if err := in.Install(ctx(t)); err != nil {
			t.Fatalf("Install: %v", err)
		}
		check := func(wantDrift bool) int {
			t.Helper()
			before := in.saves
			d, err := in.Check(ctx(t))
			if err != nil || (len(d) != 0) != wantDrift {
				t.Fatalf("Check = %q, %v; want drift %v", d, err, wantDrift)
			}
			return in.saves - before
		}
		check(false)
		quiet := check(false) + check(false)
		unrelated := func() int {
			// Another tool's change that leaves nfqfw's ruleset alone.
			inNetns(t, ns, "", strings.TrimSuffix(b.Save4, "-save"), "-t", "mangle", "-A", "PREROUTING", "-j", "ACCEPT")
			return check(false)
		}()
		inNetns(t, ns, "", strings.TrimSuffix(b.Save4, "-save"), "-F", ChainInput)
		damaged := check(true)
		if err := in.Reinstall(ctx(t)); err != nil {
			t.Fatalf("Reinstall: %v", err)
		}
		repaired := check(false)
		want := [4]int{0, 1, 1, 1}
		if b.Kind == rules.BackendLegacy {
			want[0] = 2
		}
		if got := [4]int{quiet, unrelated, damaged, repaired}; got != want {
			t.Errorf("saves by Check when quiet, after another table changed, after damage, after the repair = %v, want %v", got, want)
		}
	})
}

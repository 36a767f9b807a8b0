package iptables

import (
	"strings"
	"testing"

	"github.com/nfqfw/nfqfw/rules"
)

// savedForm turns Generate's restore input into what iptables-save prints
// after it is installed: hooks appear as -A rules of the built-in chains.
func savedForm(t *testing.T, c *rules.Config, fam rules.Family) string {
	t.Helper()
	text, err := Generate(c, fam)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "-I ") {
			f := strings.Fields(l) // -I INPUT 1 -j NFQFW-INPUT
			l = "-A " + f[1] + " -j " + f[4]
		}
		if strings.HasPrefix(l, "*") {
			out = append(out, l, ":INPUT ACCEPT [0:0]", "-A INPUT -p tcp --dport 9 -j DROP")
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func TestDrift(t *testing.T) {
	c := gateway()
	intact := savedForm(t, c, rules.FamilyIPv4)
	for _, tc := range []struct {
		name  string
		saved string
		c     *rules.Config
		want  string
	}{
		{"in place, other tools' rules ignored", intact, c, ""},
		{"nothing installed, nothing expected", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", nil, ""},
		{"tables flushed and chains deleted", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", c, "filter chain NFQFW-INPUT missing"},
		{"a chain flushed", strings.ReplaceAll(intact, "-A NFQFW-OUTPUT ", "# "), c, "filter chain NFQFW-OUTPUT: 0 rules, 5 installed"},
		{"a jump deleted", strings.Replace(intact, "-A FORWARD -j NFQFW-FORWARD", "", 1), c, "filter jump FORWARD -> NFQFW-FORWARD missing"},
		{"a jump doubled", strings.Replace(intact, "-A FORWARD -j NFQFW-FORWARD", "-A FORWARD -j NFQFW-FORWARD\n-A FORWARD -j NFQFW-FORWARD", 1), c,
			"filter jump FORWARD -> NFQFW-FORWARD: 2 rules, 1 installed"},
		{"a stale chain", intact, nil, "filter chain NFQFW-INPUT not installed by nfqfw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Drift(tc.saved, tc.c, rules.FamilyIPv4)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("Drift = %q, want %q", got, tc.want)
			}
		})
	}
}

package iptables

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nfqfw/nfqfw/rules"
)

// shape is what Drift compares: per table, the rule count of every nfqfw
// chain and the number of jumps from other chains into each of them. It
// ignores how iptables-save spells a rule (it normalises addresses, match
// order and quoting), so comparing shapes is cheap and never reports a
// ruleset that is in place as changed.
type shape map[string]int

// chainKey and jumpKey name the entries of a shape.
func chainKey(table, chain string) string   { return table + " chain " + chain }
func jumpKey(table, from, to string) string { return table + " jump " + from + " -> " + to }

// generatedShape is the shape the ruleset r puts in the kernel.
func generatedShape(r *ruleset) shape {
	s := shape{}
	for _, t := range r.tables {
		for _, c := range t.chains {
			s[chainKey(t.name, c)] += 0
		}
		for _, l := range t.rules {
			if f := strings.Fields(l); len(f) > 1 {
				s[chainKey(t.name, f[1])]++
			}
		}
		for _, l := range t.hooks {
			// "-I BUILTIN 1 -j CHAIN"
			if f := strings.Fields(l); len(f) == 5 {
				s[jumpKey(t.name, f[1], f[4])]++
			}
		}
	}
	return s
}

// savedShape is the shape of nfqfw's chains in saved, iptables-save output.
func savedShape(saved string) (shape, error) {
	s := shape{}
	err := walkSaved(saved, savedVisitor{
		chain: func(table, name string) { s[chainKey(table, name)] += 0 },
		rule: func(table string, fields []string, _ string) {
			if strings.HasPrefix(fields[1], ChainPrefix) {
				s[chainKey(table, fields[1])]++
			} else if jumpsToOurs(fields) {
				s[jumpKey(table, fields[1], jumpTarget(fields))]++
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// jumpTarget returns the chain a rule jumps or goes to.
func jumpTarget(fields []string) string {
	for i := 0; i+1 < len(fields); i++ {
		switch fields[i] {
		case "-j", "--jump", "-g", "--goto":
			return fields[i+1]
		}
	}
	return ""
}

// Drift compares saved, the output of iptables-save (all tables) for
// family fam, with the ruleset Generate returns for c, and describes what
// differs: a chain or jump missing, a chain holding another number of rules
// than installed (flushed, or edited by another tool), a jump or chain of
// nfqfw's that c does not have. It returns "" when nfqfw's ruleset is in
// place. Other tools' rules are ignored.
func Drift(saved string, c *rules.Config, fam rules.Family) (string, error) {
	want := shape{}
	if c != nil {
		r, err := generate(c, fam)
		if err != nil {
			return "", err
		}
		want = generatedShape(r)
	}
	got, err := savedShape(saved)
	if err != nil {
		return "", err
	}
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, k+" missing")
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%s: %d rules, %d installed", k, g, w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, k+" not installed by nfqfw")
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; "), nil
}

package iptables

import (
	"fmt"
	"strings"
)

// savedVisitor receives the lines of iptables-save output that matter to
// nfqfw, in order; a nil field skips its lines.
type savedVisitor struct {
	table  func(name string)                                // "*filter": a table opens
	commit func()                                           // "COMMIT": the open table ends
	chain  func(table, name string)                         // ":NFQFW-...": one of nfqfw's chains is declared
	rule   func(table string, fields []string, line string) // "-A CHAIN ...": a rule split into words (fields[1] is its chain)
}

// walkSaved reads saved, iptables-save output, checks its structure (rules
// inside a table, each table closed by COMMIT) and calls v for its lines.
func walkSaved(saved string, v savedVisitor) error {
	table := ""
	for n, line := range strings.Split(saved, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			if table != "" {
				return fmt.Errorf("parse saved rules: line %d: table %q opened inside %q: %w", n+1, line[1:], table, ErrSave)
			}
			table = line[1:]
			if table == "" || strings.ContainsAny(table, " \t") {
				return fmt.Errorf("parse saved rules: line %d: bad table %q: %w", n+1, line, ErrSave)
			}
			if v.table != nil {
				v.table(table)
			}
		case table == "":
			return fmt.Errorf("parse saved rules: line %d: %q outside a table: %w", n+1, line, ErrSave)
		case line == "COMMIT":
			if v.commit != nil {
				v.commit()
			}
			table = ""
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if strings.HasPrefix(name, ChainPrefix) && v.chain != nil {
				v.chain(table, name)
			}
		case strings.HasPrefix(line, "-A "):
			fields, err := split(line)
			if err != nil {
				return fmt.Errorf("parse saved rules: line %d: %w", n+1, err)
			}
			if len(fields) < 2 {
				return fmt.Errorf("parse saved rules: line %d: rule without chain: %w", n+1, ErrSave)
			}
			if v.rule != nil {
				v.rule(table, fields, line)
			}
		default:
			return fmt.Errorf("parse saved rules: line %d: unexpected %q: %w", n+1, line, ErrSave)
		}
	}
	if table != "" {
		return fmt.Errorf("parse saved rules: table %q has no COMMIT: %w", table, ErrSave)
	}
	return nil
}

// removal parses iptables-save output and returns, per table, the lines
// that remove nfqfw from it: -D for every rule of another chain that jumps
// (-j) or goes (-g) to an nfqfw chain, then -F and -X for every nfqfw chain.
// The -D lines repeat the saved rule verbatim, so iptables-restore deletes
// exactly that rule; a jump saved twice (a crash between two installs) is
// deleted twice.
func removal(saved string) (*ruleset, error) {
	r := &ruleset{}
	var cur *table
	var ours []string
	err := walkSaved(saved, savedVisitor{
		table: func(name string) { cur = r.table(name) },
		commit: func() {
			for _, c := range ours {
				cur.removal = append(cur.removal, "-F "+c)
			}
			for _, c := range ours {
				cur.removal = append(cur.removal, "-X "+c)
			}
			ours = nil
		},
		chain: func(_, name string) { ours = append(ours, name) },
		rule: func(_ string, fields []string, line string) {
			if !strings.HasPrefix(fields[1], ChainPrefix) && jumpsToOurs(fields) {
				cur.removal = append(cur.removal, "-D "+line[len("-A "):])
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// jumpsToOurs reports whether a rule's target is an nfqfw chain.
func jumpsToOurs(fields []string) bool {
	return strings.HasPrefix(jumpTarget(fields), ChainPrefix)
}

// split splits a saved rule into words as iptables-restore does: blanks
// separate, double quotes group, a backslash escapes the next character
// inside quotes.
func split(line string) ([]string, error) {
	var out []string
	var w strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quoted && ch == '\\' && i+1 < len(line):
			i++
			w.WriteByte(line[i])
		case ch == '"':
			quoted = !quoted
			inWord = true
		case !quoted && (ch == ' ' || ch == '\t'):
			if inWord {
				out = append(out, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(ch)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote: %w", ErrSave)
	}
	if inWord {
		out = append(out, w.String())
	}
	return out, nil
}

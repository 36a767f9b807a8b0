package iptables

import (
	"fmt"
	"strings"
)

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
	flush := func() {
		for _, c := range ours {
			cur.removal = append(cur.removal, "-F "+c)
		}
		for _, c := range ours {
			cur.removal = append(cur.removal, "-X "+c)
		}
		ours = nil
	}
	for n, line := range strings.Split(saved, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			if cur != nil {
				return nil, fmt.Errorf("parse saved rules: line %d: table %q opened inside %q: %w", n+1, line[1:], cur.name, ErrSave)
			}
			name := line[1:]
			if name == "" || strings.ContainsAny(name, " \t") {
				return nil, fmt.Errorf("parse saved rules: line %d: bad table %q: %w", n+1, line, ErrSave)
			}
			cur = r.table(name)
		case cur == nil:
			return nil, fmt.Errorf("parse saved rules: line %d: %q outside a table: %w", n+1, line, ErrSave)
		case line == "COMMIT":
			flush()
			cur = nil
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if strings.HasPrefix(name, ChainPrefix) {
				ours = append(ours, name)
			}
		case strings.HasPrefix(line, "-A "):
			fields, err := split(line)
			if err != nil {
				return nil, fmt.Errorf("parse saved rules: line %d: %w", n+1, err)
			}
			if len(fields) < 2 {
				return nil, fmt.Errorf("parse saved rules: line %d: rule without chain: %w", n+1, ErrSave)
			}
			if !strings.HasPrefix(fields[1], ChainPrefix) && jumpsToOurs(fields) {
				cur.removal = append(cur.removal, "-D "+line[len("-A "):])
			}
		default:
			return nil, fmt.Errorf("parse saved rules: line %d: unexpected %q: %w", n+1, line, ErrSave)
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("parse saved rules: table %q has no COMMIT: %w", cur.name, ErrSave)
	}
	return r, nil
}

// jumpsToOurs reports whether a rule's target is an nfqfw chain.
func jumpsToOurs(fields []string) bool {
	for i := 0; i+1 < len(fields); i++ {
		switch fields[i] {
		case "-j", "--jump", "-g", "--goto":
			return strings.HasPrefix(fields[i+1], ChainPrefix)
		}
	}
	return false
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

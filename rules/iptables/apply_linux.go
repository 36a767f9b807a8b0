package iptables

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/nfqfw/nfqfw/rules"
)

// Install removes whatever nfqfw chains and jumps the tables hold (stale
// ones left by a crash) and installs the Installer's config, in one
// iptables-restore --noflush transaction per family. If a family is refused,
// the families already done are put back as they were, so nothing is left
// half-installed; the error is a *RestoreError.
//
// The ban sets (BanSet) must exist first.
func (in *Installer) Install(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.swap(ctx, in.next, nil); err != nil {
		return fmt.Errorf("install kernel rules: %w", err)
	}
	in.cur = in.next
	return nil
}

// Replace swaps the installed ruleset for the one of c, atomically per
// table: each family's old chains are removed and the new ones installed in
// one iptables-restore transaction. If c is refused, the previous ruleset
// stays (or is put back) in force and the error says why.
func (in *Installer) Replace(ctx context.Context, c *rules.Config) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.swap(ctx, c, in.cur); err != nil {
		return fmt.Errorf("replace kernel rules: %w", err)
	}
	in.cur, in.next = c, c
	return nil
}

// Remove deletes nfqfw's jump rules and chains from every table (filter,
// nat and any other) of both families, atomically per table, leaving the
// rest of the tables as they were before Install. Everything named NFQFW-*
// is nfqfw's: Remove also deletes such chains it did not install. A table
// that did not exist before Install is left empty (iptables-nft keeps the
// built-in chains it created, with policy ACCEPT, as a kernel would have
// them).
func (in *Installer) Remove(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.swap(ctx, nil, in.cur); err != nil {
		return fmt.Errorf("remove kernel rules: %w", err)
	}
	in.cur = nil
	return nil
}

// swap makes each family hold c's ruleset (nothing when c is nil). When a
// family fails, the families already swapped are swapped back to prev.
func (in *Installer) swap(ctx context.Context, c, prev *rules.Config) error {
	for i, fam := range families {
		err := in.apply(ctx, fam, c)
		if err == nil {
			continue
		}
		var rollback []error
		for _, done := range families[:i+1] {
			if rerr := in.apply(ctx, done, prev); rerr != nil {
				rollback = append(rollback, fmt.Errorf("roll back %s: %w", famName(done), rerr))
			}
		}
		return errors.Join(append([]error{fmt.Errorf("%s: %w", famName(fam), err)}, rollback...)...)
	}
	return nil
}

// apply makes family fam hold c's ruleset, in one restore transaction built
// from the current iptables-save output. It runs no restore when there is
// nothing to do.
func (in *Installer) apply(ctx context.Context, fam rules.Family, c *rules.Config) error {
	in.valid = false
	if c != nil && fam == rules.FamilyIPv6 && !c.IPv6 {
		c = nil // only remove what an earlier config installed
	}
	saved, err := run(ctx, in.b.prefix, "", in.b.save(fam))
	if err != nil {
		return fmt.Errorf("read tables: %w", err)
	}
	text, err := Reinstall(saved, c, fam)
	if err != nil {
		return err
	}
	if text == "" {
		return nil
	}
	bin := in.b.restore(fam)
	if _, err := run(ctx, in.b.prefix, text, bin, "--noflush", "--wait"); err != nil {
		return restoreError(filepath.Base(bin), text, err)
	}
	return nil
}

// lineRe finds the input line iptables-restore blames: "line 4 failed",
// "Error occurred at line: 4", "line 3: RULE_APPEND failed".
var lineRe = regexp.MustCompile(`line:? (\d+)`)

// restoreError builds a *RestoreError from a failed restore of input.
func restoreError(bin, input string, err error) error {
	re := &RestoreError{Command: bin, Err: err}
	var ce *cmdError
	if errors.As(err, &ce) {
		re.Stderr, re.Err = tidy(ce.stderr), ce.err
	}
	if m := lineRe.FindStringSubmatch(re.Stderr); m != nil {
		n, _ := strconv.Atoi(m[1])
		lines := strings.Split(input, "\n")
		if n >= 1 && n <= len(lines) {
			re.Line, re.Text = n, lines[n-1]
		}
	}
	return re
}

func famName(fam rules.Family) string { return gen{fam: fam}.famName() }

// tidy joins iptables-restore's message into one line, without the usage
// hint it appends.
func tidy(stderr string) string {
	var keep []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "Try `") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "; ")
}

// Check compares the kernel's tables with the ruleset the Installer put
// there and returns, per family, a description of what another tool
// changed (chains flushed or deleted, jumps removed; see Drift). It returns
// no entry for a family whose ruleset is in place, and nothing at all when
// nothing is installed. It changes nothing.
//
// With the nft backend it first reads nf_tables' generation, which every
// committed change of the namespace's tables moves (one netlink request),
// and returns at once when it has not moved since a Check found the
// ruleset in place; otherwise, and with the legacy backend or when the
// generation cannot be read, it runs one iptables-save per family. A
// gateway whose tables nobody touches is checked without a process.
func (in *Installer) Check(ctx context.Context) (map[rules.Family]string, error) {
	in.mu.Lock()
	cur := in.cur
	gen, genOK := in.generation()
	if cur == nil || (genOK && in.valid && in.checked == gen) {
		in.mu.Unlock()
		return nil, nil
	}
	in.saves++
	in.mu.Unlock()
	drift := map[rules.Family]string{}
	for _, fam := range families {
		c := cur
		if fam == rules.FamilyIPv6 && !c.IPv6 {
			c = nil
		}
		saved, err := run(ctx, in.b.prefix, "", in.b.save(fam))
		if err != nil {
			return nil, fmt.Errorf("check kernel rules: read %s tables: %w", famName(fam), err)
		}
		d, err := Drift(saved, c, fam)
		if err != nil {
			return nil, fmt.Errorf("check kernel rules: %s: %w", famName(fam), err)
		}
		if d != "" {
			drift[fam] = d
		}
	}
	if genOK && len(drift) == 0 {
		in.mu.Lock()
		if in.cur == cur {
			// An apply since the generation was read cleared valid
			// and moved the generation: the next Check reads again.
			in.checked, in.valid = gen, true
		}
		in.mu.Unlock()
	}
	return drift, nil
}

// generation returns nf_tables' generation when Check may rely on it: nft
// backend, in the process's namespace or one whose path is known. Called
// with in.mu held.
func (in *Installer) generation() (uint32, bool) {
	if in.b.Kind != rules.BackendNft || (in.b.prefix != nil && in.b.netns == "") {
		return 0, false
	}
	g, err := in.gen.read()
	return g, err == nil
}

// Reinstall installs the ruleset in force again in the families fams (all
// when empty), removing whatever is left of it first, in one transaction
// per family: the repair after another tool flushed or deleted nfqfw's
// chains. It does nothing when nothing is installed.
func (in *Installer) Reinstall(ctx context.Context, fams ...rules.Family) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cur == nil {
		return nil
	}
	if len(fams) == 0 {
		fams = families
	}
	for _, fam := range fams {
		if err := in.apply(ctx, fam, in.cur); err != nil {
			return fmt.Errorf("reinstall kernel rules: %s: %w", famName(fam), err)
		}
	}
	return nil
}

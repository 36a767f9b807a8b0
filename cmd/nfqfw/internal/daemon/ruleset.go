package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nfqfw/nfqfw/rules"
)

// rulesetCheckEvery is how often the kernel ruleset is compared with what
// nfqfw installed: a flush by another tool is repaired within about this.
const rulesetCheckEvery = 250 * time.Millisecond

// watchRuleset keeps nfqfw's kernel side in place: every
// rulesetCheckEvery it compares the tables with the installed ruleset
// (one iptables-save per family, only when nf_tables' generation moved
// with the nft backend: see iptables.Installer.Check) and, when another
// tool flushed, deleted
// or replaced nfqfw's chains or jumps (iptables -F/-X, an iptables-restore
// without --noflush), recreates the ban sets if they went too and installs
// everything again: logged at warning level, counted by reason, and shown
// by health until repaired. It returns only when a repair fails (the
// supervisor retries with backoff) or ctx ends.
func (d *Daemon) watchRuleset(ctx context.Context) error {
	t := time.NewTicker(rulesetCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := d.checkRuleset(ctx); err != nil {
			return err
		}
	}
}

// checkRuleset runs one comparison and, when needed, one repair.
func (d *Daemon) checkRuleset(ctx context.Context) error {
	drifted, err := d.inst.Check(ctx)
	if err != nil || len(drifted) == 0 {
		return err
	}
	var fams []rules.Family
	var found []string
	for _, f := range []rules.Family{rules.FamilyIPv4, rules.FamilyIPv6} {
		if text, ok := drifted[f]; ok {
			fams = append(fams, f)
			found = append(found, text)
		}
	}
	drift := strings.Join(found, "; ")
	d.health.set(subRuleset, fmt.Errorf("kernel ruleset changed by another tool: %s", drift))
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	start := time.Now()
	setsGone, err := d.currentState().repairKernel()
	if err != nil {
		return fmt.Errorf("recreate ban sets: %w", err)
	}
	if err := d.inst.Reinstall(ctx, fams...); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	reason := reinstallChains
	if setsGone {
		reason = reinstallSets
	}
	d.health.reinstalls.WithLabelValues(reason).Inc()
	d.health.set(subRuleset, nil)
	d.log.Warn("kernel ruleset was changed by another tool: reinstalled", "found", drift, "reason", reason,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

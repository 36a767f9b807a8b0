package daemon

// Removing the ruleset after the daemon exited. Under systemd the unit
// stops the daemon with SIGUSR2, so the daemon always exits leaving its
// ruleset in force, and ExecStopPost decides whether it goes: only when
// the unit is being stopped (a "stop" job), not when it is restarted (a
// "restart" job stays a restart until the stop half, ExecStopPost
// included, is over), nor when the daemon exited on its own (a crash, an
// essential failure, "nfqfw restart": no job at all, systemd restarts it).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/nfqfw/nfqfw/engine/ipset"
	"github.com/nfqfw/nfqfw/rules"
	"github.com/nfqfw/nfqfw/rules/iptables"
)

// jobStop is the systemd job type of an explicit stop ("systemctl stop",
// a conflict with shutdown.target, isolate).
const jobStop = "stop"

// UnitJob returns the type of the job systemd is running for unit
// ("stop", "restart", "start", ...), or "" when it runs none, as
// "systemctl list-jobs" reports it. systemctl is the command to ask.
func UnitJob(ctx context.Context, systemctl, unit string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, systemctl, "list-jobs", "--no-legend", "--no-pager", "--full", unit).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("ask systemd for the jobs of %s: %w", unit, err)
	}
	// Lines: "JOB UNIT TYPE STATE".
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		for i, f := range fs {
			if f == unit && i+1 < len(fs) {
				return fs[i+1], nil
			}
		}
	}
	return "", nil
}

// StopRemoves reports whether the ruleset goes after the daemon of unit
// exited: only when systemd runs a stop job for the unit. A restart job,
// no job (the daemon exited on its own and is restarted), or a question
// systemd did not answer keep it: the host keeps its firewall, NEW flows
// dropped while no daemon listens (queue.bypass: false). The reason says
// why, for the log.
func StopRemoves(job string, err error) (bool, string) {
	switch {
	case err != nil:
		return false, fmt.Sprintf("systemd's job unknown (%v): the ruleset stays", err)
	case job == jobStop:
		return true, "the unit is being stopped"
	case job == "":
		return false, "no stop job (the daemon exited on its own; systemd restarts it): the ruleset stays"
	default:
		return false, fmt.Sprintf("a %s job, not a stop: the ruleset stays for the next start to take over", job)
	}
}

// Remove removes nfqfw's kernel ruleset (every NFQFW-* chain and jump, both
// families) and its ban sets from the network namespace it runs in,
// refusing while a daemon runs there (its instance lock, held while this
// runs so that none starts meanwhile). backend "" is auto: the flavour of
// iptables that holds nfqfw's chains.
func Remove(ctx context.Context, backend rules.Backend) error {
	path, err := netnsLockPath(hostKernel{}.lockDir())
	if err != nil {
		return err
	}
	lock, err := lockFile(path, "this network namespace's ruleset")
	if err != nil {
		return fmt.Errorf("not removing the ruleset of a running daemon: %w", err)
	}
	defer lock.release()
	b, err := iptables.DetectBackend(backend)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// An Installer that installed nothing removes every NFQFW-* chain.
	if err := iptables.NewInstaller(nil, b).Remove(ctx); err != nil {
		return err
	}
	sets, err := ipset.Open()
	if err != nil {
		return fmt.Errorf("ban sets: %w", err)
	}
	defer sets.Close()
	var errs []error
	for _, f := range []rules.Family{rules.FamilyIPv4, rules.FamilyIPv6} {
		name := iptables.BanSet(f)
		ok, err := sets.Exists(name)
		if err == nil && ok {
			err = sets.Destroy(name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("destroy ban set %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

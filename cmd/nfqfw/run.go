package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/nfqfw/nfqfw/cmd/nfqfw/internal/daemon"
	"github.com/nfqfw/nfqfw/engine/nfq"
	"github.com/nfqfw/nfqfw/rules"
)

func init() {
	var (
		config  string
		backend string
		pprof   string
		confirm time.Duration
		wait    time.Duration
		force   bool
	)
	register(&command{
		name:    "run",
		args:    "[-c FILE] [--backend auto|legacy|nft] [--confirm DURATION] [--pprof ADDR] [--wait-interfaces DURATION] [--force]",
		summary: "run the firewall daemon (root)",
		help: `Loads the config, binds the NFQUEUE readers, restores its saved state,
installs nfqfw's own iptables chains (IPv4 and IPv6, atomically, after
removing stale chains a crash may have left), and decides every NEW flow
until SIGINT or SIGTERM, when it removes exactly what it installed. SIGHUP
(or "nfqfw reload") reloads the config; a bad config is refused and the
running one stays. SIGUSR2 (or "nfqfw restart") makes it save its state and
exit with status 75 leaving its ruleset in the kernel, for a restart that
never leaves the host open. An error never removes the ruleset: while no
daemon listens, queue.bypass decides NEW flows (false: dropped).

A second "nfqfw run" in the same network namespace, or on the same state
directory, refuses to start before touching anything.

Every interface the config names must be present (or declared in
interfaces.dynamic): a name that is neither a zone nor an interface of the
host is refused. At boot, before udev has named every interface, give
--wait-interfaces: the start waits that long for the missing ones (the
systemd unit waits 30s).

With --confirm, the start must be confirmed with "nfqfw confirm" within the
duration, or nfqfw stops and removes its ruleset (like iptables-apply).

Before anything is installed, the management connections are explained
against the policy, with the restored state (bans, knock windows), as new
connections (see "nfqfw explain"): this shell's
SSH connection (SSH_CONNECTION) and the established inbound connections
to the host's ssh ports (port 22 and SSH_CONNECTION's). If the policy
would refuse a new connection from such a client to that port, the start
is refused, naming the rule or chain policy that would refuse it, unless
--force. Started without SSH_CONNECTION (by systemd: at boot, or a restart
taking over the ruleset in force) it logs a warning instead, as refusing
would leave the host without its firewall. Still, on a remote host, make sure the config admits your own
management connection (an allowlist, or a rule for SSH) and start it with
--confirm.`,
		setup: func(fs *flag.FlagSet) {
			fs.StringVar(&config, "c", defaultConfig, "config `file`")
			fs.StringVar(&backend, "backend", "", "iptables backend: auto, legacy or nft (default: the config's)")
			fs.StringVar(&pprof, "pprof", "", "serve net/http/pprof on this loopback `address` (e.g. 127.0.0.1:6060)")
			fs.DurationVar(&confirm, "confirm", 0, "stop and remove the ruleset unless \"nfqfw confirm\" follows within this `duration`")
			fs.BoolVar(&force, "force", false, "start even if the policy would refuse a new connection of a management session")
			fs.DurationVar(&wait, "wait-interfaces", 0, "wait up to this `duration` for the interfaces the config names to appear")
		},
		signals:   []os.Signal{syscall.SIGHUP, syscall.SIGUSR2},
		flagsOnly: true,
		run: func(ctx context.Context, _ []string, _ io.Writer) error {
			// Every flag is checked before anything is installed.
			switch rules.Backend(backend) {
			case "", rules.BackendAuto, rules.BackendLegacy, rules.BackendNft:
			default:
				return usagef("--backend %q: want auto, legacy or nft", backend)
			}
			if pprof != "" {
				if err := daemon.CheckPprofAddr(pprof); err != nil {
					return usagef("--pprof %v", err)
				}
			}
			if confirm < 0 {
				return usagef("--confirm %s: want a positive duration", confirm)
			}
			if wait < 0 {
				return usagef("--wait-interfaces %s: want a positive duration", wait)
			}
			if err := nfq.CheckPermission(); err != nil {
				return err
			}
			if wait > 0 {
				waitInterfaces(ctx, config, wait, rules.HostInterfaces, os.Stderr)
			}
			err := daemon.Run(ctx, daemon.Options{
				ConfigPath: config,
				Backend:    rules.Backend(backend),
				Version:    buildVersion(),
				Pprof:      pprof,
				Confirm:    confirm,

				SSHConnection: os.Getenv("SSH_CONNECTION"),
				Force:         force,
				Signals:       signalsFromStart,
			})
			if errors.Is(err, daemon.ErrRestartKeepRules) {
				return exitStatus{code: exitRestart, err: err}
			}
			return err
		},
	})
}

// exitRestart is the exit status of "nfqfw run" after SIGUSR2 or "nfqfw
// restart": the systemd unit restarts on it (RestartForceExitStatus) and
// counts it a success.
const exitRestart = 75

func init() {
	var cf clientFlags
	register(&command{
		name:    "restart",
		args:    "[-s SOCKET | -c FILE]",
		summary: "make the daemon exit keeping its ruleset, for systemd to start it again",
		help: `Asks the running daemon to save its state and exit with status 75, leaving
its kernel ruleset and ban sets in force (as SIGUSR2 does). The systemd unit
starts it again at once (RestartForceExitStatus=75); the new process, the
same or an upgraded binary, replaces the ruleset atomically. The host is
never open meanwhile: while no daemon listens, the kernel drops NEW flows
(queue.bypass: false). The unit stops the daemon this way for
"systemctl restart" too, and removes the ruleset only on "systemctl stop"
(see "nfqfw help remove").`,
		setup: func(fs *flag.FlagSet) { cf.setupSocket(fs) },
		run: func(ctx context.Context, args []string, stdout io.Writer) error {
			if len(args) > 0 {
				return errUsage
			}
			if err := cf.call(ctx, "restart", nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "daemon exiting; its ruleset stays in force until the next start replaces it")
			return nil
		},
	})
}

// waitInterfaces waits up to d, polling present every 200 ms, until every
// interface the config at path names is present. It returns early when the
// config does not load (run reports that) and gives up silently when d
// passes: run then refuses the config naming what is missing.
func waitInterfaces(ctx context.Context, path string, d time.Duration, present func() ([]string, error), log io.Writer) {
	c, err := rules.Load(path)
	if err != nil {
		return
	}
	const poll = 200 * time.Millisecond
	for i := 0; i <= int(d/poll); i++ {
		ifs, err := present()
		if err != nil {
			return
		}
		missing := c.UnknownInterfaces(ifs)
		if len(missing) == 0 {
			return
		}
		if i == 0 {
			fmt.Fprintf(log, "nfqfw run: waiting up to %s for %d absent interfaces; the first: %v\n", d, len(missing), missing[0])
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(poll):
		}
	}
}

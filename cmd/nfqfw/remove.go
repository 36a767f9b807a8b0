package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/nfqfw/nfqfw/cmd/nfqfw/internal/daemon"
	"github.com/nfqfw/nfqfw/rules"
)

func init() {
	var (
		config string
		unit   string
	)
	register(&command{
		name:    "remove",
		args:    "[-c FILE] [--systemd-unit UNIT]",
		summary: "remove the kernel ruleset a stopped daemon left (root)",
		help: `Removes nfqfw's kernel ruleset (every NFQFW-* chain and the jumps to them,
IPv4 and IPv6) and its ban sets from this network namespace. It refuses
while a daemon runs in the namespace. The config gives the iptables backend
(when it does not load, the backend that holds nfqfw's chains is used).

The daemon leaves its ruleset in force whenever it exits on SIGUSR2
("nfqfw restart"), on an error or a crash, so the host is never without its
firewall. The systemd unit stops the daemon with SIGUSR2 and runs, after
every stop, "nfqfw remove --systemd-unit %n": it removes the ruleset only
when systemd runs a stop job for the unit ("systemctl stop", shutdown). A
restart job ("systemctl restart", an upgrade), no job at all (the daemon
exited on its own and systemd restarts it), or a systemctl that does not
answer keep the ruleset, and the next start takes it over atomically.`,
		setup: func(fs *flag.FlagSet) {
			fs.StringVar(&config, "c", defaultConfig, "config `file` (for its iptables backend)")
			fs.StringVar(&unit, "systemd-unit", "", "remove only when systemd is stopping this `unit` (not restarting it)")
		},
		flagsOnly: true,
		run: func(ctx context.Context, _ []string, stdout io.Writer) error {
			if unit != "" {
				systemctl, err := exec.LookPath("systemctl")
				job := ""
				if err == nil {
					job, err = daemon.UnitJob(ctx, systemctl, unit)
				}
				remove, why := daemon.StopRemoves(job, err)
				if !remove {
					fmt.Fprintf(stdout, "%s: kernel ruleset kept: %s\n", unit, why)
					return nil
				}
				fmt.Fprintf(stdout, "%s: %s: removing the kernel ruleset\n", unit, why)
			}
			var backend rules.Backend
			if c, err := rules.Load(config); err == nil {
				backend = c.Backend
			} else {
				fmt.Fprintf(os.Stderr, "nfqfw remove: %v: removing with the backend that holds nfqfw's chains\n", err)
			}
			if err := daemon.Remove(ctx, backend); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "kernel ruleset and ban sets removed")
			return nil
		},
	})
}

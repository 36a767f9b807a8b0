package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
)

func init() {
	var (
		cf      clientFlags
		confirm time.Duration
		force   bool
	)
	register(&command{
		name:    "reload",
		args:    "[-s SOCKET | -c FILE] [--confirm DURATION] [--force]",
		summary: "make the running daemon reload its config",
		help: `Asks the running daemon to read its config file again (as SIGHUP does)
and waits for the result. A config that does not parse, validate or install
is refused with its error; the running policy and kernel rules stay exactly
as they were. Flows, bans, recent lists and knock state are kept.

With --confirm, the new config is rolled back to the previous one unless
"nfqfw confirm" is run within the duration: open a new SSH connection to
prove you are not locked out, then confirm from it.

Before anything changes, the management connections are explained
against the new policy as new connections (see "nfqfw explain"): this
shell's SSH connection (SSH_CONNECTION, sent with the request) and the
established inbound connections to the host's ssh ports (port 22 and
SSH_CONNECTION's). If the new policy would refuse a new connection from
such a client to that port, the reload is refused, naming the rule or
chain policy that would refuse it, unless --force. Sources in the
management allowlist are accepted by the kernel first, so they pass.`,
		setup: func(fs *flag.FlagSet) {
			cf.setupSocket(fs)
			fs.BoolVar(&force, "force", false, "apply a config that would refuse a new connection of a management session")
			fs.DurationVar(&confirm, "confirm", 0, "roll the change back unless \"nfqfw confirm\" follows within this `duration` (like iptables-apply)")
		},
		flagsOnly: true,
		run: func(ctx context.Context, _ []string, stdout io.Writer) error {
			var out map[string]string
			req := control.ReloadRequest{SSHConnection: os.Getenv("SSH_CONNECTION"), Force: force}
			if confirm > 0 {
				req.Confirm = confirm.String()
			}
			if err := cf.call(ctx, "reload", req, &out); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "reloaded (config hash %.12s)\n", out["hash"])
			if confirm > 0 {
				fmt.Fprintf(stdout, "run \"nfqfw confirm\" within %s from a NEW connection, or the previous config comes back\n", confirm)
			}
			return nil
		},
	})
}

func init() {
	var cf clientFlags
	register(&command{
		name:    "confirm",
		args:    "[-s SOCKET | -c FILE]",
		summary: "confirm a change made with --confirm so it is not rolled back",
		help: `Makes the change waiting for confirmation permanent: a reload made with
"nfqfw reload --confirm D", or the start of "nfqfw run --confirm D". Run it
from a NEW connection to the host: that it gets through proves the new
policy does not lock you out. Without it, the previous config comes back
(or, for a start, nfqfw stops and removes its ruleset) when D has passed.
It fails when nothing is waiting for confirmation.`,
		setup:     func(fs *flag.FlagSet) { cf.setupSocket(fs) },
		flagsOnly: true,
		run: func(ctx context.Context, _ []string, stdout io.Writer) error {
			if err := cf.call(ctx, "confirm", nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "confirmed")
			return nil
		},
	})
}

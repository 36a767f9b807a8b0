package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/nfqfw/nfqfw/engine/control"
)

func init() {
	var cf clientFlags
	register(&command{
		name:    "ha",
		args:    "[-s SOCKET | -c FILE] [--json] promote|demote|status",
		summary: "tell the daemon its role in a gateway pair (keepalived's notify hooks)",
		help: `For a pair of gateways run by keepalived, with conntrackd (FTFW) keeping
the kernel's flow tables in step; rules/examples/ha/ has the shipped
configs and hooks.

promote   this gateway takes the virtual addresses: the daemon stops
          following the kernel's new flows and reads the kernel's flow
          table once more, taking the flows its running policy admits
          as admitted (those it has not adopted as backup already),
          exactly as it does at start, so their packets that reach the
          queue (FTP control connections) continue here. Prints what it
          did with them.
demote    this gateway hands the addresses over, or starts as backup.
          Nothing is flushed: flows, bans, knock windows and recent
          lists stay, ready for a failback. The daemon adopts the
          kernel's table once and then each new flow as it appears:
          conntrackd (DisableExternalCache on) injects the primary's.
          Prints what it did with the table.
status    prints the role: primary, backup, or standalone (never told).`,
		setup: func(fs *flag.FlagSet) { cf.setup(fs) },
		run: func(ctx context.Context, args []string, stdout io.Writer) error {
			if len(args) != 1 {
				return usagef("want one action: promote, demote or status")
			}
			switch args[0] {
			case control.HAPromote, control.HADemote, control.HAStatus:
			default:
				return usagef("action %q: want promote, demote or status", args[0])
			}
			var out control.HAResponse
			if err := cf.call(ctx, control.CmdHA, control.HARequest{Action: args[0]}, &out); err != nil {
				return err
			}
			if cf.json {
				return writeJSON(stdout, out)
			}
			fmt.Fprintf(stdout, "role: %s\n", out.Role)
			if args[0] != control.HAStatus {
				fmt.Fprintf(stdout, "kernel flows: %d (admitted %d, already tracked %d, refused by the policy %d, skipped %d)\n",
					out.Flows, out.Admitted, out.Tracked, out.Refused, out.Skipped)
			}
			return nil
		},
	})
}

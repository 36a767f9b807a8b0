package main

import (
	"context"
	"flag"
	"fmt"
	"io"
)

func init() {
	var cf clientFlags
	register(&command{
		name:    "reload",
		args:    "[-s SOCKET | -c FILE]",
		summary: "make the running daemon reload its config",
		help: `Asks the running daemon to read its config file again (as SIGHUP does)
and waits for the result. A config that does not parse, validate or install
is refused with its error; the running policy and kernel rules stay exactly
as they were. Flows, bans, recent lists and knock state are kept.`,
		setup: func(fs *flag.FlagSet) { cf.setup(fs) },
		run: func(ctx context.Context, args []string, stdout io.Writer) error {
			if len(args) > 0 {
				return errUsage
			}
			var out map[string]string
			if err := cf.call(ctx, "reload", nil, &out); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "reloaded (config hash %.12s)\n", out["hash"])
			return nil
		},
	})
}

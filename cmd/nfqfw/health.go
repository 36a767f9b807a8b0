package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
)

// defaultHealthTimeout bounds a health probe. Container runtimes and
// monitoring agents kill slow probes; a daemon that needs longer than this
// to answer "status" is not healthy.
const defaultHealthTimeout = 5 * time.Second

func init() {
	var (
		cf      clientFlags
		timeout time.Duration
	)
	register(&command{
		name:    "health",
		args:    "[-s SOCKET | -c FILE] [--json] [--timeout DURATION]",
		summary: "exit 0 if the daemon answers on its control socket, 1 if not",
		help: `Asks the running daemon for its status over the control socket and exits
0 when it answers and reports nothing wrong, printing one line: version,
PID, uptime, queues, tracked flows and the config in force, and a warning
line when the config file on disk is not the running config (a reload was
refused or rolled back). Exits
1 when the daemon reports a problem (a subsystem failed and is being
retried, the kernel ruleset was changed by another tool and is not yet
repaired), printing one line per problem, and with the reason when it does
not answer: no daemon
listens, the socket is not reachable (not root?), the daemon refused the
request, or it did not answer within --timeout.

It is the health check of the container image (HEALTHCHECK) and suits
monitoring agents and scripts: "nfqfw health && echo up".`,
		setup: func(fs *flag.FlagSet) {
			cf.setup(fs)
			fs.DurationVar(&timeout, "timeout", defaultHealthTimeout, "give up when the daemon has not answered within this `duration`")
		},
		flagsOnly: true,
		run: func(ctx context.Context, _ []string, stdout io.Writer) error {
			if timeout <= 0 {
				return fmt.Errorf("--timeout %s: want a positive duration", timeout)
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			var st control.StatusResponse
			if err := cf.call(ctx, "status", nil, &st); err != nil {
				return healthError(err, timeout)
			}
			if cf.json {
				if err := writeJSON(stdout, st); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(stdout, healthLine(st, time.Now()))
			}
			if len(st.Problems) > 0 {
				return fmt.Errorf("degraded: %s", strings.Join(st.Problems, "; "))
			}
			return nil
		},
	})
}

// healthLine is the line health prints for a daemon that answered: "ok"
// when nothing is wrong, "degraded" followed by one line per problem
// otherwise.
func healthLine(st control.StatusResponse, now time.Time) string {
	up := "?"
	if !st.Started.IsZero() {
		up = now.Sub(st.Started).Truncate(time.Second).String()
	}
	status := "ok"
	if len(st.Problems) > 0 {
		status = "degraded"
	}
	line := fmt.Sprintf("%s: nfqfw %s pid %d up %s, queues %v, %d flows, config %s (hash %.12s)",
		status, st.Version, st.PID, up, st.Queues, st.Flows, st.Config, st.ConfigHash)
	if st.StateSaveError != "" {
		line += "; state save failing: " + st.StateSaveError
	}
	for _, p := range st.Problems {
		line += "\n  " + p
	}
	if st.Fleet != "" {
		line += "\n  fleet: " + st.Fleet
	}
	if st.HARole != "" {
		line += "\n  ha: " + st.HARole
	}
	for _, w := range st.Warnings {
		line += "\n  warning: " + w
	}
	return line
}

// healthError adds what an operator does next to the errors a probe meets.
func healthError(err error, timeout time.Duration) error {
	switch {
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w (the control socket is root only: run as root)", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("daemon did not answer within %s: %w", timeout, err)
	}
	return err
}

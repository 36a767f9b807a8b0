package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/knock"
	"github.com/nfqfw/nfqfw/rules"
)

// clearScreen moves the cursor home and clears the terminal (ANSI).
const clearScreen = "\x1b[H\x1b[2J"

func init() {
	var (
		cf    clientFlags
		watch bool
	)
	register(&command{
		name:    "knock-status",
		args:    "[-s SOCKET | -c FILE] [--json] [--watch]",
		summary: "show knock progress per source, open windows and recent failures",
		help: `Asks the running daemon for its port knocking state: each source's
progress in each sequence (steps taken of the total, and the time left
before it times out), the windows completed sequences have opened (what
they open and for how long), and the 50 most recent failures (wrong_port,
timeout, replay of a one-shot sequence).

With --watch the view refreshes every second until interrupted.`,
		setup: func(fs *flag.FlagSet) {
			cf.setup(fs)
			fs.BoolVar(&watch, "watch", false, "refresh every second until interrupted")
		},
		flagsOnly: true,
		run: func(ctx context.Context, _ []string, stdout io.Writer) error {
			if !watch {
				return knockStatus(ctx, &cf, stdout)
			}
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				var buf bytes.Buffer
				if !cf.json {
					fmt.Fprintf(&buf, "%snfqfw knock-status, every 1s (Ctrl-C to stop)  %s\n\n", clearScreen, time.Now().Format(time.TimeOnly))
				}
				if err := knockStatus(ctx, &cf, &buf); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if _, err := stdout.Write(buf.Bytes()); err != nil {
					return err
				}
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
			}
		},
	})

	var (
		config string
		at     string
	)
	register(&command{
		name:    "knock-sequence",
		args:    "[-c FILE] [--at TIME] NAME",
		summary: "print the current ports of a knock sequence, for the knock client",
		help: `Prints the steps of the knock sequence NAME as the knock client takes
them (PORT:PROTO ...), so that

	knock HOST $(nfqfw knock-sequence -c FILE NAME)

opens it. For a rotating sequence (one with a secret) the ports change
every period: they are derived from the secret and the current time, so
this needs the config with the secret and a clock in step with the
firewall's (the firewall accepts the sequence of the current period and of
skew periods either side). A static sequence prints its configured ports.`,
		setup: func(fs *flag.FlagSet) {
			fs.StringVar(&config, "c", defaultConfig, "config `file`")
			fs.StringVar(&at, "at", "", "the sequence at this `time` (RFC 3339) instead of now")
		},
		run: func(_ context.Context, args []string, stdout io.Writer) error {
			if len(args) != 1 {
				return usagef("want the name of one knock sequence, got %d arguments", len(args))
			}
			when := time.Now()
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return fmt.Errorf("--at: %w", err)
				}
				when = t
			}
			c, err := rules.Load(config)
			if err != nil {
				return err
			}
			k, err := knock.Find(c.Knocks, args[0])
			if err != nil {
				return err
			}
			var parts []string
			for _, st := range knock.Sequence(k, when) {
				parts = append(parts, strconv.Itoa(int(st.Port))+":"+knockProto(st.Proto))
			}
			_, err = fmt.Fprintln(stdout, strings.Join(parts, " "))
			return err
		},
	})
}

// knockStatus asks the daemon for its knock state and prints it.
func knockStatus(ctx context.Context, cf *clientFlags, w io.Writer) error {
	return show(ctx, cf, w, control.CmdKnockStatus, nil, writeKnockStatus)
}

// writeKnockStatus prints st as three tables.
func writeKnockStatus(w io.Writer, st knock.Status) error {
	tw := newTableWriter(w)
	section := func(title, header string, rows int) bool {
		fmt.Fprintf(tw, "%s\n", title)
		if rows == 0 {
			fmt.Fprintf(tw, "  (none)\n\n")
			return false
		}
		fmt.Fprintf(tw, "%s\n", header)
		return true
	}
	if section("In progress", "SOURCE\tSEQUENCE\tSTEP\tTIME-LEFT", len(st.Progress)) {
		for _, p := range st.Progress {
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\n", p.Source, p.Sequence, p.Step, p.Steps, timeLeft(p.TimeLeft))
		}
		fmt.Fprintln(tw)
	}
	if section("Open", "SOURCE\tSEQUENCE\tOPENS\tTIME-LEFT", len(st.Open)) {
		for _, o := range st.Open {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Source, o.Sequence, o.Opens, timeLeft(o.TimeLeft))
		}
		fmt.Fprintln(tw)
	}
	if section("Recent failures", "WHEN\tSOURCE\tSEQUENCE\tREASON", len(st.Failures)) {
		for _, f := range st.Failures {
			ago := max(st.Now.Sub(f.When), 0).Truncate(time.Second)
			fmt.Fprintf(tw, "%s ago\t%s\t%s\t%s\n", ago, f.Source, f.Sequence, f.Reason)
		}
	}
	return tw.Flush()
}

// timeLeft rounds d up to whole seconds: an open window never shows 0s.
func timeLeft(d time.Duration) string {
	return (d + time.Second - 1).Truncate(time.Second).String()
}

// knockProto names a protocol as the knock client does.
func knockProto(p uint8) string {
	if p == 17 {
		return "udp"
	}
	return "tcp"
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/nfqfw/nfqfw/cmd/nfqfw/internal/daemon"
	"github.com/nfqfw/nfqfw/engine/control"
)

func init() {
	var (
		cf   clientFlags
		req  control.StateRequest
		port uint
	)
	register(&command{
		name:    "state",
		args:    "[-s SOCKET | -c FILE] [--proto P] [--addr A] [--port N] [--state S] [--limit N] [--json]",
		summary: "list the engine's flows like conntrack -L",
		help: `Lists the flows the engine tracks, one per line as conntrack -L prints
them: protocol, seconds left, TCP state, original and reply tuples,
[UNREPLIED] and [ASSURED], the rule that admitted the flow and, for a
RELATED flow (an FTP data connection), its parent. A summary by state
follows. Filters combine: --state takes a TCP state (ESTABLISHED,
SYN_SENT, ...), UNREPLIED, ASSURED or RELATED.`,
		setup: func(fs *flag.FlagSet) {
			cf.setup(fs)
			fs.StringVar(&req.Proto, "proto", "", "only this protocol (tcp, udp, icmp, icmpv6 or a number)")
			fs.StringVar(&req.Addr, "addr", "", "only flows with this address on either side")
			fs.UintVar(&port, "port", 0, "only flows with this port on either side")
			fs.StringVar(&req.State, "state", "", "only flows in this state")
			fs.IntVar(&req.Limit, "limit", 0, "print at most this many flows (0: all)")
		},
		flagsOnly: true,
		run: func(ctx context.Context, _ []string, stdout io.Writer) error {
			if port > 65535 {
				return fmt.Errorf("--port %d: out of range", port)
			}
			req.Port = uint16(port)
			if err := daemon.CheckState(req); err != nil {
				return fmt.Errorf("--%w", err) // "--state "x": want one of ..."
			}
			var resp control.StateResponse
			if err := cf.call(ctx, "state", req, &resp); err != nil {
				return err
			}
			if cf.json {
				return writeJSON(stdout, resp)
			}
			for _, f := range resp.Flows {
				line := f.Line
				if f.Rule != "" {
					line = strings.Replace(line, " rule=", " rule="+f.Rule+"#", 1)
				}
				fmt.Fprintln(stdout, line)
			}
			keys := make([]string, 0, len(resp.ByState))
			for k := range resp.ByState {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			fmt.Fprintf(stdout, "nfqfw state: %d flows shown, %d matched, %d tracked (max %d)", len(resp.Flows), resp.Matched, resp.Total, resp.Max)
			for _, k := range keys {
				fmt.Fprintf(stdout, "; %s %d", k, resp.ByState[k])
			}
			fmt.Fprintln(stdout)
			return nil
		},
	})
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
)

func init() {
	var (
		cf   clientFlags
		addr string
		port uint
		dur  time.Duration
		rate int
	)
	register(&command{
		name:    "trace",
		args:    "[-s SOCKET | -c FILE] [--addr A] [--port N] [--for D] [--rate N] [--json]",
		summary: "stream the daemon's decisions with their explanations",
		help: `Prints, live, the packets the running daemon decides, each with its
explanation as "nfqfw explain" prints it: the steps consulted for a new
flow (bans, FTP expectations, knock steps, each rule's knock window,
recent list and guard), the deciding rule or chain policy, the reason and
the reject kind; for a packet of a tracked flow, what the flow table said.
Packets the kernel decides itself (established flows on its fast path,
trusted interfaces, the allowlist) never reach the daemon.

--addr and --port select packets with that address or port on either
side. The stream ends after --for (at most 1h) or on Ctrl-C, and the
daemon explains at most --rate packets a second (at most 1000); what
exceeds it is counted and reported. With --json, one explanation per line.`,
		setup: func(fs *flag.FlagSet) {
			cf.setup(fs)
			fs.StringVar(&addr, "addr", "", "only packets from or to this `address`")
			fs.UintVar(&port, "port", 0, "only packets from or to this `port`")
			fs.DurationVar(&dur, "for", 30*time.Second, "stop after this `duration` (at most 1h)")
			fs.IntVar(&rate, "rate", 10, "explain at most `N` packets a second (1 to 1000)")
		},
		run: func(ctx context.Context, args []string, stdout io.Writer) error {
			if len(args) > 0 {
				return errUsage
			}
			var req control.TraceRequest
			if addr != "" {
				a, err := netip.ParseAddr(addr)
				if err != nil {
					return fmt.Errorf("--addr %q: want an address", addr)
				}
				req.Filter.Addr = a
			}
			if port > 65535 {
				return fmt.Errorf("--port %d: want 1 to 65535", port)
			}
			req.Filter.Port = uint16(port)
			if dur <= 0 || dur > time.Hour {
				return fmt.Errorf("--for %s: want a duration up to 1h", dur)
			}
			if rate < 1 || rate > 1000 {
				return fmt.Errorf("--rate %d: want 1 to 1000", rate)
			}
			req.Rate = rate
			end := time.Now().Add(dur)
			var dropped uint64
			for left := time.Until(end); left > 0 && ctx.Err() == nil; left = time.Until(end) {
				req.Wait = min(left, 5*time.Second).String()
				var resp control.TraceResponse
				if err := callDaemon(ctx, &cf, control.CmdTrace, req, &resp); err != nil {
					if ctx.Err() != nil {
						break
					}
					return err
				}
				dropped += resp.Dropped
				for _, x := range resp.Events {
					if cf.json {
						b, err := json.Marshal(x)
						if err != nil {
							return err
						}
						fmt.Fprintf(stdout, "%s\n", b)
						continue
					}
					fmt.Fprintf(stdout, "%s %s\n\n", time.Now().Format("15:04:05.000"), strings.Join(x.Lines(), "\n"))
				}
			}
			if dropped > 0 && !cf.json {
				fmt.Fprintf(stdout, "%d packets not explained (over --rate, or not read in time)\n", dropped)
			}
			return nil
		},
	})
}

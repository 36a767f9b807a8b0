package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/recent"
)

func init() {
	var cf clientFlags
	register(&command{
		name:    "recent",
		args:    "[-s SOCKET | -c FILE] [--json] [LIST]",
		summary: "list the entries of the recent lists",
		help: `Asks the running daemon for the addresses on its recent lists (as
/proc/net/xt_recent did): the list, the address, the hits remembered (at
most 20), when it was last seen and the TTL of that packet, and the fleet
gateway whose set it last took (local: this one; a list marked shared
takes the sets of the gateways sharing it). With LIST, only that list.`,
		setup: cf.setup,
		run: func(ctx context.Context, args []string, stdout io.Writer) error {
			fs := flag.NewFlagSet("nfqfw recent", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var sub clientFlags
			sub.setup(fs)
			pos, err := parseInterspersed(fs, args)
			if err != nil {
				return err
			}
			cf.merge(&sub)
			if len(pos) > 1 {
				return usagef("at most one LIST, got %q", strings.Join(pos, " "))
			}
			var req control.RecentListRequest
			if len(pos) == 1 {
				req.List = pos[0]
			}
			return show(ctx, &cf, stdout, control.CmdRecentList, req, writeRecent)
		},
	})
}

// writeRecent prints the recent list entries as a table.
func writeRecent(w io.Writer, resp control.RecentListResponse) error {
	return writeTable(w, resp.Entries, "no entries", "LIST\tADDRESS\tHITS\tLAST-SEEN\tTTL\tORIGIN", func(tw io.Writer, e recent.Entry) {
		origin := e.Origin
		if origin == "" {
			origin = "local"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", e.List, e.Addr, e.Hits, seenAgo(resp.Now, e.LastSeen), e.TTL, origin)
	})
}

// seenAgo prints how long before now t was, in whole seconds.
func seenAgo(now, t time.Time) string {
	d := max(now.Sub(t), 0)
	if d < time.Second {
		return "now"
	}
	return shortDuration(d) + " ago"
}

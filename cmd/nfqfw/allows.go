package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/decision"
)

func init() {
	var cf clientFlags
	register(&command{
		name:    "allows",
		args:    "[-s SOCKET | -c FILE] [--json] list | add ADDR|PREFIX [--for DURATION] [--reason TEXT] | del ADDR|PREFIX",
		summary: "list, add or end temporary allows of sources",
		help: `Talks to the running daemon about allowed sources: a temporary allowlist
entry. Until it ends, a new connection from an allowed source is accepted
before bans, guards and rules (input, as the allowlist's), it is never
banned, and it counts as admitted in the lockout check of run and reload.

  list      the allows: address or prefix, reason, the gateway that
            decided it (ORIGIN: this one's name, or another's in a
            fleet) and the time left
  add ADDR  allow ADDR (IPv4 or IPv6) or a PREFIX (at most a /8 or a
            /16) for --for (default 1h). Every ban whose scope overlaps
            it is lifted (listed, logged and counted), and a later ban
            that would overlap it is refused: bans add says so, a
            guard's is not made, another gateway's is refused on receipt
  del ADDR  end the allow of exactly ADDR or PREFIX

Flags of add: --for DURATION (Go syntax: 90s, 30m, 2h; default 1h) and
--reason TEXT (shown by list). With a fleet sharing allows (share:
[allows]) an allow made here, and its end by del, are made on every
gateway that shares allows. Flags may follow the action.`,
		setup: cf.setup,
		run: func(ctx context.Context, args []string, stdout io.Writer) error {
			return runScopeCommand(ctx, &cf, args, stdout, "nfqfw allows", "allow", scopeActions{
				list: func(ctx context.Context, w io.Writer) error {
					return show(ctx, &cf, w, control.CmdListAllows, nil, writeAllows)
				},
				add: func(ctx context.Context, w io.Writer, arg string, d time.Duration, reason string) error {
					return addAllow(ctx, &cf, w, arg, d, reason)
				},
				del: func(ctx context.Context, w io.Writer, arg string) error { return delAllow(ctx, &cf, w, arg) },
			})
		},
	})
}

// writeAllows prints the allows.
func writeAllows(w io.Writer, resp control.ListAllowsResponse) error {
	if len(resp.Allows) == 0 {
		_, err := fmt.Fprintln(w, "no sources are allowed")
		return err
	}
	tw := newTableWriter(w)
	fmt.Fprintln(tw, "ADDRESS\tREASON\tORIGIN\tALLOWED-FOR\tLEFT")
	for _, a := range resp.Allows {
		origin := a.Origin
		if a.Local() {
			origin = cmp.Or(resp.Gateway, decision.OriginLocal)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", scopeText(a.Scope), a.Reason, origin,
			shortDuration(a.Expires.Sub(a.Issued)), shortDuration(timeLeftUp(a.Expires.Sub(resp.Now))))
	}
	return tw.Flush()
}

func addAllow(ctx context.Context, cf *clientFlags, w io.Writer, arg string, d time.Duration, reason string) error {
	scope, err := banScope(arg)
	if err != nil {
		return fmt.Errorf("add: %w", err)
	}
	if d < time.Second {
		return fmt.Errorf("add: --for %v: an allow lasts at least 1s", d)
	}
	req := control.AddAllowRequest{Scope: scope, ForSeconds: int64((d + time.Second - 1) / time.Second), Reason: reason}
	var resp control.AddAllowResponse
	if err := callDaemon(ctx, cf, control.CmdAddAllow, req, &resp); err != nil {
		return err
	}
	if cf.json {
		return writeJSON(w, resp)
	}
	if _, err := fmt.Fprintf(w, "allowed %s for %s\n", scopeText(resp.Allow.Scope), shortDuration(resp.Allow.Expires.Sub(resp.Allow.Issued))); err != nil {
		return err
	}
	for _, p := range resp.Lifted {
		if _, err := fmt.Fprintf(w, "lifted the ban on %s\n", scopeText(p)); err != nil {
			return err
		}
	}
	return nil
}

func delAllow(ctx context.Context, cf *clientFlags, w io.Writer, arg string) error {
	return delScope(ctx, cf, w, arg, control.CmdDelAllow, func(scope netip.Prefix) any { return control.DelAllowRequest{Scope: scope} },
		func(r *control.DelAllowResponse) bool { return r.Deleted }, "is not allowed", "ended the allow of %s\n")
}

package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/engine/guard"
)

func init() {
	var cf clientFlags
	register(&command{
		name:    "bans",
		args:    "[-s SOCKET | -c FILE] [--json] list | add ADDR|PREFIX [--for DURATION] [--reason TEXT] | del ADDR|PREFIX",
		summary: "list, add or lift bans of sources",
		help: `Talks to the running daemon about banned sources.

  list      the bans: address or prefix, reason, who banned it (a guard's
            name, "manual" or "kernel"), the gateway that decided it
            (ORIGIN: this one's name, or another's in a fleet),
            remembered offences, the ban's length and the time left
  add ADDR  ban ADDR (IPv4 or IPv6) or a PREFIX (2001:db8::/64,
            192.0.2.0/24; at most a /8 or a /16) for --for (default 1h):
            every source in it is dropped in the kernel and by the engine
            until then
  del ADDR  lift the ban on exactly ADDR or PREFIX (not on bans around
            or inside it) and forget its offences

Flags of add: --for DURATION (Go syntax: 90s, 30m, 2h; default 1h) and
--reason TEXT (shown by list).

Guards ban sources that exceed their limits, an IPv6 offender by its /64
unless the guard's ban says otherwise (ban.prefix6, ban.prefix4); repeat
offenders get longer bans. Flags may follow the action.`,
		setup: cf.setup,
		run: func(ctx context.Context, args []string, stdout io.Writer) error {
			return runScopeCommand(ctx, &cf, args, stdout, "nfqfw bans", "ban", scopeActions{
				list: func(ctx context.Context, w io.Writer) error { return listBans(ctx, &cf, w) },
				add: func(ctx context.Context, w io.Writer, arg string, d time.Duration, reason string) error {
					return addBan(ctx, &cf, w, arg, d, reason)
				},
				del: func(ctx context.Context, w io.Writer, arg string) error { return delBan(ctx, &cf, w, arg) },
			})
		},
	})
}

// scopeActions are the actions of a command about scopes (bans, allows).
type scopeActions struct {
	list func(ctx context.Context, w io.Writer) error
	add  func(ctx context.Context, w io.Writer, arg string, d time.Duration, reason string) error
	del  func(ctx context.Context, w io.Writer, arg string) error
}

// runScopeCommand parses "list | add ADDR|PREFIX [--for D] [--reason R] |
// del ADDR|PREFIX" with the client flags anywhere, and runs the action.
func runScopeCommand(ctx context.Context, cf *clientFlags, args []string, stdout io.Writer, name, what string, do scopeActions) error {
	if len(args) == 0 {
		return usagef("missing the action: list, add ADDR|PREFIX or del ADDR|PREFIX")
	}
	action := args[0]
	if action != "list" && action != "add" && action != "del" {
		return usagef("unknown action %q: want list, add ADDR|PREFIX or del ADDR|PREFIX", action)
	}
	fs := flag.NewFlagSet(name+" "+action, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var sub clientFlags
	sub.setup(fs)
	var (
		dur    time.Duration
		reason string
	)
	if action == "add" {
		fs.DurationVar(&dur, "for", time.Hour, what+" `duration`")
		fs.StringVar(&reason, "reason", "", "why, shown by "+what+"s list")
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	cf.merge(&sub)
	switch {
	case action == "list" && len(pos) == 0:
		return do.list(ctx, stdout)
	case action == "add" && len(pos) == 1:
		return do.add(ctx, stdout, pos[0], dur, reason)
	case action == "del" && len(pos) == 1:
		return do.del(ctx, stdout, pos[0])
	case action == "list":
		return usagef("list takes no argument, got %q", pos[0])
	case len(pos) == 0:
		return usagef("%s needs the address or prefix", action)
	}
	return usagef("%s takes one address, got %q", action, strings.Join(pos, " "))
}

// parseInterspersed parses flags wherever they appear among the positional
// arguments ("add 192.0.2.1 --for 2h"), returning the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// merge takes the client flags given after a sub-action.
func (f *clientFlags) merge(sub *clientFlags) {
	if sub.socket != "" {
		f.socket = sub.socket
	}
	if sub.config != "" {
		f.config = sub.config
	}
	f.json = f.json || sub.json
}

// callDaemon is cf.call with a hint when no daemon answers.
func callDaemon(ctx context.Context, cf *clientFlags, cmd string, args, out any) error {
	err := cf.call(ctx, cmd, args, out)
	if errors.Is(err, control.ErrNotRunning) {
		return fmt.Errorf("%w; start it with \"nfqfw run\", or name its socket with -s or -c", err)
	}
	return err
}

// show asks the daemon cmd with args and prints the answer: as JSON with
// --json, else with table.
func show[T any](ctx context.Context, cf *clientFlags, w io.Writer, cmd string, args any, table func(io.Writer, T) error) error {
	var resp T
	if err := callDaemon(ctx, cf, cmd, args, &resp); err != nil {
		return err
	}
	if cf.json {
		return writeJSON(w, resp)
	}
	return table(w, resp)
}

func listBans(ctx context.Context, cf *clientFlags, w io.Writer) error {
	return show(ctx, cf, w, control.CmdListBans, nil, writeBans)
}

// writeBans prints the ban table.
func writeBans(w io.Writer, resp control.ListBansResponse) error {
	return writeTable(w, resp.Bans, "no sources are banned", "ADDRESS\tREASON\tSOURCE\tORIGIN\tOFFENCES\tBANNED-FOR\tLEFT", func(tw io.Writer, b guard.Ban) {
		origin := b.Origin
		if origin == "" || origin == decision.OriginLocal {
			origin = cmp.Or(resp.Gateway, decision.OriginLocal)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", scopeText(b.Scope), b.Reason, b.Source, origin, b.Offences,
			shortDuration(b.Until.Sub(b.Since)), shortDuration(timeLeftUp(b.Until.Sub(resp.Now))))
	})
}

// scopeText prints a ban's scope: an address alone without its /32 or
// /128, a prefix as such.
func scopeText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// banScope parses the scope of bans add and del: an address or a prefix
// (host bits set are refused with the prefix meant).
func banScope(arg string) (netip.Prefix, error) {
	p, err := decision.ParseScope(arg)
	if err != nil {
		if _, perr := netip.ParsePrefix(arg); perr == nil {
			return netip.Prefix{}, err
		}
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 or IPv6 address or prefix", arg)
	}
	return p, nil
}

func addBan(ctx context.Context, cf *clientFlags, w io.Writer, arg string, d time.Duration, reason string) error {
	scope, err := banScope(arg)
	if err != nil {
		return fmt.Errorf("add: %w", err)
	}
	if d < time.Second {
		return fmt.Errorf("add: --for %v: a ban lasts at least 1s", d)
	}
	req := control.AddBanRequest{Scope: scope, ForSeconds: int64((d + time.Second - 1) / time.Second), Reason: reason}
	var resp control.AddBanResponse
	if err := callDaemon(ctx, cf, control.CmdAddBan, req, &resp); err != nil {
		return err
	}
	if cf.json {
		return writeJSON(w, resp)
	}
	_, err = fmt.Fprintf(w, "banned %s for %s (offence %d)\n", scopeText(resp.Ban.Scope), shortDuration(resp.Ban.Until.Sub(resp.Ban.Since)), resp.Ban.Offences)
	return err
}

func delBan(ctx context.Context, cf *clientFlags, w io.Writer, arg string) error {
	return delScope(ctx, cf, w, arg, control.CmdDelBan, func(scope netip.Prefix) any { return control.DelBanRequest{Scope: scope} },
		func(r *control.DelBanResponse) bool { return r.Deleted }, "is not banned", "unbanned %s\n")
}

// delScope ends what cmd keeps for the scope arg names (a ban, an allow):
// req builds the request, deleted reads the answer, absent says why
// nothing ended, done prints what did.
func delScope[R any](ctx context.Context, cf *clientFlags, w io.Writer, arg, cmd string, req func(netip.Prefix) any, deleted func(*R) bool, absent, done string) error {
	scope, err := banScope(arg)
	if err != nil {
		return fmt.Errorf("del: %w", err)
	}
	var resp R
	if err := callDaemon(ctx, cf, cmd, req(scope), &resp); err != nil {
		return err
	}
	if cf.json {
		return writeJSON(w, resp)
	}
	if !deleted(&resp) {
		return fmt.Errorf("del: %s %s", scopeText(scope), absent)
	}
	_, err = fmt.Fprintf(w, done, scopeText(scope))
	return err
}

// timeLeftUp rounds d up to whole seconds (a running ban never shows 0s)
// and never below zero.
func timeLeftUp(d time.Duration) time.Duration {
	return max(d+time.Second-1, 0).Truncate(time.Second)
}

// shortDuration prints d in whole seconds the way an operator writes it:
// 45s, 10m, 1h30m, 26h0m5s.
func shortDuration(d time.Duration) string {
	s := d.Truncate(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/nfqfw/nfqfw/cmd/nfqfw/internal/daemon"
	"github.com/nfqfw/nfqfw/engine/nfq"
	"github.com/nfqfw/nfqfw/rules"
)

func init() {
	var (
		config  string
		backend string
		pprof   string
		confirm time.Duration
	)
	register(&command{
		name:    "run",
		args:    "[-c FILE] [--backend auto|legacy|nft] [--confirm DURATION] [--pprof ADDR]",
		summary: "run the firewall daemon (root)",
		help: `Loads the config, binds the NFQUEUE readers, installs nfqfw's own
iptables chains (IPv4 and IPv6, atomically, after removing stale chains a
crash may have left), and decides every NEW flow until SIGINT or SIGTERM,
when it removes exactly what it installed. SIGHUP (or "nfqfw reload")
reloads the config; a bad config is refused and the running one stays.

With --confirm, the start must be confirmed with "nfqfw confirm" within the
duration, or nfqfw stops and removes its ruleset (like iptables-apply).

Warning: on a remote host, make sure the config admits your own management
connection (an allowlist, or a rule for SSH) before you start it, and start
it with --confirm.`,
		setup: func(fs *flag.FlagSet) {
			fs.StringVar(&config, "c", defaultConfig, "config `file`")
			fs.StringVar(&backend, "backend", "", "iptables backend: auto, legacy or nft (default: the config's)")
			fs.StringVar(&pprof, "pprof", "", "serve net/http/pprof on this loopback `address` (e.g. 127.0.0.1:6060)")
			fs.DurationVar(&confirm, "confirm", 0, "stop and remove the ruleset unless \"nfqfw confirm\" follows within this `duration`")
		},
		run: func(ctx context.Context, args []string, _ io.Writer) error {
			if err := noArgs(args); err != nil {
				return err
			}
			// Every flag is checked before anything is installed.
			switch rules.Backend(backend) {
			case "", rules.BackendAuto, rules.BackendLegacy, rules.BackendNft:
			default:
				return usagef("--backend %q: want auto, legacy or nft", backend)
			}
			if pprof != "" {
				if err := daemon.CheckPprofAddr(pprof); err != nil {
					return usagef("--pprof %v", err)
				}
			}
			if confirm < 0 {
				return usagef("--confirm %s: want a positive duration", confirm)
			}
			if err := nfq.CheckPermission(); err != nil {
				return err
			}
			return daemon.Run(ctx, daemon.Options{
				ConfigPath: config,
				Backend:    rules.Backend(backend),
				Version:    buildVersion(),
				Pprof:      pprof,
				Confirm:    confirm,
			})
		},
	})
}

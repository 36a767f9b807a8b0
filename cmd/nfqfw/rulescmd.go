package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/nfqfw/nfqfw/rules"
	"github.com/nfqfw/nfqfw/rules/iptables"
)

func init() {
	var (
		config string
		family string
	)
	register(&command{
		name:    "rules",
		args:    "[-c FILE] [-family ipv4|ipv6]",
		summary: "print the kernel ruleset (iptables-restore input) run would install",
		help: `Prints, for IPv4 and IPv6, the exact text "nfqfw run" feeds to
iptables-restore --noflush: the NFQFW-* chains with their rules, the jumps
into the built-in chains, the nat table for masquerade, SNAT and port
forwards, and the raw table (reverse path filter, conntrack events). Nothing
is installed; review it before a first start.`,
		setup: func(fs *flag.FlagSet) {
			fs.StringVar(&config, "c", defaultConfig, "config `file`")
			fs.StringVar(&family, "family", "", "only this family: ipv4 or ipv6 (default: both)")
		},
		run: func(_ context.Context, args []string, stdout io.Writer) error {
			if len(args) > 0 {
				return errUsage
			}
			c, err := rules.Load(config)
			if err != nil {
				return err
			}
			for _, fam := range families(c) {
				switch {
				case family == "ipv4" && fam != rules.FamilyIPv4, family == "ipv6" && fam != rules.FamilyIPv6:
					continue
				case family != "" && family != "ipv4" && family != "ipv6":
					return fmt.Errorf("-family %q: want ipv4 or ipv6", family)
				}
				text, err := iptables.Generate(c, fam)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "# %s (iptables-restore --noflush input)\n%s", map[rules.Family]string{rules.FamilyIPv4: "IPv4", rules.FamilyIPv6: "IPv6"}[fam], text)
			}
			return nil
		},
	})
}

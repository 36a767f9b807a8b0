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
is installed; review it before a first start.

Each family is one iptables-restore input; pick one with -family to pipe it:

	nfqfw rules -c FILE -family ipv4 | iptables-restore --test --noflush
	nfqfw rules -c FILE -family ipv6 | ip6tables-restore --test --noflush

(without -family both are printed, one after the other, each under a
comment line naming its family and its restore command).`,
		setup: func(fs *flag.FlagSet) {
			fs.StringVar(&config, "c", defaultConfig, "config `file`")
			fs.StringVar(&family, "family", "", "only this family: ipv4 or ipv6 (default: both)")
		},
		run: func(_ context.Context, args []string, stdout io.Writer) error {
			if err := noArgs(args); err != nil {
				return err
			}
			want := map[string]rules.Family{"ipv4": rules.FamilyIPv4, "ipv6": rules.FamilyIPv6}
			if _, ok := want[family]; family != "" && !ok {
				return usagef("-family %q: want ipv4 or ipv6", family)
			}
			c, err := rules.Load(config)
			if err != nil {
				return err
			}
			fams := families(c)
			if family != "" {
				fams = []rules.Family{want[family]}
				if fams[0] == rules.FamilyIPv6 && !c.IPv6 {
					return fmt.Errorf("%s has ipv6: false: it installs no IPv6 ruleset", config)
				}
			}
			for _, fam := range fams {
				text, err := iptables.Generate(c, fam)
				if err != nil {
					return err
				}
				if fam == rules.FamilyIPv4 {
					fmt.Fprintf(stdout, "# IPv4: input of iptables-restore --noflush\n%s", text)
				} else {
					fmt.Fprintf(stdout, "# IPv6: input of ip6tables-restore --noflush\n%s", text)
				}
			}
			return nil
		},
	})
}

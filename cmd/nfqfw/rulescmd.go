package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

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

Without -family both are printed, one after the other, each under comment
lines naming its family and its restore command. The rules match nfqfw's
ban sets (nfqfw-bannet4, nfqfw-bannet6), which the daemon creates: on a
host where it never ran, create them first (ipset create nfqfw-bannet4
hash:net family inet timeout 0; likewise nfqfw-bannet6 with family inet6).`,
		setup: func(fs *flag.FlagSet) {
			fs.StringVar(&config, "c", defaultConfig, "config `file`")
			fs.StringVar(&family, "family", "", "only this family: ipv4 or ipv6 (default: both)")
		},
		flagsOnly: true,
		run: func(_ context.Context, _ []string, stdout io.Writer) error {
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
				name, restore, inet := "IPv4", "iptables-restore", "inet"
				if fam == rules.FamilyIPv6 {
					name, restore, inet = "IPv6", "ip6tables-restore", "inet6"
				}
				set := iptables.BanSet(fam)
				fmt.Fprintf(stdout, "# %s: input of %s --noflush (nfqfw rules -family %s); it matches the ban set %s,\n"+
					"# which the daemon creates (where it never ran: ipset create %s hash:net family %s timeout 0)\n%s",
					name, restore, strings.ToLower(name), set, set, inet, text)
			}
			return nil
		},
	})
}

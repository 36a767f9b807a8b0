package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/nfqfw/nfqfw/rules"
	"github.com/nfqfw/nfqfw/rules/iptables"
)

func init() {
	var (
		config string
		strict bool
	)
	register(&command{
		name:    "check",
		args:    "[-c FILE] [--strict-host]",
		summary: "validate a config file and exit non-zero with the error",
		help: `Parses, validates and compiles the config exactly as "run" and a reload
would, and generates its kernel ruleset, without touching the system. An
error names the file, line and field.

It also compares every interface name with the interfaces of this host:
"run" and "reload" refuse a name that is neither a zone nor a present
interface (unless interfaces.dynamic declares it). Check may run elsewhere
(a workstation, CI), so it prints such names as warnings and exits 0;
with --strict-host they are errors (exit 1), as on the host that runs the
firewall (scripts/install.sh --enable checks so).`,
		setup: func(fs *flag.FlagSet) {
			fs.StringVar(&config, "c", defaultConfig, "config `file`")
			fs.BoolVar(&strict, "strict-host", false, "an interface name absent from this host is an error, not a warning")
		},
		flagsOnly: true,
		run: func(_ context.Context, _ []string, stdout io.Writer) error {
			c, err := rules.Load(config)
			if err != nil {
				return err
			}
			p, err := rules.Compile(c)
			if err != nil {
				return err
			}
			for _, fam := range families(c) {
				if _, err := iptables.Generate(c, fam); err != nil {
					return err
				}
			}
			present, err := rules.HostInterfaces()
			if err != nil {
				return err
			}
			unknown := c.UnknownInterfaces(present)
			if strict && len(unknown) > 0 {
				errs := make([]error, len(unknown))
				for i, e := range unknown {
					errs[i] = e
				}
				return errors.Join(errs...)
			}
			for _, e := range unknown {
				fmt.Fprintf(stdout, "warning: %v\n", e)
			}
			fmt.Fprintf(stdout, "%s: ok (%d rules, hash %.12s)", config, len(p.Rules()), p.Hash())
			if len(unknown) > 0 {
				fmt.Fprintf(stdout, "; warnings: %d, names absent from this host, which run and reload refuse here (--strict-host makes them errors)", len(unknown))
			}
			fmt.Fprintln(stdout)
			return nil
		},
	})
}

func families(c *rules.Config) []rules.Family {
	if c.IPv6 {
		return []rules.Family{rules.FamilyIPv4, rules.FamilyIPv6}
	}
	return []rules.Family{rules.FamilyIPv4}
}

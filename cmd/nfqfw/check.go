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
	var config string
	register(&command{
		name:    "check",
		args:    "[-c FILE]",
		summary: "validate a config file and exit non-zero with the error",
		help: `Parses, validates and compiles the config exactly as "run" and a reload
would, and generates its kernel ruleset, without touching the system. An
error names the file, line and field.`,
		setup: func(fs *flag.FlagSet) {
			fs.StringVar(&config, "c", defaultConfig, "config `file`")
		},
		run: func(_ context.Context, args []string, stdout io.Writer) error {
			if len(args) > 0 {
				return errUsage
			}
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
			fmt.Fprintf(stdout, "%s: ok (%d rules, hash %.12s)\n", config, len(p.Rules()), p.Hash())
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

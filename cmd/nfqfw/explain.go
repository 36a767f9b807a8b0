package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/rules"
)

func init() {
	var (
		cf   clientFlags
		live bool
	)
	register(&command{
		name:    "explain",
		args:    "[-c FILE [--live] | -s SOCKET] [--json] PROTO SRC[:PORT] to DST[:PORT] [in IF] [out IF] [input|forward|output]",
		summary: "tell the verdict a new connection gets, and why",
		help: `Explains the verdict the engine gives the first packet of a connection
(a TCP SYN, a UDP datagram, an ICMP echo request): each step it consults
in order (the kernel's trusted interfaces and management allowlist, bans,
expected FTP data connections, knock steps, then the rules with their
stateful conditions: knock windows, recent lists, rate guards), the rule
that decided or the chain's policy, the reason label of the metrics and
the log, and the reject kind. It runs the packet path's own decision and
changes nothing: no knock progress, no guard counted, no recent list set,
no flow admitted.

With -c FILE (and no --live) the config file is explained offline, with
empty state. Otherwise the running daemon explains against its policy and
its live state (bans, recent lists, knock windows, guard counters); its
socket is -s, else the one -c's config names, else the default.

The chain is the last word, or: output with only "out IF", forward with
both "in IF" and "out IF", else input. For icmp and icmpv6, "type N" and
"code N" pick the message (default: an echo request).

"to" may be left out, or written "->" (quoted: a shell takes > for a
redirection).

  nfqfw explain -c /etc/nfqfw/nfqfw.yaml tcp 198.51.100.7:40000 to 10.0.0.1:22 in eth0
  nfqfw explain udp 10.0.0.1:5353 to 192.0.2.53:53 out eth0
  nfqfw explain icmp 198.51.100.7 to 10.0.0.1 in eth0 type 8`,
		setup: func(fs *flag.FlagSet) {
			cf.setup(fs)
			fs.BoolVar(&live, "live", false, "with -c: ask the running daemon (its live state) instead of explaining the file offline")
		},
		run: func(ctx context.Context, args []string, stdout io.Writer) error {
			// Flags may follow the flow; "->" is no flag.
			for i, a := range args {
				if a == "->" {
					args[i] = "to"
				}
			}
			fs := flag.NewFlagSet("nfqfw explain", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var sub clientFlags
			sub.setup(fs)
			subLive := fs.Bool("live", false, "")
			pos, err := parseInterspersed(fs, args)
			if err != nil {
				return err
			}
			cf.merge(&sub)
			live = live || *subLive
			f, err := parseFlow(pos)
			if err != nil {
				return err
			}
			var x engine.Explanation
			if cf.config != "" && !live && cf.socket == "" {
				c, err := rules.Load(cf.config)
				if err != nil {
					return err
				}
				pol, err := rules.Compile(c)
				if err != nil {
					return err
				}
				x = engine.Explain(pol, engine.NewMatchers(c), f)
			} else if err := callDaemon(ctx, &cf, control.CmdExplain, control.ExplainRequest{Flow: f}, &x); err != nil {
				return err
			}
			if cf.json {
				return writeJSON(stdout, x)
			}
			_, err = fmt.Fprintln(stdout, strings.Join(x.Lines(), "\n"))
			return err
		},
	})
}

// parseFlow reads "PROTO SRC[:PORT] to DST[:PORT] [in IF] [out IF]
// [type N] [code N] [input|forward|output]".
func parseFlow(args []string) (engine.Flow, error) {
	var f engine.Flow
	if len(args) < 3 {
		return f, fmt.Errorf("%w: want PROTO SRC[:PORT] to DST[:PORT]", errUsage)
	}
	proto, ok := protoNumbers[strings.ToLower(args[0])]
	if !ok {
		n, err := strconv.ParseUint(args[0], 10, 8)
		if err != nil {
			return f, fmt.Errorf("protocol %q: want tcp, udp, icmp, icmpv6, sctp, gre or a number", args[0])
		}
		proto = uint8(n)
	}
	f.Proto = proto
	rest := args[1:]
	ports := proto == 6 || proto == 17 || proto == 132 || proto == 33 || proto == 136
	var err error
	if f.Src, f.SrcPort, err = endpoint(rest[0], ports, "source"); err != nil {
		return f, err
	}
	rest = rest[1:]
	if len(rest) > 0 && (rest[0] == "to" || rest[0] == "->") {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return f, fmt.Errorf("%w: no destination", errUsage)
	}
	if f.Dst, f.DstPort, err = endpoint(rest[0], ports, "destination"); err != nil {
		return f, err
	}
	if f.Src.Is4() != f.Dst.Is4() {
		return f, fmt.Errorf("source %s and destination %s are of different families", f.Src, f.Dst)
	}
	hook := ""
	for rest = rest[1:]; len(rest) > 0; {
		word := rest[0]
		switch word {
		case "input", "forward", "output":
			hook, rest = word, rest[1:]
			continue
		case "in", "out", "type", "code":
		default:
			return f, fmt.Errorf("unexpected %q: want in IF, out IF, type N, code N or the chain (input, forward, output)", word)
		}
		if len(rest) < 2 {
			return f, fmt.Errorf("%q needs a value", word)
		}
		v := rest[1]
		rest = rest[2:]
		switch word {
		case "in":
			f.InIface = v
		case "out":
			f.OutIface = v
		default:
			n, err := strconv.ParseUint(v, 10, 8)
			if err != nil || (proto != 1 && proto != 58) {
				return f, fmt.Errorf("%s %q: want a number 0-255, for icmp or icmpv6", word, v)
			}
			if word == "type" {
				f.ICMPType = uint8(n)
			} else {
				f.ICMPCode = uint8(n)
			}
		}
	}
	switch {
	case hook != "":
	case f.InIface != "" && f.OutIface != "":
		hook = "forward"
	case f.OutIface != "":
		hook = "output"
	default:
		hook = "input"
	}
	f.Hook = map[string]rules.Hook{"input": rules.HookInput, "forward": rules.HookForward, "output": rules.HookOutput}[hook]
	return f, nil
}

var protoNumbers = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "dccp": 33, "udplite": 136, "gre": 47}

// endpoint reads ADDR, ADDR:PORT or [V6]:PORT; a port is required for
// protocols with ports.
func endpoint(s string, ports bool, what string) (netip.Addr, uint16, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if !ports {
			return netip.Addr{}, 0, fmt.Errorf("%s %q: this protocol has no ports", what, s)
		}
		return ap.Addr().Unmap(), ap.Port(), nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%s %q: want an address, or ADDR:PORT ([V6]:PORT)", what, s)
	}
	if ports {
		return netip.Addr{}, 0, fmt.Errorf("%s %q: want ADDR:PORT ([V6]:PORT)", what, s)
	}
	return a.Unmap(), 0, nil
}

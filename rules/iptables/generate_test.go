package iptables

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// base returns a config as validation defaults it: queue 0, mark mask
// 0x00ff0000, IPv6 on, lo trusted, input and forward drop, output accept.
func base() *rules.Config {
	return &rules.Config{
		Backend: rules.BackendAuto,
		IPv6:    true,
		Queue:   rules.Queue{Number: 0, Count: 1, MaxLen: 4096, MarkMask: 0x00ff0000},
		Trusted: []string{"lo"},
		Input:   rules.Chain{Policy: rules.ActionDrop, Invalid: rules.ActionDrop},
		Forward: rules.Chain{Policy: rules.ActionDrop, Invalid: rules.ActionDrop},
		Output:  rules.Chain{Policy: rules.ActionAccept, Invalid: rules.ActionDrop},
	}
}

// sshForward is base with one port forward: tcp 22 to 10.0.0.2.
func sshForward() *rules.Config {
	c := base()
	c.NAT.Forwards = []rules.PortForward{{Proto: 6, Port: rules.PortRange{First: 22, Last: 22}, To: netip.MustParseAddr("10.0.0.2")}}
	return c
}

func tcp(name string, ports ...uint16) rules.Rule {
	r := rules.Rule{Name: name, Proto: 6, Action: rules.ActionAccept}
	for _, p := range ports {
		r.DPort = append(r.DPort, rules.PortRange{First: p, Last: p})
	}
	return r
}

func udp(name string, ports ...uint16) rules.Rule {
	r := tcp(name, ports...)
	r.Proto = 17
	return r
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

type goldenCase struct {
	name string
	cfg  func() *rules.Config
}

// goldenCases are the setups of DESIGN.md as configs; each golden file holds
// the IPv4 and the IPv6 ruleset.
var goldenCases = []goldenCase{
	{
		// Setup 1: nothing NEW in, so nothing is queued at all.
		name: "desktop",
		cfg:  base,
	},
	{
		// Setup 2: open ports, ping, rejects for closed ports; IPv4 only.
		name: "server",
		cfg: func() *rules.Config {
			c := base()
			c.IPv6 = false
			c.Zones = []rules.Zone{{Name: "uplink", Interfaces: []string{"eth0"}}}
			c.Input.Policy = rules.ActionReject
			c.Input.Rules = []rules.Rule{
				tcp("web", 22, 80, 443),
				udp("dns", 53),
				{Name: "ping", Proto: 1, ICMP: []rules.ICMPMatch{{Type: 8, Code: -1}}, Action: rules.ActionAccept},
			}
			return c
		},
	},
	{
		// Setup 3: only initiates; output is decided in the kernel.
		name: "client-only",
		cfg: func() *rules.Config {
			c := base()
			c.IPv6 = false
			c.Trusted = nil
			return c
		},
	},
	{
		// Setup 9: ND, DHCPv6 client, ping6, icmp6-adm-prohibited rejects.
		name: "ipv6-host",
		cfg: func() *rules.Config {
			c := base()
			c.Input.Policy = rules.ActionReject
			c.Input.RejectWith = rules.RejectICMP6AdmProhibited
			c.Input.Log = &rules.LogSpec{Prefix: "in-drop"}
			c.Input.Rules = []rules.Rule{
				{Name: "dhcpv6", Family: rules.FamilyIPv6, Proto: 17, Src: prefixes("fe80::/10"),
					DPort: []rules.PortRange{{First: 546, Last: 546}}, Action: rules.ActionAccept},
				{Name: "ping6", Proto: 58, ICMP: []rules.ICMPMatch{{Type: 128, Code: -1}}, Action: rules.ActionAccept},
			}
			return c
		},
	},
	{
		// Setup 4: FTP client and server with the userspace helper; the
		// input chain queues for data connections although it has no rule.
		name: "ftp",
		cfg: func() *rules.Config {
			c := base()
			c.FTP = rules.FTP{Enabled: true, Ports: []uint16{21, 2121}, Expiry: 30 * time.Second, MaxPerControl: 8}
			return c
		},
	},
	{
		// Control ports in runs (21-22, 2121), and kernel events limited by
		// a CT template in the raw table.
		name: "ftp-port-runs-minimal-events",
		cfg: func() *rules.Config {
			c := base()
			c.IPv6 = false
			c.FTP = rules.FTP{Enabled: true, Ports: []uint16{2121, 22, 21}, Expiry: 30 * time.Second, MaxPerControl: 8}
			c.Flows.KernelEvents = rules.KernelEventsMinimal
			return c
		},
	},
	{
		// Setup 8 with setup 7's guard: masquerade on the uplink, two port
		// forwards, ssh guard bans through ipset.
		name: "nat-gateway",
		cfg: func() *rules.Config {
			c := base()
			c.IPv6 = false
			c.Zones = []rules.Zone{
				{Name: "lan", Interfaces: []string{"veth-lan+", "br0"}},
				{Name: "wan", Interfaces: []string{"eth0"}},
			}
			c.Trusted = []string{"lo", "lan"}
			c.Input.Rules = []rules.Rule{{Name: "ssh", Proto: 6, DPort: []rules.PortRange{{First: 22, Last: 22}}, Guard: "ssh", Action: rules.ActionAccept}}
			c.Guards = []rules.Guard{{Name: "ssh", Limits: []rules.RateLimit{{Count: 3, Window: 10 * time.Second}}}}
			c.NAT = rules.NAT{
				Masquerade: []rules.Masquerade{{Out: []string{"wan"}, Src: prefixes("10.99.1.0/24", "10.99.3.0/24")}},
				Forwards: []rules.PortForward{
					{Name: "ssh", In: []string{"wan"}, Proto: 6, Port: rules.PortRange{First: 22, Last: 22}, To: netip.MustParseAddr("10.99.1.2")},
					{Name: "web", In: []string{"wan"}, Proto: 6, Port: rules.PortRange{First: 8000, Last: 8000}, To: netip.MustParseAddr("10.99.1.2"), ToPort: 80},
					{Name: "games", Proto: 17, Port: rules.PortRange{First: 27000, Last: 27010}, To: netip.MustParseAddr("10.99.1.3"), ToPort: 37000, Src: prefixes("192.0.2.0/24")},
				},
			}
			return c
		},
	},
	{
		// The guides' own forms: every interface but the uplink trusted
		// (guide 000's "! -i ppp0"), ESTABLISHED without RELATED on input
		// (guide 001), INVALID answered like the guides' catch-all REJECT
		// on input and with host unreachable on forward (guide 004); the
		// kernel's FTP helper on the masqueraded control connections.
		name: "guide-forms",
		cfg: func() *rules.Config {
			c := base()
			c.IPv6 = false
			c.Trusted = []string{"!ppp0"}
			c.Input.RelatedPolicy = true
			c.Input.Invalid = rules.ActionReject
			c.Input.Rules = []rules.Rule{tcp("ssh", 22)}
			c.Forward.Policy = rules.ActionReject
			c.Forward.RejectWith = rules.RejectICMPHostUnreachable
			c.Forward.Invalid = rules.ActionReject
			c.Forward.InvalidRejectWith = rules.RejectICMPHostUnreachable
			c.Forward.Rules = []rules.Rule{{Name: "lan out", In: []string{"!ppp0"}, Action: rules.ActionAccept}}
			c.FTP = rules.FTP{Enabled: true, Ports: []uint16{21}}
			c.NAT = rules.NAT{Masquerade: []rules.Masquerade{{Out: []string{"ppp0"}, Src: prefixes("192.168.0.0/24")}},
				Forwards: []rules.PortForward{{Name: "ssh", In: []string{"ppp0"}, Proto: 6, Port: rules.PortRange{First: 22, Last: 22}, To: netip.MustParseAddr("192.168.0.5")}}}
			return c
		},
	},
	{
		// Four queues with --queue-balance, accepted while no daemon listens.
		name: "queue-balance-bypass",
		cfg: func() *rules.Config {
			c := base()
			c.Queue = rules.Queue{Number: 10, Count: 4, Bypass: true, MarkMask: 0x0000ff00}
			c.Input.Rules = []rules.Rule{tcp("ssh", 22)}
			c.Output.Log = &rules.LogSpec{Prefix: "out"}
			return c
		},
	},
	{
		// Rules, NAT and trusted zones in both families; rules of one family
		// make only that family's chain queue.
		name: "both-families",
		cfg: func() *rules.Config {
			c := base()
			c.Trusted = []string{"lo", "wg0"}
			c.Input.Rules = []rules.Rule{{Name: "v4 mgmt", Proto: 6, Src: prefixes("192.0.2.0/24"), Action: rules.ActionAccept}}
			c.Forward.Rules = []rules.Rule{{Name: "v6 only", Family: rules.FamilyIPv6, Proto: 6, Action: rules.ActionAccept}}
			c.Output.Policy = rules.ActionReject
			c.Output.RejectWith = rules.RejectICMPHostUnreachable
			c.Output.Rules = []rules.Rule{tcp("out web", 80, 443)}
			c.NAT = rules.NAT{
				SNAT: []rules.SNAT{
					{Out: []string{"eth0"}, Src: prefixes("10.0.0.0/8"), To: netip.MustParseAddr("192.0.2.1")},
					{Out: []string{"eth0"}, Src: prefixes("fd00::/64"), To: netip.MustParseAddr("2001:db8::1")},
				},
				Masquerade: []rules.Masquerade{{Out: []string{"ppp0"}}},
				Forwards: []rules.PortForward{
					{Name: "web6", In: []string{"eth0"}, Proto: 6, Port: rules.PortRange{First: 80, Last: 80}, To: netip.MustParseAddr("fd00::80"), ToPort: 8080},
					{Name: "dns6", Proto: 17, Port: rules.PortRange{First: 53, Last: 53}, To: netip.MustParseAddr("fd00::53")},
				},
			}
			return c
		},
	},
}

// both renders both families' rulesets the way the golden files hold them.
func both(t *testing.T, c *rules.Config) string {
	t.Helper()
	var b strings.Builder
	for _, fam := range []rules.Family{rules.FamilyIPv4, rules.FamilyIPv6} {
		text, err := Generate(c, fam)
		if err != nil {
			t.Fatalf("Generate(%v): %v", fam, err)
		}
		if fam == rules.FamilyIPv4 {
			b.WriteString("# iptables-restore --noflush\n")
		} else {
			b.WriteString("# ip6tables-restore --noflush\n")
		}
		b.WriteString(text)
	}
	return b.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestGenerateGolden(t *testing.T) {
	for _, tt := range slices.Concat(goldenCases, gatewayGoldenCases) {
		t.Run(tt.name, func(t *testing.T) {
			got := both(t, tt.cfg())
			golden(t, tt.name, got)
			if again := both(t, tt.cfg()); again != got {
				t.Errorf("Generate is not deterministic")
			}
		})
	}
}

func TestGenerateQueues(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func() *rules.Config
		fam    rules.Family
		hook   rules.Hook
		queues bool
	}{
		{name: "drop policy without rules is kernel-only", cfg: base, hook: rules.HookInput, queues: false},
		{name: "accept policy without rules is kernel-only", cfg: base, hook: rules.HookOutput, queues: false},
		{
			name: "a rule makes the chain queue",
			cfg:  func() *rules.Config { c := base(); c.Input.Rules = []rules.Rule{tcp("ssh", 22)}; return c },
			hook: rules.HookInput, queues: true,
		},
		{
			name: "a policy log makes the chain queue",
			cfg:  func() *rules.Config { c := base(); c.Output.Log = &rules.LogSpec{}; return c },
			hook: rules.HookOutput, queues: true,
		},
		{
			name: "an IPv6 rule does not make the IPv4 chain queue",
			cfg: func() *rules.Config {
				c := base()
				c.Input.Rules = []rules.Rule{{Family: rules.FamilyIPv6, Action: rules.ActionAccept}}
				return c
			},
			fam: rules.FamilyIPv4, hook: rules.HookInput, queues: false,
		},
		{
			name: "an ICMP rule does not make the IPv6 chain queue",
			cfg: func() *rules.Config {
				c := base()
				c.Input.Rules = []rules.Rule{{Proto: 1, Action: rules.ActionAccept}}
				return c
			},
			fam: rules.FamilyIPv6, hook: rules.HookInput, queues: false,
		},
		{
			name: "IPv4 sources only do not make the IPv6 chain queue",
			cfg: func() *rules.Config {
				c := base()
				c.Input.Rules = []rules.Rule{{Src: prefixes("10.0.0.0/8"), Action: rules.ActionAccept}}
				return c
			},
			fam: rules.FamilyIPv6, hook: rules.HookInput, queues: false,
		},
		{
			name: "FTP data connections need the engine under a drop policy",
			cfg:  func() *rules.Config { c := base(); c.FTP.Enabled = true; return c },
			hook: rules.HookInput, queues: true,
		},
		{
			// The helper must see the control connection's SYN to track
			// it, also for an FTP client on this host (an OUTPUT flow).
			name: "FTP makes even an accept policy queue NEW flows",
			cfg:  func() *rules.Config { c := base(); c.FTP.Enabled = true; return c },
			hook: rules.HookOutput, queues: true,
		},
		{
			name: "port forwards make the forward chain queue",
			cfg:  sshForward,
			fam:  rules.FamilyIPv4, hook: rules.HookForward, queues: true,
		},
		{
			name: "IPv4 port forwards leave the IPv6 forward chain alone",
			cfg:  sshForward,
			fam:  rules.FamilyIPv6, hook: rules.HookForward, queues: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fam := tt.fam
			if fam == rules.FamilyAny {
				fam = rules.FamilyIPv4
			}
			g := gen{c: tt.cfg(), fam: fam}
			h := g.hooks()[tt.hook]
			if got := g.queues(h); got != tt.queues {
				t.Errorf("queues(%v) = %v, want %v", tt.hook, got, tt.queues)
			}
		})
	}
}

func TestRejectWith(t *testing.T) {
	tests := []struct {
		kind   rules.RejectKind
		v4, v6 string
	}{
		{rules.RejectTCPReset, "tcp-reset", "tcp-reset"},
		{rules.RejectICMPPortUnreachable, "icmp-port-unreachable", "icmp6-port-unreachable"},
		{rules.RejectICMPProtoUnreachable, "icmp-proto-unreachable", "icmp6-adm-prohibited"},
		{rules.RejectICMPHostUnreachable, "icmp-host-unreachable", "icmp6-addr-unreachable"},
		{rules.RejectICMP6AdmProhibited, "icmp-admin-prohibited", "icmp6-adm-prohibited"},
		{rules.RejectICMP6PortUnreachable, "icmp-port-unreachable", "icmp6-port-unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			got := [2]string{gen{fam: rules.FamilyIPv4}.rejectWith(tt.kind), gen{fam: rules.FamilyIPv6}.rejectWith(tt.kind)}
			if diff := cmp.Diff([2]string{tt.v4, tt.v6}, got); diff != "" {
				t.Errorf("rejectWith(%v) mismatch (-want +got):\n%s", tt.kind, diff)
			}
		})
	}
}

func TestGenerateErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  func() *rules.Config
		fam  rules.Family
		want error
	}{
		{name: "family any", cfg: base, fam: rules.FamilyAny, want: ErrFamily},
		{name: "nil config", cfg: func() *rules.Config { return nil }, fam: rules.FamilyIPv4, want: ErrConfig},
		{
			name: "mark mask too small for the reject kinds",
			cfg: func() *rules.Config {
				c := base()
				c.Queue.MarkMask = 0x3
				c.Input.Rules = []rules.Rule{tcp("ssh", 22)}
				return c
			},
			fam: rules.FamilyIPv4, want: ErrMarkMask,
		},
		{
			name: "port forward without ports",
			cfg: func() *rules.Config {
				c := base()
				c.NAT.Forwards = []rules.PortForward{{Name: "x", Proto: 1, To: netip.MustParseAddr("10.0.0.1")}}
				return c
			},
			fam: rules.FamilyIPv4, want: ErrConfig,
		},
		{
			name: "port forward target range past 65535",
			cfg: func() *rules.Config {
				c := base()
				c.NAT.Forwards = []rules.PortForward{{Name: "x", Proto: 6, Port: rules.PortRange{First: 1, Last: 100}, To: netip.MustParseAddr("10.0.0.1"), ToPort: 65500}}
				return c
			},
			fam: rules.FamilyIPv4, want: ErrConfig,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Generate(tt.cfg(), tt.fam)
			if !errors.Is(err, tt.want) {
				t.Errorf("Generate error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestGenerateIPv6Disabled(t *testing.T) {
	c := base()
	c.IPv6 = false
	got, err := Generate(c, rules.FamilyIPv6)
	if err != nil || got != "" {
		t.Errorf("Generate(ipv6 disabled) = %q, %v; want \"\", nil", got, err)
	}
}

// TestMarkRulesMatchEngineMarks checks that every reject kind's mark, set by
// the engine as (old &^ MarkMask) | RejectMark(k), is matched by exactly the
// REJECT rules of that kind in NFQFW-REJECT.
func TestMarkRulesMatchEngineMarks(t *testing.T) {
	c := base()
	c.Input.Rules = []rules.Rule{tcp("ssh", 22)}
	text, err := Generate(c, rules.FamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	q := c.Queue
	for k := rules.RejectNone + 1; k < rules.NumRejectKinds; k++ {
		mark := 0xdead00be&^q.MarkMask | q.RejectMark(k)
		var matched []string
		for _, line := range strings.Split(text, "\n") {
			if !strings.HasPrefix(line, "-A "+ChainReject) {
				continue
			}
			// "--mark 0x10000/0x70000"
			spec, _, _ := strings.Cut(line[strings.Index(line, "--mark ")+len("--mark "):], " ")
			vs, ms, _ := strings.Cut(spec, "/")
			v, err1 := strconv.ParseUint(vs, 0, 32)
			m, err2 := strconv.ParseUint(ms, 0, 32)
			if err1 != nil || err2 != nil {
				t.Fatalf("parse mark of %q: %v %v", line, err1, err2)
			}
			if uint64(mark)&m == v {
				matched = append(matched, line[strings.Index(line, "--reject-with ")+len("--reject-with "):])
			}
		}
		want := []string{gen{fam: rules.FamilyIPv4}.rejectWith(k)}
		if k == rules.RejectTCPReset {
			want = []string{"tcp-reset", "icmp-port-unreachable"}
		}
		if diff := cmp.Diff(want, matched); diff != "" {
			t.Errorf("mark %#x (%v) matched (-want +got):\n%s", mark, k, diff)
		}
	}
}

func TestBanSetOf(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1":        BanSet4,
		"::ffff:192.0.2.1": BanSet4,
		"2001:db8::1":      BanSet6,
	} {
		if got := BanSetOf(netip.MustParseAddr(addr)); got != want {
			t.Errorf("BanSetOf(%s) = %s, want %s", addr, got, want)
		}
	}
}

package rules

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pkt describes a test packet: hook, protocol name, "addr:port" or "addr"
// endpoints and interfaces. icmp is "type/code".
type pkt struct {
	hook     Hook
	proto    string
	src, dst string
	icmp     string
	in, out  string
	flags    uint8
}

func (s pkt) packet(t testing.TB) Packet {
	t.Helper()
	p := Packet{Hook: s.hook, InIface: s.in, OutIface: s.out, TCPFlags: s.flags, TTL: 64}
	if v, ok := protoNames[s.proto]; ok {
		p.Proto = v
	} else if n, err := strconv.Atoi(s.proto); err == nil {
		p.Proto = uint8(n)
	} else {
		t.Fatalf("proto %q", s.proto)
	}
	endpoint := func(s string) ([16]byte, uint16, Family) {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			ap = netip.AddrPortFrom(netip.MustParseAddr(s), 0)
		}
		fam := FamilyIPv6
		if ap.Addr().Is4() {
			fam = FamilyIPv4
		}
		return ap.Addr().As16(), ap.Port(), fam
	}
	p.Src, p.SrcPort, p.Family = endpoint(s.src)
	p.Dst, p.DstPort, _ = endpoint(s.dst)
	if s.icmp != "" {
		ty, code, _ := strings.Cut(s.icmp, "/")
		tv, _ := strconv.Atoi(ty)
		cv, _ := strconv.Atoi(code)
		p.ICMPType, p.ICMPCode = uint8(tv), uint8(cv)
	}
	return p
}

// allowState is a Stateful that allows the rules it holds and records
// nothing, so that it does not allocate.
type allowState struct{ allow []bool }

func (s *allowState) Allow(rule int, _ *Packet) bool { return s.allow[rule] }

func newAllowState(p *Policy, names ...string) *allowState {
	s := &allowState{allow: make([]bool, len(p.Rules()))}
	for _, n := range names {
		for i, r := range p.Rules() {
			if r.Name == n {
				s.allow[i] = true
			}
		}
	}
	return s
}

// loadExample loads and compiles rules/examples/name.
func loadExample(t testing.TB, name string) *Policy {
	t.Helper()
	c, err := Load(filepath.Join("examples", name))
	return mustCompile(t, c, err)
}

// compileYAML parses yml as the file name and compiles it.
func compileYAML(t testing.TB, name, yml string) *Policy {
	t.Helper()
	c, err := Parse(name, []byte(yml))
	return mustCompile(t, c, err)
}

// mustCompile compiles c; err (from reading c) or a compile error fails
// the test.
func mustCompile(t testing.TB, c *Config, err error) *Policy {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// forwardRuleNames are the names of p's forward chain rules, in order.
func forwardRuleNames(p *Policy) []string {
	var names []string
	for _, r := range p.Rules() {
		if r.Hook == HookForward {
			names = append(names, r.Name)
		}
	}
	return names
}

// evalCase is a packet and the rule it must hit ("" = none: the chain
// policy applies). allow names the stateful rules the engine allows.
type evalCase struct {
	name  string
	pkt   pkt
	allow []string
	want  string
}

const (
	syn = 0x02
	in  = HookInput
	fwd = HookForward
	out = HookOutput
)

var evalCases = map[string][]evalCase{
	"desktop.yaml": {
		{"ssh in", pkt{hook: in, proto: "tcp", src: "198.51.100.1:40000", dst: "192.0.2.1:22", in: "eth0", flags: syn}, nil, ""},
		{"udp in", pkt{hook: in, proto: "udp", src: "198.51.100.1:53", dst: "192.0.2.1:5353", in: "eth0"}, nil, ""},
		{"ping6 in", pkt{hook: in, proto: "icmpv6", src: "2001:db8::1", dst: "2001:db8::2", icmp: "128/0", in: "eth0"}, nil, ""},
		{"anything out", pkt{hook: out, proto: "tcp", src: "192.0.2.1:40000", dst: "198.51.100.1:443", out: "eth0", flags: syn}, nil, ""},
	},
	"client-only.yaml": {
		{"ssh in", pkt{hook: in, proto: "tcp", src: "198.51.100.1:40000", dst: "192.0.2.1:22", in: "eth0", flags: syn}, nil, ""},
		{"dns out", pkt{hook: out, proto: "udp", src: "192.0.2.1:40000", dst: "198.51.100.1:53", out: "eth0"}, nil, ""},
	},
	"server.yaml": {
		{"ssh", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:22", in: "veth-sg", flags: syn}, nil, "ssh"},
		{"https", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:443", in: "veth-sg", flags: syn}, nil, "web"},
		{"http over ipv6", pkt{hook: in, proto: "tcp", src: "[2001:db8::1]:40000", dst: "[2001:db8::2]:80", in: "veth-sg", flags: syn}, nil, "web"},
		{"dns udp", pkt{hook: in, proto: "udp", src: "10.99.1.2:40000", dst: "10.99.2.2:53", in: "veth-sg"}, nil, "dns-udp"},
		{"dns tcp", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:53", in: "veth-sg", flags: syn}, nil, "dns-tcp"},
		{"ssh on another interface is closed", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:22", in: "eth9", flags: syn}, nil, "closed-tcp"},
		{"closed tcp port", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:23", in: "veth-sg", flags: syn}, nil, "closed-tcp"},
		{"closed udp port", pkt{hook: in, proto: "udp", src: "10.99.1.2:40000", dst: "10.99.2.2:123", in: "veth-sg"}, nil, "closed-udp"},
		{"closed udp port over ipv6", pkt{hook: in, proto: "udp", src: "[2001:db8::1]:40000", dst: "[2001:db8::2]:9", in: "veth-sg"}, nil, "closed-udp6"},
		{"ping", pkt{hook: in, proto: "icmp", src: "10.99.1.2", dst: "10.99.2.2", icmp: "8/0", in: "veth-sg"}, nil, "ping"},
		{"ping6", pkt{hook: in, proto: "icmpv6", src: "2001:db8::1", dst: "2001:db8::2", icmp: "128/0", in: "veth-sg"}, nil, "ping6"},
		{"icmp timestamp falls to the policy", pkt{hook: in, proto: "icmp", src: "10.99.1.2", dst: "10.99.2.2", icmp: "13/0", in: "veth-sg"}, nil, ""},
		{"gre falls to the policy", pkt{hook: in, proto: "47", src: "10.99.1.2", dst: "10.99.2.2", in: "veth-sg"}, nil, ""},
		{"output is open", pkt{hook: out, proto: "tcp", src: "10.99.2.2:40000", dst: "10.99.1.2:22", out: "veth-sg", flags: syn}, nil, ""},
	},
	"ipv6-host.yaml": {
		{"ping6", pkt{hook: in, proto: "icmpv6", src: "2001:db8::1", dst: "2001:db8::2", icmp: "128/0", in: "veth-sg"}, nil, "ping6"},
		{"ping", pkt{hook: in, proto: "icmp", src: "10.99.1.2", dst: "10.99.2.2", icmp: "8/0", in: "veth-sg"}, nil, "ping"},
		{"dhcpv6 reply from link-local", pkt{hook: in, proto: "udp", src: "[fe80::1]:547", dst: "[fe80::2]:546", in: "veth-sg"}, nil, "dhcpv6-client"},
		{"dhcpv6 from a global address", pkt{hook: in, proto: "udp", src: "[2001:db8::1]:547", dst: "[fe80::2]:546", in: "veth-sg"}, nil, "reject6"},
		{"dhcpv6 port over ipv4", pkt{hook: in, proto: "udp", src: "10.99.1.2:547", dst: "10.99.2.2:546", in: "veth-sg"}, nil, ""},
		{"ssh over ipv6", pkt{hook: in, proto: "tcp", src: "[2001:db8::1]:40000", dst: "[2001:db8::2]:22", in: "veth-sg", flags: syn}, nil, "ssh"},
		{"closed tcp over ipv6 is reset", pkt{hook: in, proto: "tcp", src: "[2001:db8::1]:40000", dst: "[2001:db8::2]:80", in: "veth-sg", flags: syn}, nil, "closed-tcp6"},
		{"closed udp over ipv6 is prohibited", pkt{hook: in, proto: "udp", src: "[2001:db8::1]:40000", dst: "[2001:db8::2]:9", in: "veth-sg"}, nil, "reject6"},
		{"closed over ipv4 is dropped", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:80", in: "veth-sg", flags: syn}, nil, ""},
	},
	"portscan.yaml": {
		{"ssh from a clean source", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:22", in: "veth-sg", flags: syn}, []string{"closed-tcp", "closed-udp"}, "ssh"},
		{"ssh from a recent scanner looks closed", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:22", in: "veth-sg", flags: syn}, []string{"scanner-tcp", "closed-tcp"}, "scanner-tcp"},
		{"dns from a recent udp scanner looks closed", pkt{hook: in, proto: "udp", src: "10.99.1.2:40000", dst: "10.99.2.2:53", in: "veth-sg"}, []string{"scanner-udp", "closed-udp"}, "scanner-udp"},
		{"tcp scanner list does not touch udp", pkt{hook: in, proto: "udp", src: "10.99.1.2:40000", dst: "10.99.2.2:53", in: "veth-sg"}, []string{"scanner-tcp"}, "dns"},
		{"closed tcp port puts the source on the list", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:23", in: "veth-sg", flags: syn}, []string{"closed-tcp"}, "closed-tcp"},
		{"closed udp port puts the source on the list", pkt{hook: in, proto: "udp", src: "10.99.1.2:40000", dst: "10.99.2.2:9", in: "veth-sg"}, []string{"closed-udp"}, "closed-udp"},
		{"ping", pkt{hook: in, proto: "icmp", src: "10.99.1.2", dst: "10.99.2.2", icmp: "8/0", in: "veth-sg"}, nil, "ping"},
		{"ping6", pkt{hook: in, proto: "icmpv6", src: "2001:db8::1", dst: "2001:db8::2", icmp: "128/0", in: "veth-sg"}, nil, "ping6"},
		{"closed udp port over ipv6 puts the source on the list", pkt{hook: in, proto: "udp", src: "[2001:db8::1]:40000", dst: "[2001:db8::2]:9", in: "veth-sg"}, []string{"closed-udp6"}, "closed-udp6"},
		{"without state the recent rules never match", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:23", in: "veth-sg", flags: syn}, nil, ""},
	},
	"ssh-guard.yaml": {
		{"ssh within the limits", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:22", in: "veth-sg", flags: syn}, []string{"ssh"}, "ssh"},
		{"web", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:80", in: "veth-sg", flags: syn}, []string{"ssh"}, "web-dns-tcp"},
		{"closed tcp port", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:8080", in: "veth-sg", flags: syn}, []string{"ssh"}, "closed-tcp"},
		{"closed udp port over ipv6", pkt{hook: in, proto: "udp", src: "[2001:db8::1]:40000", dst: "[2001:db8::2]:9", in: "veth-sg"}, nil, "closed-udp6"},
	},
	"knock.yaml": {
		{"ssh after a complete knock", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:22", in: "veth-sg", flags: syn}, []string{"ssh-knocked"}, "ssh-knocked"},
		{"ssh without a knock", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:22", in: "veth-sg", flags: syn}, nil, ""},
		{"a knock itself is not admitted", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:7000", in: "veth-sg", flags: syn}, []string{"ssh-knocked"}, ""},
	},
	"ftp-client.yaml": {
		{"control connection out", pkt{hook: out, proto: "tcp", src: "10.99.2.2:40000", dst: "10.99.1.2:21", out: "veth-sg", flags: syn}, nil, "ftp-control"},
		{"other connections out fall to the drop policy", pkt{hook: out, proto: "tcp", src: "10.99.2.2:40000", dst: "10.99.1.2:22", out: "veth-sg", flags: syn}, nil, ""},
		{"nothing new in", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:22", in: "veth-sg", flags: syn}, nil, ""},
	},
	"ftp-server.yaml": {
		{"control connection", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:21", in: "veth-sg", flags: syn}, nil, "ftp-control"},
		{"control over ipv6", pkt{hook: in, proto: "tcp", src: "[2001:db8::1]:40000", dst: "[2001:db8::2]:21", in: "veth-sg", flags: syn}, nil, "ftp-control"},
		{"passive data port is not opened by a rule", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40001", dst: "10.99.2.2:30000", in: "veth-sg", flags: syn}, nil, "closed-tcp"},
		{"closed udp port", pkt{hook: in, proto: "udp", src: "10.99.1.2:40001", dst: "10.99.2.2:9", in: "veth-sg"}, nil, "closed-udp"},
		{"ping falls to the drop policy", pkt{hook: in, proto: "icmp", src: "10.99.1.2", dst: "10.99.2.2", icmp: "8/0", in: "veth-sg"}, nil, ""},
		{"active data connection out", pkt{hook: out, proto: "tcp", src: "10.99.2.2:20", dst: "10.99.1.2:40002", out: "veth-sg", flags: syn}, nil, ""},
	},
	"nat-gateway.yaml": {
		{"lan goes out", pkt{hook: fwd, proto: "tcp", src: "10.99.2.2:40000", dst: "198.51.100.1:6667", in: "veth-gs", out: "veth-gc", flags: syn}, nil, "lan-out"},
		{"lan udp goes out", pkt{hook: fwd, proto: "udp", src: "10.99.2.2:40000", dst: "198.51.100.1:5000", in: "veth-gs", out: "veth-gc"}, nil, "lan-out"},
		{"guest https", pkt{hook: fwd, proto: "tcp", src: "10.99.3.5:40000", dst: "198.51.100.1:443", in: "veth-guest0", out: "veth-gc", flags: syn}, nil, "guest-tcp"},
		{"guest msn, last of the multiport list", pkt{hook: fwd, proto: "tcp", src: "10.99.3.5:40000", dst: "198.51.100.1:1863", in: "veth-guest1", out: "veth-gc", flags: syn}, nil, "guest-tcp"},
		{"guest https over ipv6", pkt{hook: fwd, proto: "tcp", src: "[fd99:3::5]:40000", dst: "[2001:db8::1]:443", in: "veth-guest0", out: "veth-gc", flags: syn}, nil, "guest-tcp"},
		{"guest irc falls to the reject policy", pkt{hook: fwd, proto: "tcp", src: "10.99.3.5:40000", dst: "198.51.100.1:6667", in: "veth-guest0", out: "veth-gc", flags: syn}, nil, ""},
		{"guest irc over ipv6 is prohibited", pkt{hook: fwd, proto: "tcp", src: "[fd99:3::5]:40000", dst: "[2001:db8::1]:6667", in: "veth-guest0", out: "veth-gc", flags: syn}, nil, "refused6"},
		{"guest dns", pkt{hook: fwd, proto: "udp", src: "10.99.3.5:40000", dst: "198.51.100.1:53", in: "veth-guest0", out: "veth-gc"}, nil, "guest-udp"},
		{"guest ntp falls to the reject policy", pkt{hook: fwd, proto: "udp", src: "10.99.3.5:40000", dst: "198.51.100.1:123", in: "veth-guest0", out: "veth-gc"}, nil, ""},
		{"guest ping falls to the reject policy", pkt{hook: fwd, proto: "icmp", src: "10.99.3.5", dst: "198.51.100.1", icmp: "8/0", in: "veth-guest0", out: "veth-gc"}, nil, ""},
		{"port forward 22 after dnat", pkt{hook: fwd, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:22", in: "veth-gc", out: "veth-gs", flags: syn}, nil, "ssh-fwd"},
		{"port forward 8000 after dnat to 80", pkt{hook: fwd, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:80", in: "veth-gc", out: "veth-gs", flags: syn}, nil, "web-fwd"},
		{"forward to another lan host", pkt{hook: fwd, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.3:22", in: "veth-gc", out: "veth-gs", flags: syn}, nil, ""},
		{"forward to another port", pkt{hook: fwd, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:443", in: "veth-gc", out: "veth-gs", flags: syn}, nil, ""},
		{"udp from the uplink", pkt{hook: fwd, proto: "udp", src: "10.99.1.2:40000", dst: "10.99.2.2:22", in: "veth-gc", out: "veth-gs"}, nil, ""},
		{"ssh to the gateway from the lan", pkt{hook: in, proto: "tcp", src: "10.99.2.2:40000", dst: "10.99.2.1:22", in: "veth-gs", flags: syn}, nil, "ssh"},
		{"dns to the gateway from guests", pkt{hook: in, proto: "udp", src: "10.99.3.5:40000", dst: "10.99.3.1:53", in: "veth-guest0"}, nil, "dns"},
		{"dns to the gateway from the uplink", pkt{hook: in, proto: "udp", src: "10.99.1.2:40000", dst: "10.99.1.1:53", in: "veth-gc"}, nil, "dns"},
		{"closed port of the gateway", pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.1.1:443", in: "veth-gc", flags: syn}, nil, "closed-tcp"},
		{"ping6 to the gateway", pkt{hook: in, proto: "icmpv6", src: "2001:db8::1", dst: "2001:db8::2", icmp: "128/0", in: "veth-gc"}, nil, "ping6"},
	},
}

func TestEvalExamples(t *testing.T) {
	for file, cases := range evalCases {
		p := loadExample(t, file)
		for _, tc := range cases {
			t.Run(file+"/"+tc.name, func(t *testing.T) {
				pk := tc.pkt.packet(t)
				var st Stateful
				if tc.allow != nil {
					st = newAllowState(p, tc.allow...)
				}
				got := p.Eval(&pk, st)
				name := ""
				if got >= 0 {
					name = p.Rules()[got].Name
					if h := p.Rules()[got].Hook; h != pk.Hook {
						t.Errorf("rule %q of hook %s matched a %s packet", name, h, pk.Hook)
					}
				}
				if name != tc.want {
					t.Errorf("Eval = %d (%q), want %q", got, name, tc.want)
				}
			})
		}
	}
}

func TestEvalVerdicts(t *testing.T) {
	// What the server's rules and policies answer, as setup 2 asks.
	p := loadExample(t, "server.yaml")
	byName := map[string]CompiledRule{}
	for _, r := range p.Rules() {
		byName[r.Name] = r
	}
	for _, tc := range []struct {
		name   string
		got    [2]any
		action Action
		reject RejectKind
	}{
		{"ssh", [2]any{byName["ssh"].Action, byName["ssh"].RejectWith}, ActionAccept, RejectNone},
		{"closed tcp", [2]any{byName["closed-tcp"].Action, byName["closed-tcp"].RejectWith}, ActionReject, RejectTCPReset},
		{"closed udp", [2]any{byName["closed-udp"].Action, byName["closed-udp"].RejectWith}, ActionReject, RejectICMPPortUnreachable},
		{"input policy", [2]any{p.Chain(HookInput).Action, p.Chain(HookInput).RejectWith}, ActionReject, RejectICMPProtoUnreachable},
		{"output policy", [2]any{p.Chain(HookOutput).Action, p.Chain(HookOutput).RejectWith}, ActionAccept, RejectNone},
		{"forward policy", [2]any{p.Chain(HookForward).Action, p.Chain(HookForward).RejectWith}, ActionDrop, RejectNone},
	} {
		if tc.got != [2]any{tc.action, tc.reject} {
			t.Errorf("%s: got %v %v, want %v %v", tc.name, tc.got[0], tc.got[1], tc.action, tc.reject)
		}
	}
	// Rule ids: input, forward, output rules in file order.
	var names []string
	for _, r := range p.Rules() {
		names = append(names, r.Name)
	}
	if got, want := strings.Join(names, ","), "ssh,web,dns-udp,dns-tcp,ping,ping6,closed-tcp,closed-udp6,closed-udp"; got != want {
		t.Errorf("rule order %s, want %s", got, want)
	}
}

func TestEvalStatefulOrder(t *testing.T) {
	// Allow is consulted only for stateful rules whose static match
	// succeeded, in order, until one allows.
	p := loadExample(t, "portscan.yaml")
	rec := &recordState{allow: map[string]bool{"closed-tcp": true}, p: p}
	pk := pkt{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:23", in: "veth-sg", flags: syn}.packet(t)
	p.Eval(&pk, rec)
	if got, want := strings.Join(rec.calls, ","), "scanner-tcp,closed-tcp"; got != want {
		t.Errorf("Allow calls %s, want %s", got, want)
	}
}

type recordState struct {
	p     *Policy
	allow map[string]bool
	calls []string
}

func (s *recordState) Allow(rule int, _ *Packet) bool {
	n := s.p.Rules()[rule].Name
	s.calls = append(s.calls, n)
	return s.allow[n]
}

func TestEvalOddPackets(t *testing.T) {
	p := loadExample(t, "server.yaml")
	for _, pk := range []Packet{
		{Hook: NumHooks, Family: FamilyIPv4, Proto: 6},
		{Hook: HookInput, Family: FamilyAny, Proto: 6},
		{Hook: HookInput, Family: 5, Proto: 255},
	} {
		if got := p.Eval(&pk, nil); got != -1 {
			t.Errorf("Eval(%+v) = %d, want -1", pk, got)
		}
	}
	if got := p.Chain(NumHooks).Action; got != ActionDrop {
		t.Errorf("Chain(unknown hook) = %v, want drop", got)
	}
}

func TestEvalAllocs(t *testing.T) {
	for file, cases := range evalCases {
		p := loadExample(t, file)
		for _, tc := range cases {
			pk := tc.pkt.packet(t)
			st := newAllowState(p, tc.allow...)
			if n := testing.AllocsPerRun(100, func() { p.Eval(&pk, st) }); n != 0 {
				t.Errorf("%s/%s: %v allocations per Eval", file, tc.name, n)
			}
		}
	}
}

// BenchmarkEval evaluates typical packets against the setup-2 server
// policy: an https SYN (second rule), a closed port (seventh), a DNS query,
// a ping and an IPv6 ssh SYN.
func BenchmarkEval(b *testing.B) {
	p := loadExample(b, "server.yaml")
	var pkts []Packet
	for _, s := range []pkt{
		{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:443", in: "veth-sg", flags: syn},
		{hook: in, proto: "tcp", src: "10.99.1.2:40000", dst: "10.99.2.2:23", in: "veth-sg", flags: syn},
		{hook: in, proto: "udp", src: "10.99.1.2:40000", dst: "10.99.2.2:53", in: "veth-sg"},
		{hook: in, proto: "icmp", src: "10.99.1.2", dst: "10.99.2.2", icmp: "8/0", in: "veth-sg"},
		{hook: in, proto: "tcp", src: "[2001:db8::1]:40000", dst: "[2001:db8::2]:22", in: "veth-sg", flags: syn},
	} {
		pkts = append(pkts, s.packet(b))
	}
	for _, tc := range []struct {
		name string
		pkt  *Packet
	}{
		{"https", &pkts[0]}, {"closed-tcp", &pkts[1]}, {"dns", &pkts[2]}, {"ping", &pkts[3]}, {"ssh6", &pkts[4]},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Eval(tc.pkt, nil)
			}
		})
	}
	b.Run("mix", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			p.Eval(&pkts[i%len(pkts)], nil)
			i++
		}
	})
}

// BenchmarkEvalLarge: 200 rules, the match at the end, sets of every shape.
func BenchmarkEvalLarge(b *testing.B) {
	var rs []Rule
	for i := range 199 {
		rs = append(rs, Rule{
			Name: "r" + strconv.Itoa(i), Proto: 6, Action: ActionAccept,
			Src:   prefixes("10."+strconv.Itoa(i)+".0.0/16", "192.168."+strconv.Itoa(i)+".0/24"),
			DPort: []PortRange{{uint16(1000 + i), uint16(1000 + i)}},
		})
	}
	rs = append(rs, Rule{Name: "last", Proto: 6, DPort: []PortRange{{443, 443}}, Action: ActionAccept})
	p, err := Compile(&Config{Input: Chain{Rules: rs}})
	if err != nil {
		b.Fatal(err)
	}
	pk := pkt{hook: in, proto: "tcp", src: "198.51.100.1:40000", dst: "192.0.2.1:443", in: "eth0", flags: syn}.packet(b)
	b.ReportAllocs()
	for b.Loop() {
		if p.Eval(&pk, nil) != 199 {
			b.Fatal("wrong rule")
		}
	}
}

// BenchmarkPolicyScale compiles policies of 10, 100 and 1,000 rules (each
// with its own source networks and port) and evaluates a packet that
// matches the last rule and one that matches none: the compiled lookup
// shapes keep the per-packet cost from growing with the rule count.
func BenchmarkPolicyScale(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		var rs []Rule
		for i := range n - 1 {
			rs = append(rs, Rule{
				Name: "r" + strconv.Itoa(i), Proto: 6, Action: ActionAccept,
				Src:   prefixes(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), fmt.Sprintf("172.16.%d.%d/32", i/256, i%256)),
				DPort: []PortRange{{uint16(1000 + i), uint16(1000 + i)}},
			})
		}
		rs = append(rs, Rule{Name: "last", Proto: 6, DPort: []PortRange{{443, 443}}, Action: ActionAccept})
		cfg := &Config{Input: Chain{Rules: rs}}
		b.Run(fmt.Sprintf("rules=%d/compile", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
		p, err := Compile(cfg)
		if err != nil {
			b.Fatal(err)
		}
		last := pkt{hook: in, proto: "tcp", src: "198.51.100.1:40000", dst: "192.0.2.1:443", in: "eth0", flags: syn}.packet(b)
		none := pkt{hook: in, proto: "tcp", src: "198.51.100.1:40000", dst: "192.0.2.1:23", in: "eth0", flags: syn}.packet(b)
		for _, c := range []struct {
			name string
			pk   *Packet
			want int
		}{{"last-rule", &last, n - 1}, {"no-rule", &none, -1}} {
			b.Run(fmt.Sprintf("rules=%d/eval-%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if got := p.Eval(c.pk, nil); got != c.want {
						b.Fatalf("Eval = %d, want %d", got, c.want)
					}
				}
			})
		}
	}
}

// TestPortIndexDecidesAsTheScan compiles policies long enough to get a
// destination-port index (single ports, lists, ranges, overlapping ranges,
// rules of any port, TCP and UDP mixed) and checks that every packet gets
// the rule a plain scan of the candidates finds.
func TestPortIndexDecidesAsTheScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		var rs []Rule
		for i := range 40 + rng.IntN(40) {
			r := Rule{Name: fmt.Sprintf("r%d", i), Proto: []uint8{6, 17}[rng.IntN(2)], Action: ActionAccept}
			switch rng.IntN(5) {
			case 0: // any port
			case 1:
				p := uint16(rng.IntN(64))
				r.DPort = []PortRange{{p, p}}
			case 2:
				a, b := uint16(rng.IntN(64)), uint16(rng.IntN(64))
				r.DPort = []PortRange{{a, a}, {b, b}}
			case 3:
				a := uint16(rng.IntN(64))
				r.DPort = []PortRange{{a, a + uint16(rng.IntN(8))}, {a + 2, a + 4}}
			case 4:
				r.DPort = []PortRange{{0, 1000}} // wider than portIndexSpan
			}
			if rng.IntN(3) == 0 {
				r.Src = prefixes(fmt.Sprintf("10.0.%d.0/24", rng.IntN(4)))
			}
			rs = append(rs, r)
		}
		p, err := Compile(&Config{Input: Chain{Rules: rs}})
		if err != nil {
			t.Fatal(err)
		}
		if p.ports[HookInput][0][6] == nil && p.ports[HookInput][0][17] == nil {
			t.Fatalf("round %d: no index built", round)
		}
		scan := *p
		scan.ports = [NumHooks][2][256]*portIndex{}
		for port := range 80 {
			for _, proto := range []string{"tcp", "udp"} {
				for src := range 5 {
					pk := pkt{hook: in, proto: proto, src: fmt.Sprintf("10.0.%d.1:40000", src), dst: fmt.Sprintf("192.0.2.1:%d", port), in: "eth0", flags: syn}.packet(t)
					if got, want := p.Eval(&pk, nil), scan.Eval(&pk, nil); got != want {
						t.Fatalf("round %d, %s port %d from 10.0.%d.1: indexed Eval = %d, scan = %d", round, proto, port, src, got, want)
					}
				}
			}
		}
	}
}

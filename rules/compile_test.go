package rules

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func addr16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestAddrSetShapes(t *testing.T) {
	hosts := make([]string, 10)
	for i := range hosts {
		hosts[i] = netip.AddrFrom4([4]byte{10, 0, 0, byte(i * 2)}).String() + "/32"
	}
	nets := make([]string, 10)
	for i := range nets {
		nets[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i * 2), 0, 0}), 16).String()
	}
	for _, tc := range []struct {
		name     string
		prefixes []netip.Prefix
		fam      Family
		kind     addrKind
		in, out  []string
	}{
		{"empty matches anything", nil, FamilyIPv4, addrAny, []string{"1.2.3.4"}, nil},
		{"one prefix", prefixes("10.0.0.0/8"), FamilyIPv4, addrOne,
			[]string{"10.0.0.0", "10.255.255.255", "10.1.2.3"}, []string{"9.255.255.255", "11.0.0.0"}},
		{"adjacent halves merge into one span", prefixes("10.0.0.0/25", "10.0.0.128/25"), FamilyIPv4, addrOne,
			[]string{"10.0.0.0", "10.0.0.127", "10.0.0.128", "10.0.0.255"}, []string{"10.0.1.0"}},
		{"contained prefix merges", prefixes("10.0.0.0/8", "10.1.0.0/16"), FamilyIPv4, addrOne, []string{"10.1.2.3"}, []string{"11.0.0.1"}},
		{"few prefixes scan", prefixes("10.0.0.0/8", "192.168.1.5/32", "172.16.0.0/12"), FamilyIPv4, addrLinear,
			[]string{"192.168.1.5", "172.31.255.255", "10.9.9.9"}, []string{"192.168.1.6", "172.32.0.0"}},
		{"many hosts use a map", prefixes(hosts...), FamilyIPv4, addrHosts,
			[]string{"10.0.0.0", "10.0.0.2", "10.0.0.18"}, []string{"10.0.0.1", "10.0.0.19", "10.0.0.20"}},
		{"many networks use sorted spans", prefixes(nets...), FamilyIPv4, addrSorted,
			[]string{"10.0.0.0", "10.0.255.255", "10.18.7.7", "10.8.0.1"}, []string{"9.9.9.9", "10.1.0.0", "10.19.0.0", "10.20.0.0", "255.255.255.255"}},
		{"ipv4 whole space", prefixes("0.0.0.0/0"), FamilyIPv4, addrOne, []string{"0.0.0.0", "255.255.255.255"}, nil},
		{"ipv6 whole space", prefixes("::/0"), FamilyIPv6, addrOne, []string{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, nil},
		{"ipv6 /64 and /127", prefixes("2001:db8:0:1::/64", "2001:db8::/127"), FamilyIPv6, addrLinear,
			[]string{"2001:db8:0:1:ffff:ffff:ffff:ffff", "2001:db8::1"}, []string{"2001:db8::2", "2001:db8:0:2::"}},
		{"mixed families keep their own", prefixes("10.0.0.0/8", "2001:db8::/32"), FamilyIPv6, addrOne,
			[]string{"2001:db8::5"}, []string{"2001:db9::"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := newAddrSet(tc.prefixes, tc.fam)
			if !ok {
				t.Fatal("set unusable")
			}
			if s.kind != tc.kind {
				t.Errorf("kind = %d, want %d", s.kind, tc.kind)
			}
			for _, a := range tc.in {
				if b := addr16(a); !s.contains(&b) {
					t.Errorf("%s not matched", a)
				}
			}
			for _, a := range tc.out {
				if b := addr16(a); s.contains(&b) {
					t.Errorf("%s matched", a)
				}
			}
		})
	}
	if _, ok := newAddrSet(prefixes("2001:db8::/32"), FamilyIPv4); ok {
		t.Error("IPv6-only set is usable for IPv4")
	}
}

func TestPortSetShapes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ranges  []PortRange
		kind    portKind
		in, out []uint16
	}{
		{"empty matches anything", nil, portAny, []uint16{0, 1, 65535}, nil},
		{"one port", []PortRange{{22, 22}}, portOne, []uint16{22}, []uint16{21, 23}},
		{"one range", []PortRange{{1024, 65535}}, portOne, []uint16{1024, 65535}, []uint16{1023, 0}},
		{"touching ranges merge", []PortRange{{11, 20}, {1, 10}}, portOne, []uint16{1, 20}, []uint16{21}},
		{"short list", []PortRange{{443, 443}, {22, 22}, {80, 80}, {8000, 8100}}, portList,
			[]uint16{22, 80, 443, 8000, 8050, 8100}, []uint16{21, 81, 7999, 8101}},
		{"many use a bitmap", []PortRange{{22, 22}, {25, 25}, {53, 53}, {80, 80}, {110, 110}, {143, 143},
			{443, 443}, {465, 465}, {587, 587}, {993, 993}, {995, 995}, {8000, 8100}, {65535, 65535}}, portBitmap,
			[]uint16{22, 25, 995, 8000, 8100, 65535}, []uint16{0, 21, 23, 994, 7999, 8101, 65534}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newPortSet(tc.ranges)
			if s.kind != tc.kind {
				t.Errorf("kind = %d, want %d", s.kind, tc.kind)
			}
			for _, p := range tc.in {
				if !s.contains(p) {
					t.Errorf("port %d not matched", p)
				}
			}
			for _, p := range tc.out {
				if s.contains(p) {
					t.Errorf("port %d matched", p)
				}
			}
		})
	}
}

func TestIfaceSet(t *testing.T) {
	s := newIfaceSet([]string{"eth+", "veth-gs"})
	for name, want := range map[string]bool{
		"eth0": true, "eth": true, "eth1.100": true, "veth-gs": true,
		"veth-gs0": false, "et": false, "wlan0": false, "": false,
	} {
		if got := s.contains(name); got != want {
			t.Errorf("contains(%q) = %v, want %v", name, got, want)
		}
	}
	if any := newIfaceSet(nil); !any.contains("") || !any.contains("eth0") {
		t.Error("empty interface set does not match everything")
	}
	// Negated names: none of them, and one of the others when there are any.
	for _, tt := range []struct {
		set  []string
		want map[string]bool
	}{
		{[]string{"!ppp0"}, map[string]bool{"eth0": true, "ppp0": false, "ppp1": true, "": false}},
		{[]string{"!ppp+", "!wg0"}, map[string]bool{"eth0": true, "ppp7": false, "wg0": false}},
		{[]string{"eth+", "!eth3"}, map[string]bool{"eth0": true, "eth3": false, "wlan0": false}},
	} {
		s := newIfaceSet(tt.set)
		for name, want := range tt.want {
			if got := s.contains(name); got != want {
				t.Errorf("%v contains(%q) = %v, want %v", tt.set, name, got, want)
			}
		}
	}
}

func TestCandidates(t *testing.T) {
	c := &Config{Input: Chain{Rules: []Rule{
		{Name: "tcp", Proto: 6, Action: ActionAccept},
		{Name: "any", Action: ActionAccept},
		{Name: "udp6", Proto: 17, Family: FamilyIPv6, Action: ActionAccept},
		{Name: "v6-src", Src: prefixes("2001:db8::/32"), Action: ActionAccept},
		{Name: "icmp", Proto: 1, Action: ActionAccept},
	}}, Output: Chain{Rules: []Rule{{Name: "out", Action: ActionAccept}}}}
	p, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	names := func(h Hook, f int, proto uint8) []string {
		var out []string
		for _, id := range p.cand[h][f][proto] {
			out = append(out, p.rules[id].Name)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		hook  Hook
		fam   int
		proto uint8
		want  []string
	}{
		{"ipv4 tcp", HookInput, 0, 6, []string{"tcp", "any"}},
		{"ipv4 udp skips the ipv6 rules", HookInput, 0, 17, []string{"any"}},
		{"ipv6 udp", HookInput, 1, 17, []string{"any", "udp6", "v6-src"}},
		{"ipv4 icmp", HookInput, 0, 1, []string{"any", "icmp"}},
		{"icmp is ipv4 only", HookInput, 1, 1, []string{"any", "v6-src"}},
		{"ipv4 gre", HookInput, 0, 47, []string{"any"}},
		{"forward has none", HookForward, 0, 6, nil},
		{"output", HookOutput, 1, 6, []string{"out"}},
	} {
		if diff := cmp.Diff(tc.want, names(tc.hook, tc.fam, tc.proto)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestCompileHandBuilt(t *testing.T) {
	// Zero chain policies and reject kinds get Parse's defaults.
	p, err := Compile(&Config{Input: Chain{Rules: []Rule{
		{Name: "r", Proto: 6, Action: ActionReject},
		{Name: "u", Proto: 17, Action: ActionReject},
		{Name: "a", Action: ActionAccept, RejectWith: RejectTCPReset},
	}}, Forward: Chain{Policy: ActionReject}})
	if err != nil {
		t.Fatal(err)
	}
	got := []any{p.Chain(HookInput), p.Chain(HookForward), p.Chain(HookOutput),
		p.Rules()[0].RejectWith, p.Rules()[1].RejectWith, p.Rules()[2].RejectWith}
	want := []any{ChainPolicy{Action: ActionDrop}, ChainPolicy{Action: ActionReject, RejectWith: RejectICMPPortUnreachable},
		ChainPolicy{Action: ActionAccept}, RejectTCPReset, RejectICMPPortUnreachable, RejectNone}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule Rule
		want string
		err  error
	}{
		{"no action", Rule{Name: "x", Line: 3}, `compile input rule "x" (line 3): no action: bad value`, ErrBadValue},
		{"reversed range", Rule{Name: "x", Proto: 6, DPort: []PortRange{{9, 1}}, Action: ActionAccept},
			`compile input rule "x" (line 0): port range 9-1 is reversed: bad value`, ErrBadValue},
		{"tcp-reset on udp", Rule{Name: "x", Proto: 17, Action: ActionReject, RejectWith: RejectTCPReset},
			`compile input rule "x" (line 0): tcp-reset on proto udp: conflicting fields`, ErrConflict},
		{"ports on any", Rule{Name: "x", DPort: []PortRange{{1, 1}}, Action: ActionAccept},
			`compile input rule "x" (line 0): ports on proto any: conflicting fields`, ErrConflict},
		{"icmp on tcp", Rule{Name: "x", Proto: 6, ICMP: []ICMPMatch{{8, -1}}, Action: ActionAccept},
			`compile input rule "x" (line 0): icmp types on proto tcp: conflicting fields`, ErrConflict},
		{"zero prefix", Rule{Name: "x", Src: []netip.Prefix{{}}, Action: ActionAccept},
			`compile input rule "x" (line 0): invalid prefix: bad value`, ErrBadValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(&Config{Input: Chain{Rules: []Rule{tc.rule}}})
			if err == nil {
				t.Fatal("Compile succeeded")
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("%v does not wrap %v", err, tc.err)
			}
		})
	}
}

func TestHash(t *testing.T) {
	hash := func(yml string) string {
		t.Helper()
		return compileYAML(t, "a.yaml", yml).Hash()
	}
	base := hash(lines("input:", "  rules:", "    - {name: ssh, proto: tcp, dport: 22, action: accept}"))
	if len(base) != 64 {
		t.Errorf("hash %q is not hex sha256", base)
	}
	same := hash(lines("# a comment", "", "input:", "  rules:", "    - name: ssh", "      proto: tcp", "      dport: 22", "      action: accept"))
	if same != base {
		t.Error("comments and layout changed the hash")
	}
	if other := hash(lines("input:", "  rules:", "    - {name: ssh, proto: tcp, dport: 23, action: accept}")); other == base {
		t.Error("a different port kept the hash")
	}
}

package rules

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestUnknownInterfaces checks every place an interface name can appear
// against a host with lo, eth0 and veth-sg: a name that is neither a zone
// nor present is reported at its first use, with the closest zone or
// interface; interfaces.dynamic admits names that come later.
func TestUnknownInterfaces(t *testing.T) {
	present := []string{"eth0", "lo", "veth-sg"}
	const hint = "; present: eth0, lo, veth-sg; declare one that appears later (ppp0, wg0, hotplug) in interfaces.dynamic"
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"every name present", lines(
			"zones: {uplink: [veth-sg], lan: [eth0]}",
			"trusted: [lo]",
			"input:",
			"  rules:",
			"    - {in: uplink, action: accept}",
			"    - {in: eth0, action: accept}",
		), nil},
		{"typo of a zone in a rule", lines(
			"zones: {uplink: [veth-sg]}",
			"input:",
			"  rules:",
			"    - {in: uplnk, action: accept}",
		), []string{`t.yaml:4: input.rules[0].in: "uplnk" is neither a zone nor an interface present on this host (did you mean zone "uplink"?)` + hint}},
		{"typo of an interface in a zone", lines(
			"zones: {uplink: [veth-gs]}",
			"input:",
			"  rules:",
			"    - {in: uplink, action: accept}",
		), []string{`t.yaml:1: zones.uplink[0]: interface "veth-gs" is not present on this host (did you mean interface "veth-sg"?)` + hint}},
		{"undeclared zone in out", lines(
			"zones: {wan: [eth0]}",
			"forward:",
			"  rules:",
			"    - {out: lan, action: accept}",
		), []string{`t.yaml:4: forward.rules[0].out: "lan" is neither a zone nor an interface present on this host (did you mean zone "wan"?)` + hint}},
		{"undeclared zone in nat.masquerade.out", lines(
			"zones: {uplink: [eth0]}",
			"nat:",
			"  masquerade: [{out: uplnk, src: [10.0.0.0/8]}]",
		), []string{`t.yaml:3: nat.masquerade[0].out: "uplnk" is neither a zone nor an interface present on this host (did you mean zone "uplink"?)` + hint}},
		{"undeclared zone in nat.snat.out and nat.forwards.in", lines(
			"nat:",
			"  snat: [{out: wan0, to: 192.0.2.1}]",
			"  forwards: [{in: wan0, proto: tcp, port: 22, to: 10.0.0.2}]",
		), []string{`t.yaml:2: nat.snat[0].out: "wan0" is neither a zone nor an interface present on this host (also used on line 3)` + hint}},
		{"trusted interface absent", "trusted: [lo, docker0]",
			[]string{`t.yaml:1: trusted[1]: "docker0" is neither a zone nor an interface present on this host` + hint}},
		{"wildcard matching nothing", lines(
			"input:",
			"  rules:",
			`    - {in: "wlan+", action: accept}`,
		), []string{`t.yaml:3: input.rules[0].in: "wlan+" matches no interface present on this host` + hint}},
		{"wildcard matching a present interface", lines(
			"input:",
			"  rules:",
			`    - {in: "veth+", action: accept}`,
		), nil},
		{"each unknown name once", lines(
			"input:",
			"  rules:",
			"    - {in: ppp0, action: accept}",
			"    - {in: wg0, action: accept}",
			"    - {in: ppp0, action: drop}",
			"    - {in: ppp0, action: drop}",
		), []string{
			`t.yaml:3: input.rules[0].in: "ppp0" is neither a zone nor an interface present on this host (also used on line 5, 6)` + hint,
			`t.yaml:4: input.rules[1].in: "wg0" is neither a zone nor an interface present on this host` + hint,
		}},
		{"dynamic interfaces", lines(
			`interfaces: {dynamic: [ppp0, "wg+"]}`,
			"zones: {vpn: [wg0, wg1]}",
			"input:",
			"  rules:",
			"    - {in: ppp0, action: accept}",
			"    - {in: vpn, action: accept}",
			`    - {in: "wg+", action: accept}`,
		), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range c.UnknownInterfaces(present) {
				if !errors.Is(e, ErrNoInterface) {
					t.Errorf("%v does not wrap ErrNoInterface", e)
				}
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("unknown interfaces (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheckHost runs the check against this machine's real interfaces:
// loopback is everywhere, a made-up name nowhere.
func TestCheckHost(t *testing.T) {
	c, err := Parse("t.yaml", []byte(lines("input:", "  rules:", "    - {in: lo, action: accept}")))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckHost(); err != nil {
		t.Errorf("CheckHost with lo: %v", err)
	}
	c, err = Parse("t.yaml", []byte(lines("input:", "  rules:", "    - {in: nfqfw-none0, action: accept}")))
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckHost()
	if !errors.Is(err, ErrNoInterface) || !strings.Contains(err.Error(), `"nfqfw-none0" is neither a zone nor an interface present on this host`) {
		t.Errorf("CheckHost with an absent interface: %v", err)
	}
}

// TestTrustedDefault: loopback is trusted unless the file says otherwise;
// an empty list filters loopback too.
func TestTrustedDefault(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want []string
	}{
		{"input: {policy: drop}", []string{"lo"}},
		{"trusted: []", []string{}},
		{"trusted: [eth1]", []string{"eth1"}},
	} {
		c, err := Parse("t.yaml", []byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, c.Trusted); diff != "" {
			t.Errorf("%s: trusted (-want +got):\n%s", tc.yaml, diff)
		}
	}
}

// TestKnockStepsOnClosedPorts: steps may use ports the policy opens only
// to some sources, only on some interfaces, only behind a knock, or only
// toward other hosts than the sequence's target.
func TestKnockStepsOnClosedPorts(t *testing.T) {
	yml := lines(
		"knocks:",
		"  - name: k",
		"    steps: [tcp/22, tcp/80, udp/53, tcp/8080]",
		"    open: [{proto: tcp, ports: 2222}]",
		"  - name: gw",
		"    steps: [tcp/7000, tcp/8080]",
		"    dst: [10.99.2.2]",
		"    open: [{proto: tcp, ports: 22, dst: [10.99.2.2]}]",
		"input:",
		"  rules:",
		"    - {proto: tcp, dport: 22, src: 192.0.2.0/24, action: accept}",
		"    - {proto: tcp, dport: 80, in: lo, action: accept}",
		"    - {proto: udp, dport: 53, action: drop}",
		"    - {proto: tcp, dport: 8080, knock: k, action: accept}",
		"forward:",
		"  rules:",
		"    - {proto: tcp, dst: 10.99.3.0/24, dport: 8080, action: accept}",
	)
	if _, err := Parse("t.yaml", []byte(yml)); err != nil {
		t.Fatal(err)
	}
}

func TestListNames(t *testing.T) {
	var many []string
	for i := range 20 {
		many = append(many, "veth"+string(rune('a'+i)))
	}
	if got, want := listNames(many), "vetha, vethb, vethc, vethd, vethe, vethf, vethg, vethh, vethi, vethj, vethk, vethl, vethm, vethn, vetho, vethp and 4 more"; got != want {
		t.Errorf("listNames = %q, want %q", got, want)
	}
	if got := listNames([]string{"eth0", "lo"}); got != "eth0, lo" {
		t.Errorf("listNames = %q", got)
	}
}

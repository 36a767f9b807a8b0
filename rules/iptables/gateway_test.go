package iptables

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/rules"
)

// dualStackGateway is setup 8 with setup 9's IPv6 counterparts, as the
// end-to-end test runs it: two LANs and an uplink, IPv4 and IPv6, forward
// policy drop, LAN users limited to a few services (multiport), masquerade
// of both LAN subnets on the uplink, TCP and UDP port forwards, IPv6
// forwarded without NAT, rejects answered with icmp6-adm-prohibited, and the
// reverse path filter on.
func dualStackGateway() *rules.Config {
	c := base()
	c.RPFilter = true
	c.Zones = []rules.Zone{
		{Name: "lan", Interfaces: []string{"lan1", "lan2"}},
		{Name: "wan", Interfaces: []string{"wan0"}},
	}
	lanTCP := tcp("lan-tcp", 22, 25, 80, 443)
	lanTCP.In, lanTCP.Out = []string{"lan1", "lan2"}, []string{"wan0"}
	lanUDP := udp("lan-udp", 53)
	lanUDP.In, lanUDP.Out = []string{"lan1", "lan2"}, []string{"wan0"}
	ping6 := rules.Rule{Name: "ping6-in", Proto: 58, ICMP: []rules.ICMPMatch{{Type: 128, Code: -1}}, Out: []string{"lan1"}, Action: rules.ActionAccept}
	c.Forward.Policy = rules.ActionReject
	c.Forward.RejectWith = rules.RejectICMP6AdmProhibited
	c.Forward.Rules = []rules.Rule{lanTCP, lanUDP, ping6}
	c.NAT = rules.NAT{
		Masquerade: []rules.Masquerade{{Out: []string{"wan"}, Src: prefixes("10.99.11.0/24", "10.99.12.0/24")}},
		Forwards: []rules.PortForward{
			{Name: "ssh", In: []string{"wan"}, Proto: 6, Port: rules.PortRange{First: 22, Last: 22}, To: netip.MustParseAddr("10.99.11.2")},
			{Name: "web", In: []string{"wan"}, Proto: 6, Port: rules.PortRange{First: 8000, Last: 8000}, To: netip.MustParseAddr("10.99.11.2"), ToPort: 80},
			{Name: "dns", In: []string{"wan"}, Proto: 17, Port: rules.PortRange{First: 5353, Last: 5353}, To: netip.MustParseAddr("10.99.12.2"), ToPort: 53},
		},
	}
	return c
}

// gatewayGoldenCases are more golden files of TestGenerateGolden: the
// rpfilter option and a dual-stack NAT gateway.
var gatewayGoldenCases = []goldenCase{
	{
		// Setup 9's rpfilter option on a host: the raw table of both
		// families, neighbour discovery exempt in IPv6.
		name: "rpfilter",
		cfg:  func() *rules.Config { c := base(); c.RPFilter = true; return c },
	},
	{
		// rpfilter with IPv6 off: IPv4 only.
		name: "rpfilter-ipv4-only",
		cfg:  func() *rules.Config { c := base(); c.RPFilter = true; c.IPv6 = false; return c },
	},
	{name: "nat-gateway-dual-stack", cfg: dualStackGateway},
}

// TestRPFilterPlacement specifies where the reverse path filter lives: in
// the raw table (before conntrack, so a spoofed packet creates no flow),
// hooked first into PREROUTING, and nowhere when the option is off.
func TestRPFilterPlacement(t *testing.T) {
	tests := []struct {
		name string
		on   bool
		fam  rules.Family
		want []string // the raw table's lines, without the table header
	}{
		{name: "off", fam: rules.FamilyIPv4},
		{name: "off ipv6", fam: rules.FamilyIPv6},
		{name: "ipv4", on: true, fam: rules.FamilyIPv4, want: []string{
			":NFQFW-PREROUTING - [0:0]",
			`-A NFQFW-PREROUTING -m rpfilter --invert -m comment --comment "nfqfw: rpfilter spoofed source" -j DROP`,
			`-I PREROUTING 1 -j NFQFW-PREROUTING`,
		}},
		{name: "ipv6 exempts router advertisements and neighbour solicitations", on: true, fam: rules.FamilyIPv6, want: []string{
			":NFQFW-PREROUTING - [0:0]",
			`-A NFQFW-PREROUTING -p ipv6-icmp -m icmp6 --icmpv6-type 134 -m comment --comment "nfqfw: rpfilter exempts neighbour discovery" -j RETURN`,
			`-A NFQFW-PREROUTING -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m comment --comment "nfqfw: rpfilter exempts neighbour discovery" -j RETURN`,
			`-A NFQFW-PREROUTING -m rpfilter --invert -m comment --comment "nfqfw: rpfilter spoofed source" -j DROP`,
			`-I PREROUTING 1 -j NFQFW-PREROUTING`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			c.RPFilter = tt.on
			text, err := Generate(c, tt.fam)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, tableLines(text, "raw")); diff != "" {
				t.Errorf("raw table (-want +got):\n%s", diff)
			}
			if strings.Contains(text, "rpfilter") && !tt.on {
				t.Errorf("rpfilter generated while off:\n%s", text)
			}
		})
	}
}

// tableLines returns the lines of table name in restore text, without its
// header and COMMIT; nil when the table is absent.
func tableLines(text, name string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(text, "\n") {
		switch {
		case l == "*"+name:
			in = true
		case in && l == "COMMIT":
			in = false
		case in:
			out = append(out, l)
		}
	}
	return out
}

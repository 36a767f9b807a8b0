package iptables

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/rules"
)

// operatorNAT is an operator's own nat and raw rules on a gateway, in the
// chains nfqfw hooks into (nat PREROUTING and POSTROUTING, raw PREROUTING):
// nfqfw must keep them, in their order, behind its own hooks, and leave them
// exactly as found when it goes.
const operatorNAT = `*nat
:OPERATOR-DNAT - [0:0]
-A PREROUTING -i wan0 -p tcp -m tcp --dport 2222 -m comment --comment "operator forward" -j DNAT --to-destination 10.99.11.9:22
-A PREROUTING -j OPERATOR-DNAT
-A OPERATOR-DNAT -p udp -m udp --dport 9999 -j DNAT --to-destination 10.99.12.9
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A POSTROUTING -o wan0 -p udp -m udp --sport 500 -j SNAT --to-source 192.0.2.7
COMMIT
*raw
-A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp
COMMIT
*filter
-A FORWARD -d 10.99.11.9/32 -i wan0 -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
`

// operatorNAT6 is the IPv6 counterpart (no NAT66 helpers needed).
const operatorNAT6 = `*nat
-A PREROUTING -i wan0 -p tcp -m tcp --dport 2222 -j DNAT --to-destination [fd99:11::9]:22
-A POSTROUTING -s fd00:17::/64 -o wan0 -j MASQUERADE
COMMIT
*raw
-A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp
COMMIT
*filter
-A FORWARD -d fd99:11::9/128 -i wan0 -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
`

// TestGatewayRemovalKeepsOperatorRules installs the dual-stack NAT gateway
// (filter, nat with forwards and masquerade, raw with rpfilter) over an
// operator's own rules in the same built-in chains, replaces it with a
// changed port forward, then with rpfilter off, and removes it: the operator's rules stay behind
// nfqfw's hooks throughout, and afterwards every table is exactly as found.
func TestGatewayRemovalKeepsOperatorRules(t *testing.T) {
	eachBackend(t, func(t *testing.T, ns []string, b Backend) {
		inNetns(t, ns, operatorNAT, b.restore(rules.FamilyIPv4), "--noflush")
		inNetns(t, ns, operatorNAT6, b.restore(rules.FamilyIPv6), "--noflush")
		createBanSets(t, ns, families...)
		before := snapshot(t, ns, b)

		c := dualStackGateway()
		in := NewInstaller(c, b)
		if err := in.Install(ctx(t)); err != nil {
			t.Fatalf("Install: %v", err)
		}
		checkGateway(t, ns, b, c, before)

		moved := dualStackGateway()
		moved.NAT.Forwards[1].Port = rules.PortRange{First: 8080, Last: 8080}
		moved.NAT.Forwards[1].To = netip.MustParseAddr("10.99.12.2")
		if err := in.Replace(ctx(t), moved); err != nil {
			t.Fatalf("Replace: %v", err)
		}
		checkGateway(t, ns, b, moved, before)

		off := dualStackGateway()
		off.RPFilter = false
		if err := in.Replace(ctx(t), off); err != nil {
			t.Fatalf("Replace(rpfilter off): %v", err)
		}
		checkGateway(t, ns, b, off, before)
		for _, fam := range families {
			if s := inNetns(t, ns, "", b.save(fam), "-t", "raw"); strings.Contains(s, ChainPrefix) {
				t.Errorf("%s raw table still has nfqfw's rules with rpfilter off:\n%s", famName(fam), s)
			}
		}

		if err := in.Remove(ctx(t)); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if diff := cmp.Diff(before, snapshot(t, ns, b)); diff != "" {
			t.Errorf("tables after Remove differ from before Install (-want +got):\n%s", diff)
		}
	})
}

// checkGateway asserts that nfqfw's rules are those generated from c, that
// its hooks come first in nat and raw PREROUTING and nat POSTROUTING
// wherever the family has rules there (IPv6 has no NAT here), and
// that without nfqfw's lines every table is what the operator had.
func checkGateway(t *testing.T, ns []string, b Backend, c *rules.Config, before map[string]string) {
	t.Helper()
	for _, fam := range families {
		want := expected(t, c, fam)
		if diff := cmp.Diff(want, ourRules(t, ns, b, fam)); diff != "" {
			t.Errorf("%s rules (-want +got):\n%s", famName(fam), diff)
		}
		for _, tc := range []struct{ table, chain, want string }{
			{"nat", "PREROUTING", ChainPrerouting},
			{"nat", "POSTROUTING", ChainPostrouting},
			{"raw", "PREROUTING", ChainPrerouting},
		} {
			if _, ok := want[tc.table+" "+tc.want]; !ok {
				continue // nothing of this family in that table
			}
			if first := firstRule(t, ns, b, fam, tc.table, tc.chain); !strings.HasSuffix(first, "-j "+tc.want) {
				t.Errorf("%s first rule of %s %s = %q, want the jump to %s", famName(fam), tc.table, tc.chain, first, tc.want)
			}
		}
	}
	if diff := cmp.Diff(before, withoutOurs(snapshot(t, ns, b))); diff != "" {
		t.Errorf("the operator's rules changed under nfqfw (-want +got):\n%s", diff)
	}
}

// withoutOurs drops nfqfw's chain declarations and rules (its own chains'
// rules and the jumps into them) from a snapshot.
func withoutOurs(snap map[string]string) map[string]string {
	out := map[string]string{}
	for tbl, text := range snap {
		var keep []string
		for _, l := range strings.SplitAfter(text, "\n") {
			if l != "" && !strings.Contains(l, ChainPrefix) {
				keep = append(keep, l)
			}
		}
		out[tbl] = strings.Join(keep, "")
	}
	return out
}

package e2e

import (
	"net/netip"
	"testing"
	"time"
)

// TestIPv6Gateway is setup 9's IPv6 counterparts on setup 8's gateway
// (gatewayConfig): IPv6 is routed without NAT, so the LANs go out with
// their own addresses on their allowed services; the uplink opens only
// what a forward rule allows (lan1's web server, ping6 to lan1, dns on
// lan2) and is answered with icmp6-adm-prohibited otherwise; neighbour
// discovery keeps working through the drop policies and the reverse path
// filter, which drops a LAN source spoofed from the uplink. Stopping nfqfw
// leaves the gateway's tables as found.
func TestIPv6Gateway(t *testing.T) {
	requireSandbox(t)
	t.Parallel()
	var l *gatewayLab
	var spoof netip.Addr
	at := func(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

	newGatewayLab(t, func(lab *gatewayLab) {
		l = lab // the lab before nfqfw starts
		spoof = l.spoofedSource(t, gatewayLANs[0].V6)
		runBannerProbes(t, []bannerProbe{
			{name: "without nfqfw the uplink reaches lan1 ssh over IPv6", from: l.up, dst: at(l.sb.Addr6(lan1Role), 22),
				want: "lan1:22 from=" + l.sb.Addr6(uplinkRole).String()},
		})
		sendDatagram(t, l.up, spoof, at(l.sb.Addr6(lan2Role), 53), "spoofed before nfqfw")
		if !eventually(time.Second, func() bool { return l.dns2.has(spoof, "spoofed before nfqfw") }) {
			t.Fatalf("without nfqfw a spoofed IPv6 datagram did not arrive: the spoof test would prove nothing; lan2 got:\n%s", l.dns2)
		}
	})
	lan1, lan2, up := l.sb.Addr6(lan1Role), l.sb.Addr6(lan2Role), l.sb.Addr6(uplinkRole)
	gwUp := l.sb.GatewayAddr6(uplinkRole)

	runBannerProbes(t, []bannerProbe{
		// Out without NAT: the uplink sees the LAN host's own address.
		{name: "lan1 http out keeps its address", from: l.lan1, dst: at(up, 80), want: "wan:80 from=" + lan1.String()},
		{name: "lan2 https out keeps its address", from: l.lan2, dst: at(up, 443), want: "wan:443 from=" + lan2.String()},
		{name: "lan2 dns out", from: l.lan2, udp: true, dst: at(up, 53), want: "wan:53 from=" + lan2.String()},
		{name: "lan1 port not in the multiport list is reset", from: l.lan1, dst: at(up, 8080), want: string(refused),
			seen: []string{"tcp RST from " + at(up, 8080).String()}},

		// In: what a rule allows, and icmp6-adm-prohibited for the rest.
		{name: "uplink reaches lan1 web", from: l.up, dst: at(lan1, 80), want: "lan1:80 from=" + up.String()},
		{name: "uplink reaches lan2 dns", from: l.up, udp: true, dst: at(lan2, 53), want: "lan2:53 from=" + up.String()},
		{name: "uplink to lan1 ssh is adm-prohibited", from: l.up, dst: at(lan1, 22), want: string(prohibited),
			seen: []string{"icmpv6 admin-prohibited from " + gwUp.String()}},
		{name: "uplink to lan2 web is adm-prohibited", from: l.up, dst: at(lan2, 80), want: string(prohibited),
			seen: []string{"icmpv6 admin-prohibited from " + gwUp.String()}},
		// IPv6 has no port forwards here: the gateway's own port 22 is
		// its input chain's (policy drop).
		{name: "uplink to the gateway's ssh is dropped", from: l.up, dst: at(gwUp, 22), want: string(timedOut), ifSet: true},
	})

	runProbes(t, l.sb, l.lan1, []probe{
		{name: "lan1 ping6 out", kind: icmpEcho, dst: at(up, 0), want: answered},
		{name: "lan1 ping6 the gateway after flushing every neighbour cache", kind: neighPing, dst: at(l.sb.GatewayAddr6(lan1Role), 0), want: answered},
	})
	runProbes(t, l.sb, l.up, []probe{
		{name: "uplink ping6 to lan1 after flushing every neighbour cache", kind: neighPing, dst: at(lan1, 0), want: answered},
		{name: "uplink ping6 to lan2 is adm-prohibited", kind: icmpEcho, dst: at(lan2, 0), want: timedOut,
			seen: []string{"icmpv6 admin-prohibited from " + gwUp.String()}},
	})

	t.Run("rpfilter drops a lan source spoofed from the uplink", func(t *testing.T) {
		// dns6-in admits udp 53 to lan2 from the uplink: without rpfilter
		// both datagrams would arrive.
		l.checkRPFilter(t, spoof, up, at(lan2, 53))
	})

	t.Run("stop leaves the tables as found", l.stopAndCompare)
}

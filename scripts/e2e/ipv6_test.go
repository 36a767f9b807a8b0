package e2e

import (
	"net/netip"
	"testing"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// TestIPv6Host is setup 9: rules/examples/ipv6-host.yaml. Over IPv6 the
// host answers ping6 and ssh, resets closed TCP ports and rejects the rest
// with ICMPv6 administratively prohibited, which the client's sockets
// report as EACCES; the DHCPv6 client port takes replies from a link-local server on
// the host's link (the router) and nothing else; neighbour discovery keeps
// working. IPv4 keeps its drop policy.
func TestIPv6Host(t *testing.T) {
	requireSandbox(t)
	t.Parallel()
	sb := sandbox.New(t, sandbox.Options{})
	cli, gw, host := sb.NS(clientRole), sb.NS(sandbox.Gateway), sb.NS(hostRole)
	h4, h6 := sb.Addr4(hostRole), sb.Addr6(hostRole)
	c6 := sb.Addr6(clientRole)
	at := netip.AddrPortFrom
	serveTCP(t, host, 22, 8080)
	serveUDP(t, host, 546, 5353)

	fw := startFirewall(t, host, exampleConfig(t, sb, "ipv6-host.yaml"))

	runProbes(t, sb, cli, []probe{
		{name: "ping6", kind: icmpEcho, dst: at(h6, 0), want: answered},
		{name: "ssh over IPv6", kind: tcpConnect, dst: at(h6, 22), want: connected},
		{name: "other tcp port over IPv6 is reset", kind: tcpConnect, dst: at(h6, 8080), want: refused,
			seen: []string{"tcp RST from [fd99:2::2]:8080"}},
		{name: "udp over IPv6 is adm-prohibited", kind: udpQuery, dst: at(h6, 5353), want: prohibited,
			seen: []string{"icmpv6 admin-prohibited from fd99:2::2"}},
		{name: "DHCPv6 client port from a global address is adm-prohibited", kind: udpQuery,
			src: at(c6, 547), dst: at(h6, 546), want: prohibited,
			seen: []string{"icmpv6 admin-prohibited from fd99:2::2"}},
		{name: "neighbour discovery after flushing every cache", kind: neighPing, dst: at(h6, 0), want: answered},
		{name: "ping over IPv4", kind: icmpEcho, dst: at(h4, 0), want: answered},
		{name: "other tcp port over IPv4 is dropped", kind: tcpConnect, dst: at(h4, 8080), want: timedOut},
	})

	// The DHCPv6 server is the router: link-local to link-local on the
	// host's link, 547 -> 546.
	serverLL := linkLocal(t, gw, sb.GatewayLink(hostRole))
	hostLL := linkLocal(t, host, sb.Link(hostRole))
	runProbes(t, sb, gw, []probe{
		{name: "DHCPv6 reply from a link-local server", kind: udpQuery,
			src: at(serverLL, 547), dst: at(hostLL, 546), want: answered},
	})

	checkMetrics(t, fw.metrics(), map[string]float64{
		`nfqfw_packets_total{action="accept",chain="input",rule="ping6"}`:         1,
		`nfqfw_packets_total{action="accept",chain="input",rule="ssh"}`:           1,
		`nfqfw_packets_total{action="accept",chain="input",rule="dhcpv6-client"}`: 1,
		`nfqfw_packets_total{action="reject",chain="input",rule="closed-tcp6"}`:   1,
		`nfqfw_packets_total{action="reject",chain="input",rule="reject6"}`:       2,
		`nfqfw_packets_total{action="drop",chain="input",rule=""}`:                1,
	})
}

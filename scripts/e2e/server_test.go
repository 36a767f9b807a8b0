package e2e

import (
	"net/netip"
	"testing"

	"github.com/nfqfw/nfqfw/engine/control"
)

// TestServer is setup 2 of the design: rules/examples/server.yaml on a host
// with services on tcp 22, 80, 443, 8080 and udp 53, 5353. The config opens
// 22, 80, 443 and 53; the other services must look closed, the way a host
// without them answers: a TCP reset, an ICMP port unreachable (over IPv6
// ICMPv6 administratively prohibited, as guide 004's ip6tables.rules), an
// ICMP protocol unreachable for other protocols. A stray ACK is answered as its
// SYN would be (mid-stream pickup), ping and neighbour discovery work, and an established
// connection keeps talking through everything, a reload included.
func TestServer(t *testing.T) {
	sb, cli, host := newHostLab(t)
	h4, h6 := sb.Addr4(hostRole), sb.Addr6(hostRole)
	at := func(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
	serveTCP(t, host, 22, 80, 443, 8080)
	serveUDP(t, host, 53, 5353)

	// Without nfqfw the host answers a stray ACK with a reset: the
	// capture would see it, so its silence below means a drop.
	runProbes(t, sb, cli, []probe{
		{name: "without nfqfw a stray ACK is reset", kind: tcpACK, dst: at(h4, 22), want: sent, seen: []string{"tcp RST from 10.99.2.2:22"}},
		{name: "without nfqfw every service is reachable", kind: tcpConnect, dst: at(h4, 8080), want: connected},
	})

	fw := startFirewall(t, host, exampleConfig(t, sb, "server.yaml"))
	talk := converse(t, cli, at(h4, 22))

	runProbes(t, sb, cli, []probe{
		{name: "ssh", kind: tcpConnect, dst: at(h4, 22), want: connected},
		{name: "http", kind: tcpConnect, dst: at(h4, 80), want: connected},
		{name: "https", kind: tcpConnect, dst: at(h4, 443), want: connected},
		{name: "dns", kind: udpQuery, dst: at(h4, 53), want: answered},
		{name: "ping", kind: icmpEcho, dst: at(h4, 0), want: answered},
		{name: "closed tcp port is reset", kind: tcpConnect, dst: at(h4, 8080), want: refused,
			seen: []string{"tcp RST from 10.99.2.2:8080"}},
		{name: "closed udp port is port-unreachable", kind: udpQuery, dst: at(h4, 5353), want: refused,
			seen: []string{"icmp port-unreachable from 10.99.2.2"}},
		{name: "other protocol (GRE) is protocol-unreachable", kind: rawGRE, dst: at(h4, 0), want: sent,
			seen: []string{"icmp protocol-unreachable from 10.99.2.2"}},
		// A segment without SYN and without a flow is decided as its SYN
		// would be, as conntrack picks it up for the guides' rules: to an
		// open port it reaches the host, which resets it; to a closed port
		// the closed-tcp rule resets it.
		{name: "stray ACK to an open port is picked up and reset by the host", kind: tcpACK, dst: at(h4, 22), want: sent,
			seen: []string{"tcp RST from 10.99.2.2:22"}},
		{name: "stray ACK to a closed port is reset like its SYN", kind: tcpACK, dst: at(h4, 8080), want: sent,
			seen: []string{"tcp RST from 10.99.2.2:8080"}},

		{name: "ssh over IPv6", kind: tcpConnect, dst: at(h6, 22), want: connected},
		{name: "https over IPv6", kind: tcpConnect, dst: at(h6, 443), want: connected},
		{name: "ping6", kind: icmpEcho, dst: at(h6, 0), want: answered},
		{name: "closed tcp port over IPv6 is reset", kind: tcpConnect, dst: at(h6, 8080), want: refused,
			seen: []string{"tcp RST from [fd99:2::2]:8080"}},
		{name: "closed udp port over IPv6 is adm-prohibited", kind: udpQuery, dst: at(h6, 5353), want: prohibited,
			seen: []string{"icmpv6 admin-prohibited from fd99:2::2"}},
		{name: "neighbour discovery after flushing every cache", kind: neighPing, dst: at(h6, 0), want: answered},
	})
	talk.check(t, "while new flows were decided")

	t.Run("state lists the admitted conversation", func(t *testing.T) {
		st := fw.state()
		if !hasFlow(st, "tcp", talk.conn.LocalAddr().String(), "ssh", "ESTABLISHED") {
			t.Errorf("nfqfw state has no ESTABLISHED ssh flow from %s:\n%s", talk.conn.LocalAddr(), lines(st))
		}
	})
	t.Run("metrics count each rule", func(t *testing.T) {
		checkMetrics(t, fw.metrics(), map[string]float64{
			`nfqfw_packets_total{action="accept",chain="input",rule="ssh"}`:         4, // conversation, ssh, stray ACK, ssh over IPv6
			`nfqfw_packets_total{action="accept",chain="input",rule="web"}`:         3,
			`nfqfw_packets_total{action="accept",chain="input",rule="dns-udp"}`:     1,
			`nfqfw_packets_total{action="accept",chain="input",rule="ping"}`:        1,
			`nfqfw_packets_total{action="accept",chain="input",rule="ping6"}`:       1,
			`nfqfw_packets_total{action="reject",chain="input",rule="closed-tcp"}`:  3, // v4, stray ACK, v6
			`nfqfw_packets_total{action="reject",chain="input",rule="closed-udp"}`:  1,
			`nfqfw_packets_total{action="reject",chain="input",rule="closed-udp6"}`: 1,
			`nfqfw_packets_total{action="reject",chain="input",rule=""}`:            1, // GRE: the input policy
		})
	})

	fw.reload()
	talk.check(t, "after nfqfw reload")
	runProbes(t, sb, cli, []probe{
		{name: "after reload http", kind: tcpConnect, dst: at(h4, 80), want: connected},
		{name: "after reload closed tcp port is reset", kind: tcpConnect, dst: at(h4, 8080), want: refused,
			seen: []string{"tcp RST from 10.99.2.2:8080"}},
	})
	talk.check(t, "at the end")
}

// hasFlow reports whether st lists a flow of proto from src (ADDR:PORT)
// admitted by rule and in state.
func hasFlow(st control.StateResponse, proto, src, rule, state string) bool {
	for _, f := range st.Flows {
		if f.Proto == proto && from(f, src) && f.Rule == rule && f.State == state {
			return true
		}
	}
	return false
}

func lines(st control.StateResponse) string {
	var s string
	for _, f := range st.Flows {
		s += f.Line + " rule=" + f.Rule + "\n"
	}
	return s
}

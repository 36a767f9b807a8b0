package e2e

import (
	"net/netip"
	"testing"
)

// TestHostThatOnlyInitiates is setup 1 (desktop) and setup 3 (a host that
// only initiates), one shipped config each: everything the host opens
// works and its replies come back through the kernel's established fast
// path; nothing new comes in, not even to services that listen, and the
// client is told nothing (a drop, not a reject).
func TestHostThatOnlyInitiates(t *testing.T) {
	tests := []struct {
		name    string
		example string
	}{
		{name: "desktop (setup 1)", example: "desktop.yaml"},
		{name: "host that only initiates (setup 3)", example: "client-only.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb, cli, host := newHostLab(t)
			c4, c6 := sb.Addr4(clientRole), sb.Addr6(clientRole)
			h4, h6 := sb.Addr4(hostRole), sb.Addr6(hostRole)
			at := netip.AddrPortFrom
			serveTCP(t, cli, 8080) // the world's services the host uses
			serveUDP(t, cli, 5353)
			serveTCP(t, host, 22) // the host's own services: listening, yet unreachable
			serveUDP(t, host, 53)

			fw := startFirewall(t, host, exampleConfig(t, sb, tt.example))

			t.Run("outgoing", func(t *testing.T) {
				runProbes(t, sb, host, []probe{
					{name: "tcp", kind: tcpConnect, dst: at(c4, 8080), want: connected},
					{name: "udp", kind: udpQuery, dst: at(c4, 5353), want: answered},
					{name: "ping", kind: icmpEcho, dst: at(c4, 0), want: answered},
					{name: "tcp over IPv6", kind: tcpConnect, dst: at(c6, 8080), want: connected},
					{name: "udp over IPv6", kind: udpQuery, dst: at(c6, 5353), want: answered},
					{name: "ping6 after flushing every neighbour cache", kind: neighPing, dst: at(c6, 0), want: answered},
				})
			})
			t.Run("incoming", func(t *testing.T) {
				runProbes(t, sb, cli, []probe{
					{name: "tcp to a listening port", kind: tcpConnect, dst: at(h4, 22), want: timedOut},
					{name: "udp to a listening port", kind: udpQuery, dst: at(h4, 53), want: timedOut},
					{name: "ping", kind: icmpEcho, dst: at(h4, 0), want: timedOut},
					{name: "tcp over IPv6", kind: tcpConnect, dst: at(h6, 22), want: timedOut},
					{name: "ping6", kind: icmpEcho, dst: at(h6, 0), want: timedOut},
				})
			})
			// Such a policy needs no decision per flow: the daemon may put
			// its drop in the kernel (it does today) or have the engine
			// decide. Either way every probe above was dropped.
			t.Run("the drops are counted", func(t *testing.T) {
				engine := max(0, metricValue(fw.metrics(), `nfqfw_packets_total{action="drop",chain="input",rule=""}`))
				kernel := kernelPackets(t, host, "NFQFW-INPUT", "input policy drop")
				if got, want := engine+kernel, 7.0; got < want {
					t.Errorf("inbound drops: engine %v + kernel %v = %v, want at least %v (one per probe)", engine, kernel, got, want)
				}
			})
		})
	}
}

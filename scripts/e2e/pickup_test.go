package e2e

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// pickupConfig is a NAT gateway for the lab sb: ssh to the gateway from the
// LAN, the LAN out to the uplink's web (masqueraded), a port forward of
// uplink tcp 8000 to lan1:80, lan1's web routed over IPv6 from the uplink;
// everything else forwarded is dropped, INVALID forwarded packets are
// answered with host unreachable (guide 004's FORWARD).
func pickupConfig(sb *sandbox.Sandbox, pickup string) string {
	return fmt.Sprintf(`
zones:
  wan: [%[1]s]
  lan: [%[2]s]
trusted: [lo]
flows: {tcp_pickup: %[5]s}
nat:
  masquerade:
    - {out: wan, src: [%[3]s]}
  forwards:
    - {name: web-fwd, in: wan, proto: tcp, port: 8000, to: %[4]s, to_port: 80}
input:
  policy: drop
  rules:
    - {name: ssh, in: lan, proto: tcp, dport: 22, action: accept}
forward:
  policy: drop
  invalid: reject
  invalid_reject_with: icmp-host-unreachable
  rules:
    - {name: lan-web, in: lan, out: wan, proto: tcp, dport: 80, action: accept}
    - {name: web6-in, in: wan, dst: %[6]s, proto: tcp, dport: 80, action: accept}
`, sb.GatewayLink(uplinkRole), sb.GatewayLink(lan1Role), gatewayLANs[0].V4, sb.Addr4(lan1Role), pickup, sb.Addr6(lan1Role))
}

// TestPickupAfterConntrackFlush: sessions through and to a NAT gateway
// outlive a flush of the gateway's conntrack table (as after a failover or
// a reboot), the way they do behind the guides' NAT gateway, whose kernel
// picks each one up mid-stream (nf_conntrack_tcp_loose) and applies the
// rules to it: a session the rules admit continues, one to a port the
// rules refuse stops, and a bare ACK from the uplink toward a LAN port no
// rule opens reaches nothing. With flows.tcp_pickup: drop every session
// stops at the flush, as it did before pickup existed.
func TestPickupAfterConntrackFlush(t *testing.T) {
	requireSandbox(t, "conntrack")
	t.Parallel()
	for _, tt := range []struct {
		pickup    string
		continues bool
	}{
		{"policy", true},
		{"drop", false},
	} {
		t.Run("tcp_pickup "+tt.pickup, func(t *testing.T) {
			sb := sandbox.New(t, sandbox.Options{LANs: gatewayLANs})
			gw, lan1, up := sb.NS(sandbox.Gateway), sb.NS(lan1Role), sb.NS(uplinkRole)
			at := netip.AddrPortFrom
			// The gateway's ICMP answers are not rate-limited, so each
			// probe sees its own.
			gw.MustExec("sysctl", "-qw", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")
			serveTCP(t, gw, 22)
			serveTCP(t, lan1, 80, 443)
			serveTCP(t, up, 80)

			// Opened before nfqfw starts, while an operator's own stateful
			// rule has the kernel track the gateway's flows: lan1's 443 is
			// open to the uplink; the config opens it to nobody. (Without
			// any conntrack user in the namespace the kernel would track
			// nothing, and nfqfw's start would pick the session up and
			// refuse it at once.)
			gw.MustExec("iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
			refused := converse(t, up, at(sb.Addr4(lan1Role), 443))

			fw := startFirewall(t, gw, pickupConfig(sb, tt.pickup))
			sessions := map[string]*conversation{
				"lan to the gateway's ssh (input)":        converse(t, lan1, at(sb.GatewayAddr4(lan1Role), 22)),
				"lan to the uplink's web (masqueraded)":   converse(t, lan1, at(sb.Addr4(uplinkRole), 80)),
				"uplink through the port forward (DNAT)":  converse(t, up, at(sb.GatewayAddr4(uplinkRole), 8000)),
				"uplink to lan1's web over IPv6 (routed)": converse(t, up, at(sb.Addr6(lan1Role), 80)),
			}
			refused.check(t, "after nfqfw started (the kernel still tracks it)")

			gw.MustExec("conntrack", "-F")
			for name, c := range sessions {
				if tt.continues {
					c.check(t, name+" after conntrack -F")
				} else if !c.breaks(5 * time.Second) {
					t.Errorf("%s: still talking after conntrack -F with tcp_pickup drop", name)
				}
			}
			if !refused.breaks(5 * time.Second) {
				t.Errorf("the session to lan1's 443, which no rule opens, still talks after conntrack -F")
			}
			if v := metricValue(fw.metrics(), "nfqfw_flows_picked_up_total"); tt.continues && v < float64(len(sessions)) {
				t.Errorf("nfqfw_flows_picked_up_total = %v, want at least %d (one per continuing session)", v, len(sessions))
			}
			if !tt.continues {
				// The uplink's stopped sessions keep drawing answers
				// (their segments are INVALID now): no probe reads
				// clean here.
				return
			}
			// A bare ACK reaching lan1 would be answered with a reset from
			// lan1: picked up, the forward policy drops it.
			runProbes(t, sb, up, []probe{
				{name: "bare ACK from the uplink to a LAN port no rule opens gets nothing through", kind: tcpACK,
					dst: at(sb.Addr4(lan1Role), 443), want: sent},
				{name: "bare ACK from the uplink to lan1's IPv6 ssh gets nothing through", kind: tcpACK,
					dst: at(sb.Addr6(lan1Role), 22), want: sent},
				// Guide 004's FORWARD answers what no rule accepts, INVALID
				// packets included, with host unreachable.
				{name: "an INVALID XMAS probe forwarded gets host unreachable from the gateway", kind: tcpXmas,
					dst: at(sb.Addr4(lan1Role), 443), want: sent,
					seen: []string{"icmp host-unreachable from " + sb.GatewayAddr4(uplinkRole).String()}},
			})
		})
	}
}

// breaks reports whether the conversation fails within d: a round trip
// timed out or the connection was reset.
func (c *conversation) breaks(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		if err != nil {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

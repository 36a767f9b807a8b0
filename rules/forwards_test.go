package rules

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// gatewayYAML is a NAT gateway whose port forwards have no forward rule of
// their own: Compile must admit them toward their destination only.
const gatewayYAML = `
zones:
  wan: [wan0]
  lan: [lan1, lan2]
nat:
  masquerade:
    - {out: wan, src: [10.99.11.0/24]}
  forwards:
    - {name: ssh, in: wan, proto: tcp, port: 22, to: 10.99.11.2}
    - {name: web, in: wan, proto: tcp, port: 8000, to: 10.99.11.2, to_port: 80}
    - {name: dns, in: wan, proto: udp, port: 5353, to: 10.99.12.2, to_port: 53, src: [192.0.2.0/24]}
    - {name: games, in: wan, proto: udp, port: 27000-27010, to: 10.99.12.3}
    - {name: web6, in: wan, proto: tcp, port: 8080, to: "fd99:11::2", to_port: 80}
forward:
  policy: drop
  rules:
    - {name: lan-tcp, in: lan, out: wan, proto: tcp, dport: [22, 25, 80, 443], action: accept}
    - {name: no-bad-guy, in: wan, src: 198.51.100.66, action: drop}
`

func TestForwardAdmissions(t *testing.T) {
	p := compileYAML(t, "gw.yaml", gatewayYAML)
	// The operator's rules first, then one admission per forward.
	if diff := cmp.Diff([]string{"lan-tcp", "no-bad-guy", "ssh", "web", "dns", "games", "web6"}, forwardRuleNames(p)); diff != "" {
		t.Errorf("forward rules (-want +got):\n%s", diff)
	}

	// Forward-hook packets as the kernel queues them: after DNAT, so the
	// destination is the internal host and port.
	tests := []struct {
		name string
		pkt  pkt
		want string // rule name; "" = the chain policy
	}{
		{"ssh forward lands on its host", pkt{hook: fwd, proto: "tcp", src: "192.0.2.5:40000", dst: "10.99.11.2:22", in: "wan0", out: "lan1", flags: syn}, "ssh"},
		{"8000 forwarded to port 80", pkt{hook: fwd, proto: "tcp", src: "192.0.2.5:40000", dst: "10.99.11.2:80", in: "wan0", out: "lan1", flags: syn}, "web"},
		{"udp forward from its allowed source", pkt{hook: fwd, proto: "udp", src: "192.0.2.5:40000", dst: "10.99.12.2:53", in: "wan0", out: "lan2"}, "dns"},
		{"udp forward from another source", pkt{hook: fwd, proto: "udp", src: "203.0.113.5:40000", dst: "10.99.12.2:53", in: "wan0", out: "lan2"}, ""},
		{"port range forwarded as is", pkt{hook: fwd, proto: "udp", src: "192.0.2.5:40000", dst: "10.99.12.3:27005", in: "wan0", out: "lan2"}, "games"},
		{"beyond the forwarded range", pkt{hook: fwd, proto: "udp", src: "192.0.2.5:40000", dst: "10.99.12.3:27011", in: "wan0", out: "lan2"}, ""},
		{"ipv6 forward", pkt{hook: fwd, proto: "tcp", src: "[2001:db8::5]:40000", dst: "[fd99:11::2]:80", in: "wan0", out: "lan1", flags: syn}, "web6"},
		{"another port of the forwarded host", pkt{hook: fwd, proto: "tcp", src: "192.0.2.5:40000", dst: "10.99.11.2:443", in: "wan0", out: "lan1", flags: syn}, ""},
		{"the forwarded port on another host", pkt{hook: fwd, proto: "tcp", src: "192.0.2.5:40000", dst: "10.99.11.3:80", in: "wan0", out: "lan1", flags: syn}, ""},
		{"the forwarded destination over udp", pkt{hook: fwd, proto: "udp", src: "192.0.2.5:40000", dst: "10.99.11.2:80", in: "wan0", out: "lan1"}, ""},
		{"the forwarded destination from a lan", pkt{hook: fwd, proto: "tcp", src: "10.99.12.2:40000", dst: "10.99.11.2:80", in: "lan2", out: "lan1", flags: syn}, ""},
		{"the operator's drop comes first", pkt{hook: fwd, proto: "tcp", src: "198.51.100.66:40000", dst: "10.99.11.2:22", in: "wan0", out: "lan1", flags: syn}, "no-bad-guy"},
		{"lan users go out on their ports", pkt{hook: fwd, proto: "tcp", src: "10.99.11.2:40000", dst: "192.0.2.5:443", in: "lan1", out: "wan0", flags: syn}, "lan-tcp"},
		{"the forward is no input rule", pkt{hook: in, proto: "tcp", src: "192.0.2.5:40000", dst: "10.99.11.2:22", in: "wan0", flags: syn}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pk := tt.pkt.packet(t)
			got := ""
			if id := p.Eval(&pk, nil); id >= 0 {
				got = p.Rules()[id].Name
			}
			if got != tt.want {
				t.Errorf("Eval = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestForwardAdmissionClaimed: a forward rule of the operator's that names
// the forwarded destination decides alone (here with a guard), so the
// automatic admission cannot bypass it; a forward whose name a rule already
// has gets a suffixed name.
func TestForwardAdmissionClaimed(t *testing.T) {
	p := compileYAML(t, "gw.yaml", `
guards:
  - {name: ssh-guard, limits: [{count: 3, window: 10s}]}
nat:
  forwards:
    - {name: ssh, in: wan0, proto: tcp, port: 22, to: 10.99.11.2}
    - {name: web, in: wan0, proto: tcp, port: 8000, to: 10.99.11.2, to_port: 80}
forward:
  rules:
    - {name: ssh-guarded, in: wan0, dst: 10.99.11.0/24, proto: tcp, dport: 22, guard: ssh-guard, action: accept}
    - {name: web, in: lan1, proto: tcp, dport: 80, action: accept}
`)
	if diff := cmp.Diff([]string{"ssh-guarded", "web", "web-port-forward"}, forwardRuleNames(p)); diff != "" {
		t.Errorf("forward rules (-want +got):\n%s", diff)
	}
	pk := pkt{hook: fwd, proto: "tcp", src: "192.0.2.5:40000", dst: "10.99.11.2:22", in: "wan0", out: "lan1", flags: syn}.packet(t)
	if id := p.Eval(&pk, &allowState{allow: make([]bool, len(p.Rules()))}); id != -1 {
		t.Errorf("guard refused, Eval = %q, want the chain policy", p.Rules()[id].Name)
	}
}

func TestForwardAdmissionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		fwd  PortForward
		err  error
	}{
		{"target ports past 65535", PortForward{Name: "x", Proto: 6, Port: PortRange{1, 100}, To: netip.MustParseAddr("10.0.0.1"), ToPort: 65500}, ErrBadValue},
		{"no destination", PortForward{Name: "x", Proto: 6, Port: PortRange{1, 1}}, ErrBadValue},
		{"no ports on icmp", PortForward{Name: "x", Proto: 1, Port: PortRange{1, 1}, To: netip.MustParseAddr("10.0.0.1")}, ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(&Config{NAT: NAT{Forwards: []PortForward{tc.fwd}}})
			if !errors.Is(err, tc.err) {
				t.Errorf("Compile error = %v, want %v", err, tc.err)
			}
		})
	}
}

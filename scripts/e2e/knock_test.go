package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/knock"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// knockConfig is setup 5 with short windows, plus the knock variants: a
// one-shot sequence, a rotating one derived from a secret (2 s periods,
// one period of skew) and one with a long window to outlive a restart.
const knockConfig = `
zones:
  uplink: [UPLINK]
trusted: [lo]
knocks:
  - name: ssh-knock
    steps: [tcp/7000, udp/8000, tcp/9000]
    step_window: 5s
    window: 15s
    open: [{proto: tcp, ports: [22]}]
    open_for: 5s
  - name: once
    steps: [tcp/7100, udp/8100, tcp/9100]
    open: [{proto: tcp, ports: [2200]}]
    open_for: 30s
    one_shot: true
  - name: totp
    steps: [tcp, udp, tcp]
    secret: JBSWY3DPEHPK3PXP
    period: 2s
    skew: 1
    open: [{proto: tcp, ports: [2300]}]
    open_for: 30s
  - name: stay
    steps: [tcp/7400, udp/8400, tcp/9400]
    open: [{proto: tcp, ports: [2400]}]
    open_for: 1m
input:
  policy: drop
  invalid: drop
  rules:
    - {name: ssh-knocked, in: uplink, proto: tcp, dport: 22, knock: ssh-knock, action: accept}
    - {name: once-knocked, in: uplink, proto: tcp, dport: 2200, knock: once, action: accept}
    - {name: totp-knocked, in: uplink, proto: tcp, dport: 2300, knock: totp, action: accept}
    - {name: stay-knocked, in: uplink, proto: tcp, dport: 2400, knock: stay, action: accept}
output:
  policy: accept
`

// knockClient runs the standard knock client (knockd's /usr/bin/knock)
// from ns: knock -d 50 HOST PORT:PROTO...
func knockClient(t *testing.T, ns *sandbox.Netns, host netip.Addr, hits ...string) {
	t.Helper()
	args := []string{"-d", "50"}
	if host.Is6() {
		args = append(args, "-6")
	}
	ns.MustExec(append(append([]string{"knock"}, args...), append([]string{host.String()}, hits...)...)...)
}

// knockSequence runs `nfqfw knock-sequence -c config name` and returns
// its hits ("7000:tcp").
func knockSequence(t *testing.T, config, name string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, nfqfwBin, "knock-sequence", "-c", config, name).CombinedOutput()
	if err != nil {
		t.Fatalf("nfqfw knock-sequence: %v: %s", err, out)
	}
	hits := strings.Fields(string(out))
	if len(hits) != 3 {
		t.Fatalf("nfqfw knock-sequence printed %q, want 3 PORT:PROTO hits", out)
	}
	return hits
}

func progressOf(st knock.Status, src netip.Addr, seq string) (knock.Progress, bool) {
	for _, p := range st.Progress {
		if p.Source == src && p.Sequence == seq {
			return p, true
		}
	}
	return knock.Progress{}, false
}

func windowOf(st knock.Status, src netip.Addr, seq string) (knock.OpenWindow, bool) {
	for _, w := range st.Open {
		if w.Source == src && w.Sequence == seq {
			return w, true
		}
	}
	return knock.OpenWindow{}, false
}

func failedWith(st knock.Status, src netip.Addr, seq string, reason knock.FailReason) bool {
	for _, f := range st.Failures {
		if f.Source == src && f.Sequence == seq && f.Reason == reason {
			return true
		}
	}
	return false
}

// TestKnock is setup 5: a TCP/UDP knock sequence opens a port for the
// knocking source alone and for open_for; the standard knock client, plain
// sockets and IPv6 all knock; a step out of order resets, traffic to other
// ports does not; knock-status shows the
// progress and the windows; a one-shot sequence refuses a replay; a
// rotating sequence works with the ports knock-sequence prints and refuses
// an old period's; windows survive a reload and a restart.
func TestKnock(t *testing.T) {
	sb := statefulSandbox(t, []string{"knock"}, lan2)
	cli, host, other := sb.NS(clientRole), sb.NS(hostRole), sb.NS(lan2.Role)
	h4, h6 := sb.Addr4(hostRole), sb.Addr6(hostRole)
	c4, o4, o6 := sb.Addr4(clientRole), sb.Addr4(lan2.Role), sb.Addr6(lan2.Role)
	at := func(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
	serveTCP(t, host, 22, 2200, 2300, 2400)
	fw := startFirewall(t, host, statefulConfig(sb, knockConfig))

	expectDial(t, cli, at(h4, 22), timedOut, "before knocking")

	t.Run("knock-status shows progress mid-sequence", func(t *testing.T) {
		knockClient(t, cli, h4, "7000:tcp", "8000:udp")
		p, ok := progressOf(knockStatusOf(t, fw), c4, "ssh-knock")
		if !ok || p.Step != 2 || p.Steps != 3 || p.TimeLeft <= 0 || p.TimeLeft > 15*time.Second {
			t.Errorf("progress of %s: %+v (found %v), want step 2 of 3 with time left", c4, p, ok)
		}
		out, err := fw.cli("knock-status")
		if err != nil || !strings.Contains(out, c4.String()) || !strings.Contains(out, "2/3") {
			t.Errorf("nfqfw knock-status (%v) lacks %s at 2/3:\n%s", err, c4, out)
		}
		t.Logf("nfqfw knock-status mid-sequence:\n%s", out)
	})
	knockClient(t, cli, h4, "9000:tcp")
	opened := time.Now()
	expectDial(t, cli, at(h4, 22), connected, "after the sequence")
	expectDial(t, other, at(h4, 22), timedOut, "another source")
	if w, ok := windowOf(knockStatusOf(t, fw), c4, "ssh-knock"); !ok || w.TimeLeft <= 0 || w.TimeLeft > 5*time.Second || !strings.Contains(w.Opens, "tcp/22") {
		t.Errorf("open window of %s: %+v (found %v), want tcp/22 with up to 5 s left", c4, w, ok)
	}

	t.Run("a step out of order resets", func(t *testing.T) {
		knockClient(t, other, h4, "7000:tcp", "9000:tcp", "8000:udp", "9000:tcp")
		expectDial(t, other, at(h4, 22), timedOut, "after a wrong knock")
		if !failedWith(knockStatusOf(t, fw), o4, "ssh-knock", knock.FailWrongPort) {
			t.Errorf("knock-status failures lack %s ssh-knock wrong_port", o4)
		}
	})

	// knockd's behaviour: a browser or mail client behind the same
	// address must not break a knock.
	t.Run("traffic to a port of no step in the middle does not reset", func(t *testing.T) {
		knockClient(t, other, h4, "7000:tcp", "7777:tcp", "8000:udp", "53:udp", "9000:tcp")
		expectDial(t, other, at(h4, 22), connected, "after a knock with other traffic in the middle")
	})

	t.Run("plain sockets knock over IPv6", func(t *testing.T) {
		knockWithGo(t, cli, h6, "tcp/7000", "udp/8000", "tcp/9000")
		expectDial(t, cli, at(h6, 22), connected, "IPv6 after Go knocks")
		expectDial(t, other, at(h6, 22), timedOut, "another IPv6 source")
	})

	t.Run("the knock client over IPv6", func(t *testing.T) {
		knockClient(t, other, h6, "7400:tcp", "8400:udp", "9400:tcp")
		expectDial(t, other, at(h6, 2400), connected, "IPv6 after knock -6")
	})

	t.Run("the window closes after open_for", func(t *testing.T) {
		time.Sleep(time.Until(opened.Add(5*time.Second + 500*time.Millisecond)))
		expectDial(t, cli, at(h4, 22), timedOut, "open_for after the sequence")
		if _, ok := windowOf(knockStatusOf(t, fw), c4, "ssh-knock"); ok {
			t.Errorf("knock-status still shows %s's ssh-knock window", c4)
		}
	})

	t.Run("one-shot sequence refuses a replay", func(t *testing.T) {
		knockClient(t, other, h4, "7100:tcp", "8100:udp", "9100:tcp")
		expectDial(t, other, at(h4, 2200), connected, "after the one-shot sequence")
		knockClient(t, other, h4, "7100:tcp", "8100:udp", "9100:tcp")
		if !failedWith(knockStatusOf(t, fw), o4, "once", knock.FailReplay) {
			out, _ := fw.cli("knock-status")
			t.Errorf("knock-status failures lack %s once replay:\n%s", o4, out)
		}
	})

	t.Run("rotating sequence", func(t *testing.T) {
		const period = 2 * time.Second
		hits := knockSequence(t, fw.config, "totp")
		step := time.Now().UnixNano() / int64(period)
		t.Logf("knock-sequence totp: %v", hits)
		knockClient(t, cli, h4, hits...)
		expectDial(t, cli, at(h4, 2300), connected, "after the printed sequence")
		// Two periods later that sequence is out of the skew.
		for time.Now().UnixNano()/int64(period) < step+2 {
			time.Sleep(50 * time.Millisecond)
		}
		knockClient(t, other, h4, hits...)
		expectDial(t, other, at(h4, 2300), timedOut, "an old period's sequence")
	})

	t.Run("windows survive a reload and a restart", func(t *testing.T) {
		knockWithGo(t, cli, h4, "tcp/7400", "udp/8400", "tcp/9400")
		expectDial(t, cli, at(h4, 2400), connected, "after the sequence")
		fw.reload()
		expectDial(t, cli, at(h4, 2400), connected, "after nfqfw reload")
		fw.stop()
		fw.start()
		expectDial(t, cli, at(h4, 2400), connected, "after a restart")
		expectDial(t, other, at(h4, 2400), timedOut, "another IPv4 source after the restart")
		if _, ok := windowOf(knockStatusOf(t, fw), c4, "stay"); !ok {
			t.Errorf("knock-status after the restart lacks %s's window", c4)
		}
		if _, ok := windowOf(knockStatusOf(t, fw), o6, "stay"); !ok {
			t.Errorf("knock-status after the restart lacks %s's IPv6 window", o6)
		}
	})
}

// TestKnockOnGateway: a gateway's knock sequence for its own ssh consumes
// only packets addressed to the gateway, as knockd on it would. A LAN
// client's forwarded connection to a server behind the gateway on a knock
// port is decided by the forward rules, and the same sequence sent to that
// server opens nothing on the gateway.
func TestKnockOnGateway(t *testing.T) {
	requireSandbox(t)
	t.Parallel()
	sb := sandbox.New(t, sandbox.Options{LANs: gatewayLANs})
	gw, lan1, lan2 := sb.NS(sandbox.Gateway), sb.NS(lan1Role), sb.NS(lan2Role)
	at := netip.AddrPortFrom
	serveTCP(t, gw, 22)
	serveTCP(t, lan2, 7000, 9000)
	serveUDP(t, lan2, 8000)
	fw := startFirewall(t, gw, fmt.Sprintf(`
zones: {lan: [%[1]s], servers: [%[2]s]}
trusted: [lo]
knocks:
  - name: gw-ssh
    steps: [tcp/7000, udp/8000, tcp/9000]
    open: [{proto: tcp, ports: [22]}]
    open_for: 30s
input:
  policy: drop
  rules:
    - {name: ssh-knocked, proto: tcp, dport: 22, knock: gw-ssh, action: accept}
forward:
  policy: drop
  rules:
    - {name: to-servers, in: lan, out: servers, proto: tcp, dport: [7000, 9000], action: accept}
    - {name: to-servers-udp, in: lan, out: servers, proto: udp, dport: 8000, action: accept}
`, sb.GatewayLink(lan1Role), sb.GatewayLink(lan2Role)))
	gwAddr, srv := sb.GatewayAddr4(lan1Role), sb.Addr4(lan2Role)

	expectDial(t, lan1, at(srv, 7000), connected, "forwarded to a knock port on a server behind the gateway")
	expectDial(t, lan1, at(srv, 9000), connected, "forwarded to another knock port")
	knockWithGoTo(t, lan1, srv)
	expectDial(t, lan1, at(gwAddr, 22), timedOut, "the gateway's ssh after a sequence sent to the server behind it")
	if _, ok := progressOf(knockStatusOf(t, fw), sb.Addr4(lan1Role), "gw-ssh"); ok {
		t.Errorf("knock-status shows progress of gw-ssh for %s after knocks sent past the gateway", sb.Addr4(lan1Role))
	}
	knockClient(t, lan1, gwAddr, "7000:tcp", "8000:udp", "9000:tcp")
	expectDial(t, lan1, at(gwAddr, 22), connected, "the gateway's ssh after knocking on the gateway")
}

// knockWithGoTo sends the steps tcp/7000, udp/8000, tcp/9000 to dst, which
// serves them: each is a real connection or datagram that goes through.
func knockWithGoTo(t *testing.T, ns *sandbox.Netns, dst netip.Addr) {
	t.Helper()
	if got := dialTCP(ns, netip.AddrPortFrom(dst, 7000)); got != connected {
		t.Fatalf("tcp/7000 to %s: %s", dst, got)
	}
	if got := queryUDP(ns, netip.AddrPort{}, netip.AddrPortFrom(dst, 8000)); got != answered {
		t.Fatalf("udp/8000 to %s: %s", dst, got)
	}
	if got := dialTCP(ns, netip.AddrPortFrom(dst, 9000)); got != connected {
		t.Fatalf("tcp/9000 to %s: %s", dst, got)
	}
}

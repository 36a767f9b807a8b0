package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
)

// TestKernelEventsMinimal runs the server example with flows.kernel_events
// minimal: conntrack reports only a TCP flow's first reply, assurance and
// destruction (the CT template the raw table sets on SYNs), and the engine
// still follows its flows from them: an admitted conversation is listed
// ESTABLISHED and assured, a UDP exchange replied, and a flow the kernel
// forgets is forgotten by the engine. One short connection's events, as
// `conntrack -E` sees them, are the three the engine needs, not every
// state change.
func TestKernelEventsMinimal(t *testing.T) {
	sb, cli, host := newHostLab(t)
	h4 := sb.Addr4(hostRole)
	serveTCP(t, host, 22, 80)
	serveUDP(t, host, 53)
	fw := startFirewall(t, host, exampleConfig(t, sb, "server.yaml")+"\nflows: {kernel_events: minimal}\n")

	raw, err := host.Exec("iptables", "-t", "raw", "-S", "NFQFW-PREROUTING")
	if err != nil || !strings.Contains(raw, "--ctevents destroy,reply,assured") {
		t.Fatalf("raw table has no conntrack events template: %v\n%s", err, raw)
	}

	talk := converse(t, cli, netip.AddrPortFrom(h4, 22))
	src := talk.conn.LocalAddr().String()
	waitFlow(t, fw, "the conversation ESTABLISHED and assured", func(f control.StateFlow) bool {
		return f.Proto == "tcp" && from(f, src) && f.State == "ESTABLISHED" && f.Assured && f.Replied
	})

	udp, err := cli.DialTimeout("udp", netip.AddrPortFrom(h4, 53).String(), probeTimeout)
	if err != nil {
		t.Fatalf("dial udp: %v", err)
	}
	defer udp.Close()
	if got := roundTrip(udp); got != answered {
		t.Fatalf("udp exchange: %s", got)
	}
	usrc := udp.LocalAddr().String()
	waitFlow(t, fw, "the UDP exchange replied", func(f control.StateFlow) bool {
		return f.Proto == "udp" && from(f, usrc) && f.Replied
	})

	// The kernel forgets the UDP flow: so does the engine.
	port := usrc[strings.LastIndex(usrc, ":")+1:]
	if out, err := host.Exec("conntrack", "-D", "-p", "udp", "--orig-port-src", port); err != nil {
		t.Fatalf("conntrack -D: %v\n%s", err, out)
	}
	waitState(t, fw, "the deleted UDP flow forgotten", func(st control.StateResponse) bool {
		for _, f := range st.Flows {
			if f.Proto == "udp" && from(f, usrc) {
				return false
			}
		}
		return true
	})

	// One short connection to port 80, closed by the client (FIN), then
	// deleted: its reply, its assurance and its destruction, not its
	// FIN_WAIT and CLOSE_WAIT (without the template: 4 updates).
	events := host.Start("conntrack", "-E", "-e", "UPDATE,DESTROY", "-p", "tcp", "--orig-port-dst", "80")
	time.Sleep(200 * time.Millisecond) // subscribed before the SYN
	c, err := cli.DialTimeout("tcp", netip.AddrPortFrom(h4, 80).String(), probeTimeout)
	if err != nil {
		t.Fatalf("connect to 80: %v", err)
	}
	c.Close()
	time.Sleep(200 * time.Millisecond)
	if out, err := host.Exec("conntrack", "-D", "-p", "tcp", "--orig-port-dst", "80"); err != nil {
		t.Fatalf("conntrack -D: %v\n%s", err, out)
	}
	var out string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if out = events.Output(); strings.Contains(out, "[DESTROY]") {
			break
		}
	}
	events.Stop()
	out = events.Output()
	if u, d := strings.Count(out, "[UPDATE]"), strings.Count(out, "[DESTROY]"); u != 2 || d != 1 {
		t.Errorf("conntrack events of one short connection: %d updates and %d destroys, want 2 and 1 (reply, assured, destroy):\n%s", u, d, out)
	}
	talk.check(t, "at the end")
}

// from reports whether f's original source is addr (ADDR:PORT).
func from(f control.StateFlow, addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && f.Src == ap.Addr().Unmap().String() && f.SPort == ap.Port()
}

// waitFlow waits until the daemon lists a flow that ok accepts.
func waitFlow(t *testing.T, fw *firewall, what string, ok func(control.StateFlow) bool) {
	t.Helper()
	waitState(t, fw, what, func(st control.StateResponse) bool {
		for _, f := range st.Flows {
			if ok(f) {
				return true
			}
		}
		return false
	})
}

// waitState waits up to 3 s until the daemon's flow table satisfies ok.
func waitState(t *testing.T, fw *firewall, what string, ok func(control.StateResponse) bool) {
	t.Helper()
	var st control.StateResponse
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st = fw.state(); ok(st) {
			return
		}
	}
	t.Fatalf("nfqfw state: not %s within 3s:\n%s", what, lines(st))
}

package e2e

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// The shipped examples not covered by a scenario of their own: each test
// loads rules/examples/NAME as it ships, adapting only the interface names
// to the sandbox, and checks the example's headline behaviour with real
// traffic.

// TestExampleKnock is knock.yaml on the host: port 22 is closed until the
// client knocks tcp/7000, udp/8000, tcp/9000, then open for that client
// and not for another source.
func TestExampleKnock(t *testing.T) {
	requireSandbox(t, "knock")
	t.Parallel()
	sb := sandbox.New(t, sandbox.Options{})
	cli, host, gw := sb.NS(clientRole), sb.NS(hostRole), sb.NS(sandbox.Gateway)
	ssh := netip.AddrPortFrom(sb.Addr4(hostRole), 22)
	serveTCP(t, host, 22)
	startFirewall(t, host, exampleConfig(t, sb, "knock.yaml"))

	expectDial(t, cli, ssh, timedOut, "before knocking")
	knockClient(t, cli, ssh.Addr(), "7000:tcp", "8000:udp", "9000:tcp")
	expectDial(t, cli, ssh, connected, "after the knock sequence")
	// The gateway reaches the host over the same uplink link, from
	// another address: the window is the knocking source's alone.
	expectDial(t, gw, ssh, timedOut, "another source after the client knocked")
}

// TestExampleFTPServer is ftp-server.yaml on the host running vsftpd: only
// the control port is open, yet passive downloads over IPv4 and IPv6 arrive
// whole because the FTP helper admits each announced data connection; any
// other TCP port is reset, as guide 000's server script does.
func TestExampleFTPServer(t *testing.T) {
	requireSandbox(t, "vsftpd", "curl")
	t.Parallel()
	sb := sandbox.New(t, sandbox.Options{})
	cli, host := sb.NS(clientRole), sb.NS(hostRole)
	srv := startVsftpd(t, host)
	listenIn(t, host, netip.MustParseAddrPort("0.0.0.0:2121"))
	fw := startFirewall(t, host, exampleConfig(t, sb, "ftp-server.yaml"))

	for _, tr := range []struct {
		tool ftpTool
		host netip.Addr
	}{
		{ftpc.curlEPSV, sb.Addr4(hostRole)},
		{ftpc.curlPASV, sb.Addr4(hostRole)},
		{ftpc.curlEPSV, sb.Addr6(hostRole)},
	} {
		t.Run(tr.tool.name+" from "+tr.host.String(), func(t *testing.T) {
			used := ftpMetric(fw, "used")
			if ok, out := srv.fetch(t, cli, tr.tool, tr.host); !ok {
				t.Fatalf("download failed: %s", out)
			}
			if got := ftpMetric(fw, "used"); got <= used {
				t.Errorf("download succeeded without using an FTP expectation (used stays %v)", used)
			}
		})
	}
	expectDial(t, cli, netip.AddrPortFrom(sb.Addr4(hostRole), 2121), refused, "a port the example does not open")
}

// TestExampleNATGateway is nat-gateway.yaml in the reference sandbox's
// gateway, as the example describes it: the client LAN (veth-gc) plays the
// uplink, the server LAN (veth-gs) the LAN behind the NAT. The LAN goes out
// masqueraded; uplink tcp 22 and 8000 land on 10.99.2.2:22 and :80 with the
// client's address kept; nothing else from the uplink crosses: the
// gateway resets its own closed ports and answers what it does not forward
// with ICMP host unreachable, as guide 004's gateway does.
func TestExampleNATGateway(t *testing.T) {
	requireSandbox(t)
	t.Parallel()
	const wanRole, lanRole = clientRole, hostRole
	sb := sandbox.New(t, sandbox.Options{})
	wan, lan := sb.NS(wanRole), sb.NS(lanRole)
	if got := sb.Addr4(lanRole).String(); got != "10.99.2.2" {
		t.Fatalf("the reference sandbox's LAN host is %s; the example forwards to 10.99.2.2", got)
	}
	bannerTCP(t, wan, 80, "wan:80")
	bannerTCP(t, lan, 22, "lan:22")
	bannerTCP(t, lan, 80, "lan:80")
	bannerTCP(t, lan, 443, "lan:443")

	b := exampleConfig(t, sb, "nat-gateway.yaml")
	config := strings.NewReplacer("veth-gc", sb.GatewayLink(wanRole), "veth-gs", sb.GatewayLink(lanRole)).Replace(b)
	startFirewall(t, sb.NS(sandbox.Gateway), config)

	gw := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(sb.GatewayAddr4(wanRole), port) }
	wanHost := sb.Addr4(wanRole).String()
	runBannerProbes(t, []bannerProbe{
		{name: "lan out is masqueraded", from: lan, dst: netip.AddrPortFrom(sb.Addr4(wanRole), 80), want: "wan:80 from=" + sb.GatewayAddr4(wanRole).String()},
		{name: "uplink gw:8000 lands on lan:80", from: wan, dst: gw(8000), want: "lan:80 from=" + wanHost},
		{name: "uplink gw:22 lands on lan:22", from: wan, dst: gw(22), want: "lan:22 from=" + wanHost},
		{name: "uplink gw:80 is not forwarded", from: wan, dst: gw(80), want: string(refused), seen: []string{"tcp RST from " + gw(80).String()}},
		{name: "uplink to lan:443 directly is refused", from: wan, dst: netip.AddrPortFrom(sb.Addr4(lanRole), 443), want: string(unreachable),
			seen: []string{"icmp host-unreachable from " + sb.GatewayAddr4(wanRole).String()}},
	})
}

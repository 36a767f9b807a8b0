package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// Roles of the NAT gateway lab: two LANs behind the gateway and an uplink
// host playing the internet.
const (
	lan1Role   = "lan1"
	lan2Role   = "lan2"
	uplinkRole = "wan"
)

// gatewayLANs are the lab's subnets. The uplink's are documentation
// ranges, as a public network would be.
var gatewayLANs = []sandbox.LAN{
	{Role: lan1Role, V4: netip.MustParsePrefix("10.99.11.0/24"), V6: netip.MustParsePrefix("fd99:11::/64")},
	{Role: lan2Role, V4: netip.MustParsePrefix("10.99.12.0/24"), V6: netip.MustParsePrefix("fd99:12::/64")},
	{Role: uplinkRole, V4: netip.MustParsePrefix("198.51.100.0/24"), V6: netip.MustParsePrefix("2001:db8:13::/64")},
}

// gatewayConfig is setup 8 with setup 9's IPv6 counterparts for the lab
// sb: forward policy drop; the LANs may go out on a few services only
// (multiport), other TCP is answered with a reset; MASQUERADE of both LAN
// subnets on the uplink; port forwards from the uplink (tcp 22 to lan1:22,
// tcp 8000 to lan1:80, udp 5353 to lan2:53) with no forward rule of their
// own; IPv6 routed without NAT, the uplink allowed to lan1's web server,
// ping6 to lan1 and dns on lan2 only, anything else from the uplink over
// IPv6 rejected with icmp6-adm-prohibited; and the reverse path filter on.
func gatewayConfig(sb *sandbox.Sandbox) string {
	return fmt.Sprintf(`
rpfilter: true
zones:
  wan: [%[1]s]
  lan: [%[2]s, %[3]s]
trusted: [lo]
nat:
  masquerade:
    - {out: wan, src: [%[4]s, %[5]s]}
  forwards:
    - {name: ssh-fwd, in: wan, proto: tcp, port: 22, to: %[6]s}
    - {name: web-fwd, in: wan, proto: tcp, port: 8000, to: %[6]s, to_port: 80}
    - {name: dns-fwd, in: wan, proto: udp, port: 5353, to: %[7]s, to_port: 53}
input:
  policy: drop
  rules:
    - {name: ping, proto: icmp, icmp_type: echo-request, action: accept}
    - {name: ping6, proto: icmpv6, icmp_type: echo-request, action: accept}
forward:
  policy: drop
  rules:
    - {name: lan-tcp, in: lan, out: wan, proto: tcp, dport: [22, 25, 80, 443], action: accept}
    - {name: lan-udp, in: lan, out: wan, proto: udp, dport: 53, action: accept}
    - {name: lan-ping, in: lan, out: wan, proto: icmp, icmp_type: echo-request, action: accept}
    - {name: lan-ping6, in: lan, out: wan, proto: icmpv6, icmp_type: echo-request, action: accept}
    - {name: lan-closed, in: lan, proto: tcp, action: reject, reject_with: tcp-reset}
    - {name: web6-in, in: wan, dst: %[8]s, proto: tcp, dport: 80, action: accept}
    - {name: dns6-in, in: wan, dst: %[9]s, proto: udp, dport: 53, action: accept}
    - {name: ping6-in, in: wan, dst: %[8]s, proto: icmpv6, icmp_type: echo-request, action: accept}
    - {name: wan6-closed, in: wan, family: ipv6, action: reject, reject_with: icmp6-adm-prohibited}
`,
		sb.GatewayLink(uplinkRole), sb.GatewayLink(lan1Role), sb.GatewayLink(lan2Role),
		gatewayLANs[0].V4, gatewayLANs[1].V4,
		sb.Addr4(lan1Role), sb.Addr4(lan2Role),
		sb.Addr6(lan1Role), sb.Addr6(lan2Role))
}

// operatorRules are the gateway operator's own rules, present before nfqfw
// starts and expected back, unchanged, after it stops: a DNAT and a
// MASQUERADE of their own in nat PREROUTING and POSTROUTING, and rules in
// filter and raw.
func operatorRules(sb *sandbox.Sandbox, v6 bool) string {
	wan := sb.GatewayLink(uplinkRole)
	to := sb.Addr4(lan2Role).String() + ":22"
	if v6 {
		to = "[" + sb.Addr6(lan2Role).String() + "]:22"
	}
	return fmt.Sprintf(`*nat
-A PREROUTING -i %[1]s -p tcp -m tcp --dport 2223 -m comment --comment "operator forward" -j DNAT --to-destination %[2]s
-A POSTROUTING -o docker0 -j MASQUERADE
COMMIT
*filter
-A INPUT -p tcp -m tcp --dport 2224 -m comment --comment "operator rule" -j ACCEPT
COMMIT
*raw
-A PREROUTING -p udp -m udp --dport 9 -m comment --comment "operator raw" -j ACCEPT
COMMIT
`, wan, to)
}

// gatewayLab is the running lab: the sandbox, its namespaces, the daemon in
// the gateway, and what the servers in the hosts received.
type gatewayLab struct {
	sb                 *sandbox.Sandbox
	gw, lan1, lan2, up *sandbox.Netns
	fw                 *firewall
	tables             string // the gateway's tables before nfqfw started
	dns2               *datagramLog
}

// newGatewayLab builds the lab, starts the servers (each answering with a
// banner naming itself and the address it saw the client come from), and
// lets check run against the lab before nfqfw starts (nil: no check). Then
// it installs the operator's rules, records the gateway's tables and starts
// nfqfw with gatewayConfig.
func newGatewayLab(t *testing.T, before func(l *gatewayLab)) *gatewayLab {
	t.Helper()
	sb := sandbox.New(t, sandbox.Options{LANs: gatewayLANs})
	l := &gatewayLab{sb: sb, gw: sb.NS(sandbox.Gateway), lan1: sb.NS(lan1Role), lan2: sb.NS(lan2Role), up: sb.NS(uplinkRole)}
	// The kernel's own reverse path filter off, so that nfqfw's is the one
	// under test.
	for _, c := range []string{"all", "default", sb.GatewayLink(uplinkRole), sb.GatewayLink(lan1Role), sb.GatewayLink(lan2Role)} {
		l.gw.MustExec("sysctl", "-qw", "net.ipv4.conf."+c+".rp_filter=0")
	}
	bannerTCP(t, l.lan1, 22, "lan1:22")
	bannerTCP(t, l.lan1, 80, "lan1:80")
	bannerTCP(t, l.lan1, 443, "lan1:443")
	bannerTCP(t, l.lan2, 22, "lan2:22")
	bannerTCP(t, l.lan2, 80, "lan2:80")
	bannerTCP(t, l.up, 80, "wan:80")
	bannerTCP(t, l.up, 443, "wan:443")
	bannerTCP(t, l.up, 8080, "wan:8080")
	l.dns2 = bannerUDP(t, l.lan2, 53, "lan2:53")
	bannerUDP(t, l.up, 53, "wan:53")
	if before != nil {
		before(l)
	}

	l.restore(t, "iptables-restore", operatorRules(sb, false))
	l.restore(t, "ip6tables-restore", operatorRules(sb, true))
	l.tables = savedTables(t, l.gw)
	l.fw = startFirewall(t, l.gw, gatewayConfig(sb))
	return l
}

// stopAndCompare stops nfqfw and asserts the gateway's tables are exactly
// as before it started, the operator's rules included.
func (l *gatewayLab) stopAndCompare(t *testing.T) {
	t.Helper()
	l.fw.stop()
	if diff := cmp.Diff(l.tables, savedTables(t, l.gw)); diff != "" {
		t.Errorf("gateway tables after nfqfw stopped differ from before it started (-want +got):\n%s", diff)
	}
}

// savedTables is iptables-save and ip6tables-save in ns, without comments
// and counters.
func savedTables(t *testing.T, ns *sandbox.Netns) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		b.WriteString("# " + cmd + "\n")
		for _, l := range strings.Split(ns.MustExec(cmd), "\n") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			if strings.HasPrefix(l, ":") {
				l, _, _ = strings.Cut(l, " [")
			}
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// restore feeds input to cmd (iptables-restore or ip6tables-restore)
// --noflush in the gateway, through a temporary file.
func (l *gatewayLab) restore(t *testing.T, cmd, input string) {
	t.Helper()
	f, err := os.CreateTemp("", "nfqfw-e2e-rules-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	f.WriteString(input)
	f.Close()
	l.gw.MustExec(cmd, "--noflush", f.Name())
}

// bannerTCP serves TCP on port in ns (IPv4 and IPv6): each connection is
// answered with one line "BANNER from=PEER" and closed.
func bannerTCP(t *testing.T, ns *sandbox.Netns, port uint16, banner string) {
	t.Helper()
	acceptTCP(t, ns, port, func(c net.Conn) {
		peer := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		c.SetDeadline(time.Now().Add(probeTimeout))
		fmt.Fprintf(c, "%s from=%s\n", banner, peer)
		c.Close()
	})
}

// datagramLog records the datagrams a UDP banner server received, as
// "from=PEER PAYLOAD".
type datagramLog struct {
	mu  sync.Mutex
	got []string
}

func (d *datagramLog) add(s string) {
	d.mu.Lock()
	d.got = append(d.got, s)
	d.mu.Unlock()
}

// has reports whether a datagram with payload arrived from peer.
func (d *datagramLog) has(peer netip.Addr, payload string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range d.got {
		if g == "from="+peer.String()+" "+payload {
			return true
		}
	}
	return false
}

func (d *datagramLog) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.got, "\n")
}

// bannerUDP serves UDP on port in ns (IPv4 and IPv6): each datagram is
// recorded and answered with "BANNER from=PEER".
func bannerUDP(t *testing.T, ns *sandbox.Netns, port uint16, banner string) *datagramLog {
	t.Helper()
	log := &datagramLog{}
	answerUDP(t, ns, port, func(pc net.PacketConn, from net.Addr, b []byte) {
		peer := from.(*net.UDPAddr).AddrPort().Addr().Unmap()
		log.add("from=" + peer.String() + " " + string(b))
		fmt.Fprintf(writerTo{pc, from}, "%s from=%s\n", banner, peer)
	})
	return log
}

type writerTo struct {
	pc net.PacketConn
	to net.Addr
}

func (w writerTo) Write(b []byte) (int, error) { return w.pc.WriteTo(b, w.to) }

// bannerProbe is one connection attempt of a lab scenario and what the
// client must observe: a banner line, or an outcome (refused, prohibited,
// timeout), and the errors its raw sockets catch (see capture).
type bannerProbe struct {
	name  string
	from  *sandbox.Netns
	udp   bool
	src   netip.Addr // optional local address
	dst   netip.AddrPort
	want  string
	seen  []string
	ifSet bool // seen is checked even when empty
}

// runBannerProbes runs each probe as a subtest.
func runBannerProbes(t *testing.T, probes []bannerProbe) {
	t.Helper()
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			c := startCapture(t, p.from, p.dst.Addr().Is6())
			got := fetchBanner(p.from, p.udp, p.src, p.dst)
			seen := c.stop()
			if got != p.want {
				t.Errorf("%s from %s to %s: got %q, want %q (ICMP/RST seen: %q)", map[bool]string{false: "tcp", true: "udp"}[p.udp], p.from.Name, p.dst, got, p.want, seen)
			}
			if (p.seen != nil || p.ifSet) && !cmp.Equal(p.seen, seen, cmp.Comparer(func(a, b []string) bool { return strings.Join(a, "|") == strings.Join(b, "|") })) {
				t.Errorf("%s: seen %q, want %q", p.name, seen, p.seen)
			}
		})
	}
}

// fetchBanner connects from ns to dst (TCP, or UDP with one datagram) and
// returns the line the server answered, or what the socket error says the
// network answered.
func fetchBanner(ns *sandbox.Netns, udp bool, src netip.Addr, dst netip.AddrPort) string {
	return fetchBannerWithin(ns, udp, src, dst, probeTimeout)
}

// fetchBannerWithin is fetchBanner with timeout bounding the connection
// and the answer each.
func fetchBannerWithin(ns *sandbox.Netns, udp bool, src netip.Addr, dst netip.AddrPort, timeout time.Duration) string {
	return fetchBannerContext(context.Background(), ns, udp, src, dst, timeout)
}

// fetchBannerContext is fetchBannerWithin whose connect also ends when ctx
// does (a timeout).
func fetchBannerContext(ctx context.Context, ns *sandbox.Netns, udp bool, src netip.Addr, dst netip.AddrPort, timeout time.Duration) string {
	var got string
	ns.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		network := "tcp"
		if udp {
			network = "udp"
		}
		if src.IsValid() {
			if udp {
				d.LocalAddr = &net.UDPAddr{IP: src.AsSlice()}
			} else {
				d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
			}
		}
		conn, err := d.DialContext(ctx, network, dst.String())
		if err != nil {
			got = string(errOutcome(err))
			return nil
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(timeout))
		if udp {
			if _, err := conn.Write([]byte("query")); err != nil {
				got = string(errOutcome(err))
				return nil
			}
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			got = string(errOutcome(err))
			return nil
		}
		got = strings.TrimSuffix(line, "\n")
		return nil
	})
	return got
}

// sendDatagram sends one UDP datagram with payload from src (an address
// of ns) to dst and does not wait for an answer.
func sendDatagram(t *testing.T, ns *sandbox.Netns, src netip.Addr, dst netip.AddrPort, payload string) {
	t.Helper()
	if err := sendDatagramFrom(ns, netip.AddrPortFrom(src, 0), dst, payload); err != nil {
		t.Fatalf("send datagram %s -> %s from %s: %v", src, dst, ns.Name, err)
	}
}

// sendDatagramFrom is sendDatagram returning its error.
func sendDatagramFrom(ns *sandbox.Netns, src, dst netip.AddrPort, payload string) error {
	return ns.Do(func() error {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(src), net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(payload))
		return err
	})
}

// spoofedSource gives the uplink host an extra address inside a LAN
// subnet (the 99th host), so that it can send packets with a LAN source
// as an attacker on the uplink would; it returns the address.
func (l *gatewayLab) spoofedSource(t *testing.T, lan netip.Prefix) netip.Addr {
	t.Helper()
	return addSpoofed(t, l.sb, uplinkRole, lan)
}

// spoofedAddr is the 99th host of lan: the address addSpoofed adds.
func spoofedAddr(lan netip.Prefix) netip.Addr {
	a := lan.Masked().Addr()
	for range 99 {
		a = a.Next()
	}
	return a
}

// addSpoofed gives the host of LAN role an extra address inside the subnet
// lan (its 99th host) and returns it: packets sent from it carry a source
// that does not belong behind the link they leave on.
func addSpoofed(t *testing.T, sb *sandbox.Sandbox, role string, lan netip.Prefix) netip.Addr {
	t.Helper()
	a := spoofedAddr(lan)
	bits := "/32"
	args := []string{"ip", "addr", "add"}
	if a.Is6() {
		bits = "/128"
		args = []string{"ip", "-6", "addr", "add"}
	}
	args = append(args, a.String()+bits, "dev", sb.Link(role))
	if a.Is6() {
		// Deprecated at once: usable when a socket binds it, never chosen
		// as the source of the host's own connections (it would be, by
		// longest prefix match, toward every LAN).
		args = append(args, "nodad", "preferred_lft", "0")
	}
	sb.MustExec(role, args...)
	return a
}

// checkRPFilter sends a datagram from the uplink to dst (which reaches
// lan2:53) from spoof and one from genuine: only the genuine one may
// arrive, and the rpfilter drop counter of their family must grow.
func (l *gatewayLab) checkRPFilter(t *testing.T, spoof, genuine netip.Addr, dst netip.AddrPort) {
	t.Helper()
	v6 := genuine.Is6()
	before := l.rpfilterDrops(t, v6)
	sendDatagram(t, l.up, spoof, dst, "spoofed")
	sendDatagram(t, l.up, genuine, dst, "genuine")
	if !eventually(2*time.Second, func() bool { return l.dns2.has(genuine, "genuine") }) {
		t.Fatalf("the genuine datagram did not arrive at lan2:53; it got:\n%s", l.dns2)
	}
	time.Sleep(captureGrace)
	if l.dns2.has(spoof, "spoofed") {
		t.Errorf("a datagram from spoofed source %s reached lan2:53", spoof)
	}
	if after := l.rpfilterDrops(t, v6); after <= before {
		t.Errorf("rpfilter drop counter %d -> %d, want it to grow", before, after)
	}
}

// rpfilterDrops returns the packet counter of nfqfw's rpfilter rule in the
// gateway's raw table for the family of v6.
func (l *gatewayLab) rpfilterDrops(t *testing.T, v6 bool) int {
	t.Helper()
	cmd := "iptables"
	if v6 {
		cmd = "ip6tables"
	}
	out := l.gw.MustExec(cmd, "-t", "raw", "-L", "NFQFW-PREROUTING", "-v", "-x", "-n")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "rpfilter") && strings.Contains(line, "DROP") {
			f := strings.Fields(line)
			n, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatalf("rpfilter counter in %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no rpfilter rule in the gateway's raw table:\n%s", out)
	return 0
}

// eventually polls cond every 20 ms for at most d.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var forwardLine = regexp.MustCompile(`(?m)^    - \{name: web-fwd, .*\}$`)

// TestNATGateway is setup 8 of the design, over IPv4: a gateway with two
// LANs and an uplink, nfqfw deciding its forward chain. The LAN hosts go
// out masqueraded, on their allowed services only; the uplink reaches
// exactly the forwarded ports, which land on the right internal host and
// port; a LAN source spoofed from the uplink is dropped by the reverse
// path filter; a reload moves a port forward; and stopping nfqfw leaves
// the gateway's tables as they were, the operator's own nat rules
// included.
func TestNATGateway(t *testing.T) {
	requireSandbox(t)
	t.Parallel()
	var l *gatewayLab
	var spoof netip.Addr
	up4 := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(l.sb.Addr4(uplinkRole), port) }
	gw4 := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(l.sb.GatewayAddr4(uplinkRole), port) }
	lan4 := func(role string, port uint16) netip.AddrPort { return netip.AddrPortFrom(l.sb.Addr4(role), port) }

	newGatewayLab(t, func(lab *gatewayLab) {
		l = lab // the lab before nfqfw starts
		spoof = l.spoofedSource(t, gatewayLANs[0].V4)
		// Without nfqfw the gateway only routes: the uplink reaches
		// every LAN service directly, unmasqueraded, and a spoofed
		// source goes through.
		runBannerProbes(t, []bannerProbe{
			{name: "without nfqfw the uplink reaches lan1 directly", from: l.up, dst: lan4(lan1Role, 443), want: "lan1:443 from=" + l.sb.Addr4(uplinkRole).String()},
			{name: "without nfqfw lan1 is not masqueraded", from: l.lan1, dst: up4(80), want: "wan:80 from=" + l.sb.Addr4(lan1Role).String()},
		})
		sendDatagram(t, l.up, spoof, lan4(lan2Role, 53), "spoofed before nfqfw")
		if !eventually(time.Second, func() bool { return l.dns2.has(spoof, "spoofed before nfqfw") }) {
			t.Fatalf("without nfqfw a spoofed datagram did not arrive: the spoof test would prove nothing; lan2 got:\n%s", l.dns2)
		}
	})
	gwUp := l.sb.GatewayAddr4(uplinkRole).String()
	upHost := l.sb.Addr4(uplinkRole).String()

	runBannerProbes(t, []bannerProbe{
		// The LANs go out, masqueraded: the uplink sees the gateway.
		{name: "lan1 https out is masqueraded", from: l.lan1, dst: up4(443), want: "wan:443 from=" + gwUp},
		{name: "lan1 http out is masqueraded", from: l.lan1, dst: up4(80), want: "wan:80 from=" + gwUp},
		{name: "lan2 https out is masqueraded", from: l.lan2, dst: up4(443), want: "wan:443 from=" + gwUp},
		{name: "lan2 dns out is masqueraded", from: l.lan2, udp: true, dst: up4(53), want: "wan:53 from=" + gwUp},
		// Only the multiport services: another TCP port is reset.
		{name: "lan1 port not in the multiport list is reset", from: l.lan1, dst: up4(8080), want: string(refused),
			seen: []string{"tcp RST from " + up4(8080).String()}},

		// The port forwards land on their internal host and port, the
		// client's address kept.
		{name: "uplink gw:22 lands on lan1:22", from: l.up, dst: gw4(22), want: "lan1:22 from=" + upHost},
		{name: "uplink gw:8000 lands on lan1:80", from: l.up, dst: gw4(8000), want: "lan1:80 from=" + upHost},
		{name: "uplink udp gw:5353 lands on lan2:53", from: l.up, udp: true, dst: gw4(5353), want: "lan2:53 from=" + upHost},
		// Nothing else: not another gateway port, not the LANs directly
		// (forward policy drop), not the forwarded host on another port.
		{name: "uplink gw:80 is not forwarded", from: l.up, dst: gw4(80), want: string(timedOut), ifSet: true},
		{name: "uplink to lan1:443 directly is dropped", from: l.up, dst: lan4(lan1Role, 443), want: string(timedOut), ifSet: true},
		{name: "uplink to lan2:22 directly is dropped", from: l.up, dst: lan4(lan2Role, 22), want: string(timedOut), ifSet: true},
	})

	t.Run("uplink pings the gateway", func(t *testing.T) {
		if err := l.up.Ping(l.sb.GatewayAddr4(uplinkRole), 1, probeTimeout); err != nil {
			t.Error(err)
		}
	})
	t.Run("lan1 pings the uplink", func(t *testing.T) {
		if err := l.lan1.Ping(l.sb.Addr4(uplinkRole), 1, probeTimeout); err != nil {
			t.Error(err)
		}
	})

	t.Run("rpfilter drops a lan source spoofed from the uplink", func(t *testing.T) {
		// The same datagram to the forwarded udp port, once from the
		// uplink's own address and once from a lan1 address: without
		// rpfilter both would be forwarded to lan2:53.
		l.checkRPFilter(t, spoof, l.sb.Addr4(uplinkRole), gw4(5353))
	})

	t.Run("metrics count the forwards under their own names", func(t *testing.T) {
		checkMetrics(t, l.fw.metrics(), map[string]float64{
			`nfqfw_packets_total{action="accept",chain="forward",rule="ssh-fwd"}`:    1,
			`nfqfw_packets_total{action="accept",chain="forward",rule="web-fwd"}`:    1,
			`nfqfw_packets_total{action="accept",chain="forward",rule="dns-fwd"}`:    1,
			`nfqfw_packets_total{action="accept",chain="forward",rule="lan-tcp"}`:    3,
			`nfqfw_packets_total{action="accept",chain="forward",rule="lan-udp"}`:    1,
			`nfqfw_packets_total{action="reject",chain="forward",rule="lan-closed"}`: 1,
			`nfqfw_packets_total{action="drop",chain="forward",rule=""}`:             2, // the uplink to the LANs directly
		})
	})

	t.Run("reload moves a port forward", func(t *testing.T) {
		cfg, err := os.ReadFile(l.fw.config)
		if err != nil {
			t.Fatal(err)
		}
		moved := fmt.Sprintf("    - {name: web-fwd, in: wan, proto: tcp, port: 8080, to: %s, to_port: 80}", l.sb.Addr4(lan2Role))
		if !forwardLine.Match(cfg) {
			t.Fatalf("no web-fwd line in the config:\n%s", cfg)
		}
		if err := os.WriteFile(l.fw.config, forwardLine.ReplaceAll(cfg, []byte(moved)), 0o600); err != nil {
			t.Fatal(err)
		}
		l.fw.reload()
		runBannerProbes(t, []bannerProbe{
			{name: "the new forward gw:8080 lands on lan2:80", from: l.up, dst: gw4(8080), want: "lan2:80 from=" + upHost},
			{name: "the old forward gw:8000 is gone", from: l.up, dst: gw4(8000), want: string(timedOut), ifSet: true},
			{name: "lan1:80 is not reachable directly any more", from: l.up, dst: lan4(lan1Role, 80), want: string(timedOut), ifSet: true},
			{name: "the other forwards stay", from: l.up, dst: gw4(22), want: "lan1:22 from=" + upHost},
			{name: "lan1 still goes out", from: l.lan1, dst: up4(443), want: "wan:443 from=" + gwUp},
		})
	})

	t.Run("stop leaves the tables as found", l.stopAndCompare)
}

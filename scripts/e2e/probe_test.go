package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// Bounds of the probes.
const (
	probeTimeout = 1500 * time.Millisecond // a probe that gets no answer within this timed out
	captureGrace = 300 * time.Millisecond  // how long the raw sockets keep listening after a probe
)

// outcome is what a client observed for one probe.
type outcome string

const (
	connected   outcome = "connected, data echoed" // TCP handshake and one round trip
	answered    outcome = "answered"               // a UDP or ICMP echo reply came back
	refused     outcome = "refused"                // ECONNREFUSED: a TCP reset, or ICMP port unreachable for UDP
	prohibited  outcome = "prohibited"             // EACCES: ICMP administratively prohibited
	unreachable outcome = "unreachable"            // EHOSTUNREACH, ENETUNREACH: ICMP host or net unreachable
	timedOut    outcome = "timeout"                // nothing came back
	sent        outcome = "sent"                   // a raw packet left; only the capture tells what came back
)

// probeKind is what a probe sends.
type probeKind string

const (
	tcpConnect probeKind = "tcp"     // connect, then one echo round trip
	udpQuery   probeKind = "udp"     // a connected UDP socket: one datagram, wait for an answer
	icmpEcho   probeKind = "ping"    // one ICMP (v6) echo request
	tcpACK     probeKind = "ack"     // a raw TCP ACK that belongs to no connection
	tcpXmas    probeKind = "xmas"    // a raw TCP FIN+PSH+URG (an nmap XMAS probe): INVALID to conntrack
	rawGRE     probeKind = "gre"     // a raw GRE packet: a protocol no rule names
	neighPing  probeKind = "nd-ping" // flush every neighbour cache, then ping: neighbour discovery must work
)

// greProto is GRE's IP protocol number. The probe for "another protocol"
// uses GRE rather than an unassigned number on purpose: the kernel's REJECT
// verifies a ones-complement checksum over the payload of protocols it does
// not know, and silently sends nothing when that fails (nf_send_unreach,
// nf_reject_verify_csum); for GRE, ESP, AH, SCTP and the like it skips that
// check and always answers.
const greProto = 47

// grePacket is a GRE header (no flags, version 0, carrying IPv4) followed
// by a few bytes of would-be inner packet.
var grePacket = []byte{0x00, 0x00, 0x08, 0x00, 'n', 'f', 'q', 'f', 'w', ' ', 'e', '2', 'e'}

// probe is one step of a scenario: what the client sends and what it must
// observe.
type probe struct {
	name string
	kind probeKind
	src  netip.AddrPort // optional local address (UDP)
	dst  netip.AddrPort // the port is ignored by pings
	want outcome
	// seen is what the client's raw sockets must catch in reply: TCP
	// resets and ICMP errors, as formatted by capture.
	seen []string
}

// result is what a probe observed.
type result struct {
	Outcome outcome
	Seen    []string
}

// runProbes runs each probe from ns in order, as a subtest, and compares
// what the client observed with what the probe wants. sb is needed by
// neighbour-discovery probes only.
func runProbes(t *testing.T, sb *sandbox.Sandbox, ns *sandbox.Netns, probes []probe) {
	t.Helper()
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			got := observe(t, sb, ns, p)
			want := result{Outcome: p.want, Seen: p.seen}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s %s from %s: observed (-want +got):\n%s", p.kind, p.dst, ns.Name, diff)
			}
		})
	}
}

// observe sends p from ns while raw sockets record what comes back.
func observe(t *testing.T, sb *sandbox.Sandbox, ns *sandbox.Netns, p probe) result {
	t.Helper()
	c := startCapture(t, ns, p.dst.Addr().Is6())
	var got outcome
	switch p.kind {
	case tcpConnect:
		got = dialTCP(ns, p.dst)
	case udpQuery:
		got = queryUDP(ns, p.src, p.dst)
	case icmpEcho:
		got = ping(ns, p.dst.Addr())
	case neighPing:
		for _, role := range append(sb.Roles(), sandbox.Gateway) {
			sb.MustExec(role, "ip", "neigh", "flush", "all")
		}
		got = ping(ns, p.dst.Addr())
	case tcpACK:
		got = sendRaw(ns, p.dst.Addr(), int(layers.IPProtocolTCP), ackSegment(t, srcAddr(t, ns, p.dst.Addr()), p.dst))
	case tcpXmas:
		b, err := tcpSegment(srcAddr(t, ns, p.dst.Addr()), p.dst, &layers.TCP{FIN: true, PSH: true, URG: true})
		if err != nil {
			t.Fatal(err)
		}
		got = sendRaw(ns, p.dst.Addr(), int(layers.IPProtocolTCP), b)
	case rawGRE:
		got = sendRaw(ns, p.dst.Addr(), greProto, grePacket)
	default:
		t.Fatalf("unknown probe kind %q", p.kind)
	}
	return result{Outcome: got, Seen: c.stop()}
}

// dialTCP connects from ns to dst and does one echo round trip.
func dialTCP(ns *sandbox.Netns, dst netip.AddrPort) outcome {
	return dialTCPWithin(ns, dst, probeTimeout)
}

// dialTCPWithin is dialTCP with timeout bounding the connect and the round
// trip each.
func dialTCPWithin(ns *sandbox.Netns, dst netip.AddrPort, timeout time.Duration) outcome {
	return dialTCPContext(context.Background(), ns, dst, timeout)
}

// dialTCPContext is dialTCPWithin whose connect also ends when ctx does
// (a timeout).
func dialTCPContext(ctx context.Context, ns *sandbox.Netns, dst netip.AddrPort, timeout time.Duration) outcome {
	var got outcome
	ns.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", dst.String())
		if err != nil {
			got = errOutcome(err)
			return nil
		}
		defer conn.Close()
		got = roundTripWithin(conn, timeout)
		if got == answered {
			got = connected
		}
		return nil
	})
	return got
}

// queryUDP sends one datagram from ns to dst on a connected socket (bound
// to src when valid) and waits for the answer or the error an ICMP message
// reports.
func queryUDP(ns *sandbox.Netns, src, dst netip.AddrPort) outcome {
	return queryUDPWithin(ns, src, dst, probeTimeout)
}

// queryUDPWithin is queryUDP waiting at most timeout for the answer.
func queryUDPWithin(ns *sandbox.Netns, src, dst netip.AddrPort, timeout time.Duration) outcome {
	var got outcome
	ns.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = net.UDPAddrFromAddrPort(src)
		}
		conn, err := d.Dial("udp", dst.String())
		if err != nil {
			got = errOutcome(err)
			return nil
		}
		defer conn.Close()
		got = roundTripWithin(conn, timeout)
		return nil
	})
	return got
}

// roundTrip writes a message on conn and expects it echoed within
// probeTimeout.
func roundTrip(conn net.Conn) outcome { return roundTripWithin(conn, probeTimeout) }

// roundTripWithin is roundTrip bounded by timeout.
func roundTripWithin(conn net.Conn, timeout time.Duration) outcome {
	msg := []byte("nfqfw e2e probe\n")
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(msg); err != nil {
		return errOutcome(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return errOutcome(err)
	}
	if !bytes.Equal(buf, msg) {
		return outcome(fmt.Sprintf("wrong echo %q", buf))
	}
	return answered
}

func ping(ns *sandbox.Netns, dst netip.Addr) outcome {
	if err := ns.Ping(dst, 1, probeTimeout); err != nil {
		return timedOut
	}
	return answered
}

// errOutcome names what a socket error says the network answered.
func errOutcome(err error) outcome {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return refused
	case errors.Is(err, syscall.EACCES):
		return prohibited
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return unreachable
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout(),
		errors.Is(err, context.Canceled): // a prober that stopped waiting
		return timedOut
	}
	return outcome("error: " + err.Error())
}

// sendRaw sends payload as the body of an IP packet of protocol proto
// from ns to dst; the kernel adds the IP header.
func sendRaw(ns *sandbox.Netns, dst netip.Addr, proto int, payload []byte) outcome {
	network := fmt.Sprintf("ip4:%d", proto)
	if dst.Is6() {
		network = fmt.Sprintf("ip6:%d", proto)
	}
	var got outcome = sent
	ns.Do(func() error {
		c, err := net.ListenPacket(network, "")
		if err != nil {
			got = outcome("error: " + err.Error())
			return nil
		}
		defer c.Close()
		if _, err := c.WriteTo(payload, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			got = outcome("error: " + err.Error())
		}
		return nil
	})
	return got
}

// ackSegment is a bare TCP ACK from src to dst with arbitrary sequence
// numbers: a packet of no connection, which a host without a firewall
// answers with a reset.
func ackSegment(t *testing.T, src netip.Addr, dst netip.AddrPort) []byte {
	t.Helper()
	b, err := tcpSegment(src, dst, &layers.TCP{Ack: 0x2000, ACK: true})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tcpSegment serializes tcp (its flags, acknowledgement number and source
// port, 40404 when unset) from src to dst with sequence number 0x1000 and a
// valid checksum.
func tcpSegment(src netip.Addr, dst netip.AddrPort, tcp *layers.TCP) ([]byte, error) {
	if tcp.SrcPort == 0 {
		tcp.SrcPort = 40404
	}
	tcp.DstPort, tcp.Seq, tcp.Window = layers.TCPPort(dst.Port()), 0x1000, 1024
	var ip gopacket.NetworkLayer
	if dst.Addr().Is6() {
		ip = &layers.IPv6{SrcIP: src.AsSlice(), DstIP: dst.Addr().AsSlice(), NextHeader: layers.IPProtocolTCP}
	} else {
		ip = &layers.IPv4{SrcIP: src.AsSlice(), DstIP: dst.Addr().AsSlice(), Protocol: layers.IPProtocolTCP}
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		return nil, err
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, tcp); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// srcAddr is the address ns sends from toward dst (for checksums).
func srcAddr(t *testing.T, ns *sandbox.Netns, dst netip.Addr) netip.Addr {
	t.Helper()
	src, err := sourceToward(ns, dst)
	if err != nil {
		t.Fatalf("source address toward %s: %v", dst, err)
	}
	return src
}

// sourceToward is srcAddr returning its error.
func sourceToward(ns *sandbox.Netns, dst netip.Addr) (netip.Addr, error) {
	var src netip.Addr
	err := ns.Do(func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(dst, 9).String())
		if err != nil {
			return err
		}
		defer c.Close()
		src = c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
		return nil
	})
	return src, err
}

// capture records what a namespace receives on raw sockets of one family:
// TCP resets ("tcp RST from ADDR:PORT") and ICMP destination unreachable
// messages ("icmp port-unreachable from ADDR"). Raw sockets see packets
// after the namespace's own INPUT hook, which is empty for a client.
type capture struct {
	conns []net.PacketConn
	wg    sync.WaitGroup
	first chan struct{} // closed when the first packet is recorded
	mu    sync.Mutex
	seen  []string
}

func startCapture(t *testing.T, ns *sandbox.Netns, v6 bool) *capture {
	t.Helper()
	c, err := openCapture(ns, v6)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// openCapture is startCapture returning its error.
func openCapture(ns *sandbox.Netns, v6 bool) (*capture, error) {
	c := &capture{first: make(chan struct{})}
	tcpNet, icmpNet, icmpProto := "ip4:tcp", "ip4:icmp", 1
	if v6 {
		tcpNet, icmpNet, icmpProto = "ip6:tcp", "ip6:ipv6-icmp", 58
	}
	err := ns.Do(func() error {
		for _, network := range []string{tcpNet, icmpNet} {
			pc, err := net.ListenPacket(network, "")
			if err != nil {
				return fmt.Errorf("raw socket %s: %w", network, err)
			}
			c.conns = append(c.conns, pc)
		}
		return nil
	})
	if err != nil {
		c.close()
		return nil, fmt.Errorf("capture in %s: %w", ns.Name, err)
	}
	c.read(c.conns[0], func(b []byte, from netip.Addr) string { return describeTCP(b, from) })
	c.read(c.conns[1], func(b []byte, from netip.Addr) string { return describeICMP(icmpProto, b, from) })
	return c, nil
}

// read records what describe makes of each packet pc receives, until pc is
// closed.
func (c *capture) read(pc net.PacketConn, describe func([]byte, netip.Addr) string) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			fa, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
			if s := describe(buf[:n], fa.Unmap()); s != "" {
				c.mu.Lock()
				if len(c.seen) == 0 {
					close(c.first)
				}
				c.seen = append(c.seen, s)
				c.mu.Unlock()
			}
		}
	}()
}

// stop waits captureGrace for late answers, closes the sockets and returns
// what was seen, in arrival order.
func (c *capture) stop() []string { return c.stopAfter(captureGrace) }

// stopAfter is stop waiting grace.
func (c *capture) stopAfter(grace time.Duration) []string {
	time.Sleep(grace)
	c.close()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen
}

func (c *capture) close() {
	for _, pc := range c.conns {
		pc.Close()
	}
}

// describeTCP names a TCP reset; other segments are not recorded.
func describeTCP(b []byte, from netip.Addr) string {
	const rst = 0x04
	if len(b) < 20 || b[13]&rst == 0 {
		return ""
	}
	sport := uint16(b[0])<<8 | uint16(b[1])
	return "tcp RST from " + netip.AddrPortFrom(from, sport).String()
}

// describeICMP names an ICMP or ICMPv6 destination unreachable message;
// other messages (echo replies, neighbour discovery) are not recorded.
func describeICMP(proto int, b []byte, from netip.Addr) string {
	m, err := icmp.ParseMessage(proto, b)
	if err != nil {
		return ""
	}
	switch m.Type {
	case ipv4.ICMPTypeDestinationUnreachable:
		return "icmp " + lookup(icmpUnreachCodes, m.Code) + " from " + from.String()
	case ipv6.ICMPTypeDestinationUnreachable:
		return "icmpv6 " + lookup(icmp6UnreachCodes, m.Code) + " from " + from.String()
	}
	return ""
}

var icmpUnreachCodes = map[int]string{
	0: "net-unreachable", 1: "host-unreachable", 2: "protocol-unreachable", 3: "port-unreachable",
	9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited",
}

var icmp6UnreachCodes = map[int]string{
	0: "no-route", 1: "admin-prohibited", 3: "address-unreachable", 4: "port-unreachable",
}

func lookup(names map[int]string, code int) string {
	if n, ok := names[code]; ok {
		return n
	}
	return fmt.Sprintf("code-%d", code)
}

// newHostLab is the plain sandbox of the host tests, run in parallel: a
// client and the host.
func newHostLab(t *testing.T) (sb *sandbox.Sandbox, cli, host *sandbox.Netns) {
	t.Helper()
	requireSandbox(t)
	t.Parallel()
	sb = sandbox.New(t, sandbox.Options{})
	return sb, sb.NS(clientRole), sb.NS(hostRole)
}

// serveTCP opens an echo server in ns on each port, for IPv4 and IPv6. They
// close at test cleanup.
func serveTCP(t testing.TB, ns *sandbox.Netns, ports ...uint16) {
	t.Helper()
	for _, port := range ports {
		acceptTCP(t, ns, port, func(c net.Conn) { io.Copy(c, c) })
	}
}

// acceptTCP listens on port in ns (IPv4 and IPv6) and calls serve, on a
// goroutine of its own, with each connection it accepts. At test cleanup it
// stops listening, closes every connection and waits for every serve.
func acceptTCP(t testing.TB, ns *sandbox.Netns, port uint16, serve func(c net.Conn)) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port)); return err }); err != nil {
		t.Fatalf("listen tcp %d in %s: %v", port, ns.Name, err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// serveUDP opens a UDP echo server in ns on each port, for IPv4 and IPv6.
func serveUDP(t *testing.T, ns *sandbox.Netns, ports ...uint16) {
	t.Helper()
	for _, port := range ports {
		answerUDP(t, ns, port, func(pc net.PacketConn, from net.Addr, b []byte) { pc.WriteTo(b, from) })
	}
}

// answerUDP opens a UDP socket on port in ns (IPv4 and IPv6) and calls
// answer with each datagram it receives until the test ends.
func answerUDP(t *testing.T, ns *sandbox.Netns, port uint16, answer func(pc net.PacketConn, from net.Addr, b []byte)) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp", fmt.Sprintf("[::]:%d", port)); return err }); err != nil {
		t.Fatalf("listen udp %d in %s: %v", port, ns.Name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			answer(pc, from, buf[:n])
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
}

// conversation is one TCP connection kept open and exchanging a message
// every conversationTick, to show that established traffic survives what
// happens meanwhile (NEW flows decided, reloads, a crashed daemon).
type conversation struct {
	conn   net.Conn
	rounds atomic.Int64
	mu     sync.Mutex
	err    error // the first failure; the conversation stops there
	stopc  chan struct{}
	done   chan struct{}
}

const conversationTick = 50 * time.Millisecond

// cut reports whether the conversation failed within d.
func (c *conversation) cut(d time.Duration) bool {
	_, ok := waitFor(d, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.err != nil
	})
	return ok
}

// converse connects from ns to dst (an echo server) and keeps talking
// until test cleanup.
func converse(t *testing.T, ns *sandbox.Netns, dst netip.AddrPort) *conversation {
	t.Helper()
	conn, err := ns.DialTimeout("tcp", dst.String(), probeTimeout)
	if err != nil {
		t.Fatalf("conversation with %s: %v", dst, err)
	}
	c := &conversation{conn: conn, stopc: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	t.Cleanup(func() {
		close(c.stopc)
		<-c.done
		conn.Close()
	})
	c.check(t, "after connecting")
	return c
}

func (c *conversation) run() {
	defer close(c.done)
	tick := time.NewTicker(conversationTick)
	defer tick.Stop()
	for {
		select {
		case <-c.stopc:
			return
		case <-tick.C:
		}
		if got := roundTrip(c.conn); got != answered {
			c.mu.Lock()
			c.err = fmt.Errorf("round %d: %s", c.rounds.Load()+1, got)
			c.mu.Unlock()
			return
		}
		c.rounds.Add(1)
	}
}

// check fails t unless the conversation is still alive and completes three
// more round trips within a few seconds.
func (c *conversation) check(t *testing.T, when string) {
	t.Helper()
	target := c.rounds.Load() + 3
	deadline := time.Now().Add(3 * time.Second)
	for c.rounds.Load() < target && time.Now().Before(deadline) {
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		if err != nil {
			t.Fatalf("established connection %s: broke: %v", when, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := c.rounds.Load(); n < target {
		t.Fatalf("established connection %s: %d round trips, want %d", when, n, target)
	}
}

// linkLocal returns the fe80:: address of link in ns, zoned by the link.
func linkLocal(t *testing.T, ns *sandbox.Netns, link string) netip.Addr {
	t.Helper()
	out := ns.MustExec("ip", "-6", "-o", "addr", "show", "dev", link, "scope", "link")
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().IsLinkLocalUnicast() {
			return p.Addr().WithZone(link)
		}
	}
	t.Fatalf("%s: no link-local address on %s: %s", ns.Name, link, out)
	return netip.Addr{}
}

// requireSandbox skips (or, under CI=true, fails) t where the sandbox and
// the daemon cannot run, or one of the test's own tools is missing.
func requireSandbox(t testing.TB, tools ...string) {
	t.Helper()
	sandbox.Require(t, append([]string{"iptables", "iptables-save", "ip6tables-save", "iptables-restore", "ip6tables-restore"}, tools...)...)
}

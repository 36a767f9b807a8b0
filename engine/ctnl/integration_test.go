package ctnl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// eventLog collects the events Run delivers and lets the test wait for one.
type eventLog struct {
	ch   chan Event
	seen []Event
}

func (l *eventLog) add(e Event) {
	select {
	case l.ch <- e:
	default: // the test stopped looking; never block Run
	}
}

// await waits at most 3 s for an event matching ok (already seen or new).
func (l *eventLog) await(t *testing.T, what string, ok func(Event) bool) Event {
	t.Helper()
	for _, e := range l.seen {
		if ok(e) {
			return e
		}
	}
	deadline := time.After(3 * time.Second)
	for {
		select {
		case e := <-l.ch:
			l.seen = append(l.seen, e)
			if ok(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event within 3 s; seen: %+v", what, l.seen)
		}
	}
}

func tuple(proto uint8, src, dst netip.AddrPort) func(Event) bool {
	return func(e Event) bool {
		return e.Proto == proto && e.Src == src.Addr() && e.Dst == dst.Addr() &&
			e.SPort == src.Port() && e.DPort == dst.Port()
	}
}

func and(fs ...func(Event) bool) func(Event) bool {
	return func(e Event) bool {
		for _, f := range fs {
			if !f(e) {
				return false
			}
		}
		return true
	}
}

func ofType(t EventType) func(Event) bool { return func(e Event) bool { return e.Type == t } }

// TestFollowerInNetns makes UDP (v4 and v6) and TCP flows on loopback in a
// fresh namespace and follows them through the kernel's events, a dump, a
// delete by conntrack(8) and DeleteBySource.
func TestFollowerInNetns(t *testing.T) {
	sandbox.Require(t, "iptables", "ip6tables", "conntrack")
	ns := sandbox.NewNetns(t, "ct")
	// Conntrack runs in a namespace only once a rule needs it.
	ns.MustExec("iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	ns.MustExec("ip6tables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	opts := Options{NetNS: ns.Handle(), Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil))}

	f, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	log := &eventLog{ch: make(chan Event, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- f.Run(ctx, log.add) }()
	t.Cleanup(func() { cancel(); f.Close() })

	// A second listener that skips the new-flow group, as the daemon's does.
	skipOpts := opts
	skipOpts.SkipNew = true
	fSkip, err := Listen(skipOpts)
	if err != nil {
		t.Fatal(err)
	}
	logSkip := &eventLog{ch: make(chan Event, 1024)}
	go fSkip.Run(ctx, logSkip.add)
	t.Cleanup(func() { fSkip.Close() })

	udp4Srv, udp6Srv, tcpSrv := loopbackServers(t, ns, 9998, 9997)

	udp4Cli := udpExchange(t, ns, netip.MustParseAddr("127.0.0.2"), udp4Srv)
	udp6Cli := udpExchange(t, ns, netip.MustParseAddr("::1"), udp6Srv)
	tcpCli := tcpConnect(t, ns, tcpSrv)

	udp4 := tuple(17, udp4Cli, udp4Srv)
	udp6 := tuple(17, udp6Cli, udp6Srv)
	tcp := tuple(6, tcpCli, tcpSrv)

	t.Run("new and update events", func(t *testing.T) {
		log.await(t, "UDPv4 new", and(udp4, ofType(EventNew)))
		e := log.await(t, "UDPv4 replied", and(udp4, ofType(EventUpdate), func(e Event) bool { return e.SeenReply }))
		if e.ReplySrc != udp4Srv.Addr() || e.ReplySPort != udp4Srv.Port() || e.ReplyDPort != udp4Cli.Port() {
			t.Errorf("reply tuple of %+v is not the mirror of the original", e)
		}
		log.await(t, "UDPv6 new", and(udp6, ofType(EventNew)))
		log.await(t, "TCP new", and(tcp, ofType(EventNew), func(e Event) bool { return e.TCPState == TCPStateSynSent }))
		log.await(t, "TCP established", and(tcp, func(e Event) bool {
			return e.Type == EventUpdate && e.TCPState == TCPStateEstablished && e.Assured && e.Timeout > 0
		}))
	})

	t.Run("a listener that skips new flows gets the rest", func(t *testing.T) {
		logSkip.await(t, "UDPv4 replied", and(udp4, ofType(EventUpdate), func(e Event) bool { return e.SeenReply }))
		logSkip.await(t, "TCP established", and(tcp, func(e Event) bool {
			return e.Type == EventUpdate && e.TCPState == TCPStateEstablished && e.Assured
		}))
		for _, e := range logSkip.seen {
			if e.Type == EventNew {
				t.Errorf("SkipNew listener got a new-flow event: %+v", e)
			}
		}
	})

	t.Run("a listener that skips new flows follows them while asked to", func(t *testing.T) {
		// A backup gateway's daemon: new flows (conntrackd injects its
		// peer's) are wanted while it is backup, not after.
		if err := fSkip.FollowNew(true); err != nil {
			t.Fatal(err)
		}
		if err := fSkip.FollowNew(true); err != nil {
			t.Errorf("FollowNew(true) twice: %v", err)
		}
		on := tuple(17, udpExchange(t, ns, netip.MustParseAddr("127.0.0.6"), udp4Srv), udp4Srv)
		logSkip.await(t, "new flow while following new flows", and(on, ofType(EventNew)))
		if err := fSkip.FollowNew(false); err != nil {
			t.Fatal(err)
		}
		off := tuple(17, udpExchange(t, ns, netip.MustParseAddr("127.0.0.7"), udp4Srv), udp4Srv)
		// Events arrive in order: a new-flow event would come before the
		// reply's update.
		logSkip.await(t, "reply after leaving the new-flow group", and(off, ofType(EventUpdate)))
		if contains(logSkip.seen, and(off, ofType(EventNew))) {
			t.Errorf("a new-flow event after FollowNew(false): %+v", logSkip.seen)
		}
	})

	t.Run("dump lists the flows", func(t *testing.T) {
		table, err := f.Dump(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for name, match := range map[string]func(Event) bool{"UDPv4": udp4, "UDPv6": udp6, "TCP": tcp} {
			if !contains(table, and(match, ofType(EventDump))) {
				t.Errorf("dump lacks the %s flow: %+v", name, table)
			}
		}
		// The package-level Dump sees the same table over its own socket.
		again, err := Dump(ctx, opts)
		if err != nil || len(again) != len(table) {
			t.Errorf("Dump(opts) = %d flows, %v; want %d", len(again), err, len(table))
		}
	})

	t.Run("conntrack -D gives a destroy event", func(t *testing.T) {
		ns.MustExec("conntrack", "-D", "-f", "ipv6", "-p", "udp", "--dport", "9998")
		log.await(t, "UDPv6 destroy", and(udp6, ofType(EventDestroy)))
	})

	t.Run("DeleteBySource deletes only that source's flows", func(t *testing.T) {
		n, err := f.DeleteBySource(ctx, netip.MustParseAddr("127.0.0.2"))
		if err != nil || n != 1 {
			t.Fatalf("DeleteBySource(127.0.0.2) = %d, %v; want 1, nil", n, err)
		}
		log.await(t, "UDPv4 destroy", and(udp4, ofType(EventDestroy)))
		table, err := f.Dump(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if contains(table, udp4) || !contains(table, tcp) {
			t.Errorf("after DeleteBySource(127.0.0.2) the table is %+v; want the TCP flow, not the UDP one", table)
		}
		if n, err := f.DeleteBySource(ctx, netip.MustParseAddr("127.0.0.2")); n != 0 || err != nil {
			t.Errorf("second DeleteBySource = %d, %v; want 0, nil", n, err)
		}
		if _, err := f.DeleteBySource(ctx, netip.Addr{}); !errors.Is(err, ErrInvalidAddr) {
			t.Errorf("DeleteBySource(zero) = %v, want ErrInvalidAddr", err)
		}
	})

	t.Run("GRE and ICMP flows are dumped and deleted by source", func(t *testing.T) {
		// A gateway carries more than TCP and UDP: the dump must list a
		// GRE and an ICMP flow, and a ban's deletion must remove both
		// (their tuples carry a GRE key and an ICMP id, not ports).
		src := netip.MustParseAddr("127.0.0.3")
		greTo(t, ns, src, netip.MustParseAddr("127.0.0.1"))
		ns.MustExec("ping", "-c", "1", "-W", "1", "-I", "127.0.0.3", "127.0.0.1")
		fromSrc := func(e Event) bool { return e.Src == src }
		table, err := f.Dump(ctx)
		if err != nil {
			t.Fatalf("Dump with a GRE flow: %v", err)
		}
		var protos []uint8
		for _, e := range table {
			if fromSrc(e) {
				protos = append(protos, e.Proto)
			}
		}
		slices.Sort(protos)
		if !slices.Equal(protos, []uint8{1, 47}) {
			t.Fatalf("flows from %s in the dump: protocols %v, want [1 47]", src, protos)
		}
		n, err := f.DeleteBySource(ctx, src)
		if err != nil || n != 2 {
			t.Fatalf("DeleteBySource(%s) = %d, %v; want 2, nil", src, n, err)
		}
		if table, err := f.Dump(ctx); err != nil || contains(table, fromSrc) {
			t.Errorf("after DeleteBySource(%s): %v, table %+v", src, err, table)
		}
	})

	t.Run("DeleteByPrefix deletes the flows of every source in the prefix", func(t *testing.T) {
		// A prefix ban: the kernel's filter matches one address only, so
		// the flows of the family are dumped and picked here.
		for _, src := range []string{"127.0.0.4", "127.0.0.5", "127.0.1.1"} {
			ns.MustExec("ping", "-c", "1", "-W", "1", "-I", src, "127.0.0.1")
		}
		in := func(e Event) bool { return netip.MustParsePrefix("127.0.0.4/31").Contains(e.Src) }
		n, err := f.DeleteByPrefix(ctx, netip.MustParsePrefix("127.0.0.4/31"))
		if err != nil || n != 2 {
			t.Fatalf("DeleteByPrefix(127.0.0.4/31) = %d, %v; want 2, nil", n, err)
		}
		table, err := f.Dump(ctx)
		if err != nil || contains(table, in) || !contains(table, func(e Event) bool { return e.Src == netip.MustParseAddr("127.0.1.1") }) {
			t.Errorf("after DeleteByPrefix(127.0.0.4/31): %v, table %+v; want 127.0.1.1's flow only", err, table)
		}
		if n, err := f.DeleteByPrefix(ctx, netip.MustParsePrefix("127.0.1.1/32")); n != 1 || err != nil {
			t.Errorf("DeleteByPrefix(127.0.1.1/32) = %d, %v; want 1, nil", n, err)
		}
	})

	t.Run("a cancelled dump returns the context's error", func(t *testing.T) {
		done, stop := context.WithCancel(ctx)
		stop()
		if _, err := f.Dump(done); !errors.Is(err, context.Canceled) {
			t.Errorf("Dump(cancelled) = %v, want context.Canceled", err)
		}
	})

	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of cancel")
	}
	if s := f.Stats(); s.Events == 0 || s.Errors != 0 || s.ENOBUFS != 0 || s.DecodeErrors != 0 {
		t.Errorf("Stats = %+v, want events and no errors", s)
	}
}

func contains(table []Event, ok func(Event) bool) bool {
	for _, e := range table {
		if ok(e) {
			return true
		}
	}
	return false
}

// loopbackServers starts, on loopback in ns, UDP echo servers on IPv4 and
// IPv6 udpPort and a TCP acceptor on IPv4 tcpPort, and returns their
// addresses.
func loopbackServers(t *testing.T, ns *sandbox.Netns, udpPort, tcpPort uint16) (udp4, udp6, tcp netip.AddrPort) {
	t.Helper()
	udp4 = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), udpPort)
	udp6 = netip.AddrPortFrom(netip.IPv6Loopback(), udpPort)
	tcp = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tcpPort)
	udpEcho(t, ns, udp4)
	udpEcho(t, ns, udp6)
	tcpAccept(t, ns, tcp)
	return udp4, udp6, tcp
}

// udpEcho answers every datagram to addr (inside ns) until cleanup.
func udpEcho(t *testing.T, ns *sandbox.Netns, addr netip.AddrPort) {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 512)
		for { // ends when the socket is closed
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
}

// udpExchange sends one datagram from src to dst and waits for the echo;
// it returns the client's address.
func udpExchange(t *testing.T, ns *sandbox.Netns, src netip.Addr, dst netip.AddrPort) netip.AddrPort {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := c.Read(buf); err != nil || !bytes.Equal(buf[:n], []byte("ping")) {
		t.Fatalf("echo from %s: %q, %v", dst, buf[:n], err)
	}
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// greTo sends one GRE packet (an empty GRE header, protocol 0x0800) from
// src to dst inside ns.
func greTo(t *testing.T, ns *sandbox.Netns, src, dst netip.Addr) {
	t.Helper()
	var c *net.IPConn
	if err := ns.Do(func() (err error) {
		c, err = net.ListenIP("ip4:47", &net.IPAddr{IP: src.AsSlice()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteToIP([]byte{0, 0, 0x08, 0}, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		t.Fatal(err)
	}
}

func tcpAccept(t *testing.T, ns *sandbox.Netns, addr netip.AddrPort) {
	t.Helper()
	var l net.Listener
	if err := ns.Do(func() (err error) {
		l, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var conns []net.Conn
		for { // ends when the listener is closed
			c, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
}

func tcpConnect(t *testing.T, ns *sandbox.Netns, dst netip.AddrPort) netip.AddrPort {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", dst.String(), 2*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().(*net.TCPAddr).AddrPort()
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// TestFollowerResyncsAfterOverrun lets the kernel produce more events
// than a tiny socket buffer holds before Run reads: Run must count the
// overrun, drain the socket, dump the table into Options.Resync, and go on.
func TestFollowerResyncsAfterOverrun(t *testing.T) {
	sandbox.Require(t, "iptables")
	ns := sandbox.NewNetns(t, "ctovr")
	ns.MustExec("iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	const flows = 300
	resynced := make(chan int, 64)
	f, err := Listen(Options{
		NetNS:      ns.Handle(),
		ReadBuffer: 4096, // a few events' worth
		Resync: func(table []Event) {
			select {
			case resynced <- len(table):
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); f.Close() })

	// 300 UDP flows to closed ports while nobody reads: each one a New
	// event, far more than 4 KiB of socket buffer. Unreplied UDP flows
	// live 30 s, so the dump still holds them all.
	if err := ns.Do(func() error {
		for i := range flows {
			c, err := net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", 20000+i))
			if err != nil {
				return err
			}
			c.Write([]byte("x"))
			c.Close()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	events := 0
	runErr := make(chan error, 1)
	go func() { runErr <- f.Run(ctx, func(Event) { events++ }) }()
	select {
	case n := <-resynced:
		if n < flows {
			t.Errorf("resync table has %d flows, want at least %d", n, flows)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no resync within 5 s; stats %+v", f.Stats())
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	s := f.Stats()
	if s.ENOBUFS == 0 || s.Resyncs != 1 || s.Events == 0 || s.Events >= flows {
		t.Errorf("Stats = %+v, want an overrun, one resync, and some but not all %d events", s, flows)
	}
	if uint64(events) != s.Events {
		t.Errorf("callback saw %d events, Stats.Events = %d", events, s.Events)
	}
}

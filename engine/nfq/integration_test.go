package nfq

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
	"golang.org/x/sys/unix"
)

const (
	testQueue = 7
	testPort  = 9999
	// rejectMark is the mark a repeat verdict sets; the netns has a REJECT
	// rule for it (mask 0xff0000) ahead of the NFQUEUE rule.
	rejectMark = 0x10000
	// maxCopyRange is what the kernel makes of MaxPacketLen: it caps the
	// copy range at 0xffff minus a netlink attribute header.
	maxCopyRange = 0xffff - 4
)

// payloadDecider decides UDP/IPv4 packets by the first word of their
// payload: "accept", "drop" or "reject" (repeat with rejectMark). It
// records the metadata of every packet.
type payloadDecider struct {
	mu    sync.Mutex
	metas []Meta
}

func (d *payloadDecider) Decide(pkt []byte, m Meta) Verdict {
	d.mu.Lock()
	d.metas = append(d.metas, m)
	d.mu.Unlock()
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return Drop
	}
	payload := pkt[int(pkt[0]&0xf)*4+8:] // IPv4 header, then 8 bytes of UDP header
	switch {
	case bytes.HasPrefix(payload, []byte("accept")):
		return Accept
	case bytes.HasPrefix(payload, []byte("reject")):
		return RepeatWithMark(rejectMark)
	}
	return Drop
}

// TestReaderInNetns queues UDP to 127.0.0.1:9999 inside a fresh namespace
// and proves each verdict does what the kernel contract says.
func TestReaderInNetns(t *testing.T) {
	sandbox.Require(t, "iptables")
	ns := sandbox.NewNetns(t, "nfq")
	ns.MustExec("iptables", "-A", "OUTPUT", "-o", "lo", "-p", "udp", "--dport", "9999",
		"-m", "mark", "--mark", "0x10000/0xff0000", "-j", "REJECT")
	ns.MustExec("iptables", "-A", "OUTPUT", "-o", "lo", "-p", "udp", "--dport", "9999",
		"-j", "NFQUEUE", "--queue-num", "7")

	d := &payloadDecider{}
	r, err := Open(Config{Queue: testQueue, MaxLen: 256, NetNS: ns.Handle(), Logger: testLogger(t)}, d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); r.Close() })

	lis := listenUDP(t, ns)

	t.Run("accept delivers", func(t *testing.T) {
		c := dialInNetns(t, ns)
		send(t, c, "accept 1")
		if got, err := recv(lis, 2*time.Second); err != nil || got != "accept 1" {
			t.Errorf("listener got %q, %v; want %q", got, err, "accept 1")
		}
	})
	t.Run("drop does not deliver", func(t *testing.T) {
		c := dialInNetns(t, ns)
		send(t, c, "drop 1")
		if got, err := recv(lis, 300*time.Millisecond); !isTimeout(err) {
			t.Errorf("listener got %q, %v; want nothing", got, err)
		}
	})
	t.Run("repeat with the reject mark is refused", func(t *testing.T) {
		c := dialInNetns(t, ns)
		send(t, c, "reject 1")
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 64))
		if !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("read on the sender = %v, want connection refused (ICMP port unreachable)", err)
		}
		if got, err := recv(lis, 100*time.Millisecond); !isTimeout(err) {
			t.Errorf("listener got %q, %v; want nothing", got, err)
		}
	})
	t.Run("a second socket on the queue is refused", func(t *testing.T) {
		r2, err := Open(Config{Queue: testQueue, NetNS: ns.Handle()}, d)
		if err == nil {
			r2.Close()
			t.Fatal("second Open on the same queue succeeded")
		}
		if !errors.Is(err, ErrQueueInUse) {
			t.Errorf("second Open = %v, want ErrQueueInUse", err)
		}
		t.Logf("second Open: %v", err)
	})
	t.Run("kernel queue table", func(t *testing.T) {
		qs := queueTable(t, ns)
		if len(qs) != 1 || qs[0].Queue != testQueue || qs[0].IDSequence != 3 || qs[0].CopyMode != 2 || qs[0].CopyRange != maxCopyRange {
			t.Errorf("queue table = %+v, want queue 7, copy packet %d, 3 packets queued", qs, maxCopyRange)
		}
	})

	want := Stats{Packets: 3, Accepted: 1, Dropped: 1, Repeated: 1}
	if diff := cmp.Diff(want, r.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	d.mu.Lock()
	for _, m := range d.metas {
		if m.Hook != HookOutput || m.OutDev != 1 || m.InDev != 0 {
			t.Errorf("meta %+v, want OUTPUT hook, out via lo (index 1)", m)
		}
	}
	d.mu.Unlock()

	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of cancel")
	}
	// The queue is free again: a new reader can bind it.
	r3, err := Open(Config{Queue: testQueue, NetNS: ns.Handle()}, d)
	if err != nil {
		t.Fatalf("Open after Run returned: %v", err)
	}
	r3.Close()
}

// queueTable reads the kernel's queue table of ns.
func queueTable(t *testing.T, ns *sandbox.Netns) []QueueProcStats {
	t.Helper()
	var qs []QueueProcStats
	if err := ns.Do(func() (err error) {
		qs, err = ReadProcStats("/proc/thread-self/net/netfilter/nfnetlink_queue")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return qs
}

func dialInNetns(t *testing.T, ns *sandbox.Netns) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: testPort})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c *net.UDPConn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("send %q: %v", msg, err)
	}
}

func recv(c *net.UDPConn, d time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestFailOpenInNetns fills a one-packet queue while the decider is stuck
// and proves the FailOpen choice: the kernel accepts the overflow when set,
// drops it when not. Measured here: only the drops are counted in the queue
// table (queue_dropped); fail-open accepts leave no kernel counter.
func TestFailOpenInNetns(t *testing.T) {
	sandbox.Require(t, "iptables")
	tests := []struct {
		name        string
		failOpen    bool
		wantGot     int    // overflow datagrams that reach the listener
		wantDropped uint32 // queue_dropped in the kernel's queue table
	}{
		{name: "fail open accepts the overflow, uncounted", failOpen: true, wantGot: 4, wantDropped: 0},
		{name: "fail closed drops the overflow, counted", failOpen: false, wantGot: 0, wantDropped: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := sandbox.NewNetns(t, "nfqfo")
			ns.MustExec("iptables", "-A", "OUTPUT", "-o", "lo", "-p", "udp", "--dport", "9999",
				"-j", "NFQUEUE", "--queue-num", "7")
			release := make(chan struct{})
			stuck := DeciderFunc(func([]byte, Meta) Verdict {
				<-release // a stuck engine: never do this in a real Decider
				return Drop
			})
			r, err := Open(Config{Queue: testQueue, MaxLen: 1, FailOpen: tt.failOpen, NetNS: ns.Handle()}, stuck)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			t.Cleanup(func() { close(release) }) // runs first: unblock, then close
			lis := listenUDP(t, ns)
			c := dialInNetns(t, ns)
			for i := range 5 {
				send(t, c, "overflow "+string(rune('1'+i)))
			}
			got := 0
			for {
				if _, err := recv(lis, 300*time.Millisecond); err != nil {
					break
				}
				got++
			}
			// 5 sent: the first waits in the queue for the stuck
			// decider, the other 4 overflow the one-packet queue.
			if got != tt.wantGot {
				t.Errorf("listener got %d datagrams, want %d", got, tt.wantGot)
			}
			qs := queueTable(t, ns)
			if len(qs) != 1 || qs[0].Dropped != tt.wantDropped || qs[0].QueueTotal != 1 {
				t.Errorf("queue table = %+v, want 1 waiting and queue_dropped %d", qs, tt.wantDropped)
			}
		})
	}
}

// TestDecidingShowsAStuckReader: an idle reader reports 0 (it waits for
// packets, responsive); one whose Decider does not return reports how long
// it has been at it, until it returns. The daemon's watchdog reads this.
func TestDecidingShowsAStuckReader(t *testing.T) {
	sandbox.Require(t, "iptables")
	ns := sandbox.NewNetns(t, "nfqdc")
	ns.MustExec("iptables", "-A", "OUTPUT", "-o", "lo", "-p", "udp", "--dport", "9999",
		"-j", "NFQUEUE", "--queue-num", "7")
	entered, release := make(chan struct{}, 1), make(chan struct{})
	stuck := DeciderFunc(func([]byte, Meta) Verdict {
		entered <- struct{}{}
		<-release
		return Drop
	})
	r, err := Open(Config{Queue: testQueue, NetNS: ns.Handle()}, stuck)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	if d := r.Deciding(); d != 0 {
		t.Errorf("idle reader: Deciding() = %v, want 0", d)
	}
	send(t, dialInNetns(t, ns), "stuck")
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the packet never reached the decider")
	}
	if d := r.Deciding(); d <= 0 {
		t.Errorf("reader stuck in Decide: Deciding() = %v, want > 0", d)
	}
	close(release)
	released = true
	for i := 0; i < 100 && r.Deciding() != 0; i++ { // at most 5 s
		time.Sleep(50 * time.Millisecond)
	}
	if d := r.Deciding(); d != 0 {
		t.Errorf("reader that answered: Deciding() = %v, want 0", d)
	}
}

// BenchmarkReaderAcceptUDP measures queued UDP datagrams per second through
// a reader that accepts everything, one verdict per packet (privileged).
func BenchmarkReaderAcceptUDP(b *testing.B) {
	sandbox.Require(b, "iptables")
	ns := sandbox.NewNetns(b, "nfqbn")
	ns.MustExec("iptables", "-A", "OUTPUT", "-o", "lo", "-p", "udp", "--dport", "9999",
		"-j", "NFQUEUE", "--queue-num", "7")
	r, err := Open(Config{Queue: testQueue, MaxLen: 8192, NetNS: ns.Handle()},
		DeciderFunc(func([]byte, Meta) Verdict { return Accept }))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	var c, lis *net.UDPConn
	if err := ns.Do(func() (err error) {
		// A listener that drains, so accepted datagrams are not answered
		// with port unreachable (which would fail the sender's writes).
		if lis, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: testPort}); err != nil {
			return err
		}
		c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: testPort})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); lis.Close() })
	go func() {
		buf := make([]byte, 128)
		for { // ends when lis is closed
			if _, err := lis.Read(buf); err != nil {
				return
			}
		}
	}()
	msg := make([]byte, 64)
	b.ResetTimer()
	start := r.Stats().Packets
	sent := int64(0)
	deadline := time.Now().Add(60 * time.Second) // bounds the whole run
	for i := 0; i < b.N && time.Now().Before(deadline); i++ {
		if _, err := c.Write(msg); err == nil {
			sent++
		}
		// Stay under the queue length: wait while 4096 behind.
		for sent-int64(r.Stats().Packets-start) > 4096 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Microsecond)
		}
	}
	for d := time.Now().Add(5 * time.Second); int64(r.Stats().Packets-start) < sent && time.Now().Before(d); {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	got := r.Stats().Packets - start
	b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "pkts/s")
	if int64(got) < int64(b.N) {
		b.Logf("%d of %d datagrams sent, %d reached the reader", sent, b.N, got)
	}
}

// listenUDP listens on 127.0.0.1:testPort in ns until the test ends.
func listenUDP(t *testing.T, ns *sandbox.Netns) *net.UDPConn {
	t.Helper()
	var lis *net.UDPConn
	if err := ns.Do(func() (err error) {
		lis, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: testPort})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	return lis
}

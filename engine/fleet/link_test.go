package fleet

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/rules"
)

// applied collects the decisions a link applies.
type applied struct {
	mu    sync.Mutex
	ds    []decision.Decision
	calls int
	ch    chan struct{}
}

func newApplied() *applied { return &applied{ch: make(chan struct{}, 1024)} }

func (a *applied) apply(ds []decision.Decision) {
	a.mu.Lock()
	a.ds = append(a.ds, ds...)
	a.calls++
	a.mu.Unlock()
	select {
	case a.ch <- struct{}{}:
	default:
	}
}

// wait returns once n decisions were applied in all, failing after 10 s.
func (a *applied) wait(t *testing.T, n int) []decision.Decision {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		a.mu.Lock()
		if len(a.ds) >= n {
			ds := append([]decision.Decision(nil), a.ds...)
			a.mu.Unlock()
			return ds
		}
		a.mu.Unlock()
		select {
		case <-a.ch:
		case <-deadline:
			t.Fatalf("%d decisions applied within 10 s, want %d", len(a.ds), n)
		}
	}
}

func (a *applied) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ds)
}

func startLink(t *testing.T, url, gw string, a *applied) (*Link, context.CancelFunc) {
	t.Helper()
	l, err := New(Options{Config: testConfig(url, gw), Apply: a.apply})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return l, stop
}

func ban(scope string, until time.Time) decision.Decision {
	p, err := decision.ParseScope(scope)
	if err != nil {
		panic(err)
	}
	return decision.Decision{Kind: decision.Ban, Scope: p, Issued: time.Now(), Expires: until.UTC().Truncate(time.Nanosecond), Source: "ssh", Reason: "test"}
}

func waitUp(t testing.TB, l *Link) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if up, _ := l.Up(); up {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, why := l.Up()
	t.Fatalf("link not up within 10 s: %s", why)
}

// TestLinkShares: a decision published by one gateway is applied by the
// others with its absolute expiry and origin, never by its own; one whose
// scope covers a protected prefix is refused and counted; a malformed or
// spoofed message is dropped and counted.
func TestLinkShares(t *testing.T) {
	srv := startNATS(t)
	aA, aB := newApplied(), newApplied()
	a, _ := startLink(t, srv.url(), "gw-a", aA)
	b, _ := startLink(t, srv.url(), "gw-b", aB)
	b.SetProtected([]netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")})
	waitUp(t, a)
	waitUp(t, b)

	until := time.Now().Add(time.Hour)
	a.Publish(ban("198.51.100.7", until))
	a.Publish(ban("2001:db8::/64", until))
	a.Publish(ban("192.0.2.0/24", until)) // covers the protected 192.0.2.10
	got := aB.wait(t, 2)
	if got[0].Scope.String() != "198.51.100.7/32" || !got[0].Expires.Equal(until) || got[0].Origin != "gw-a" {
		t.Errorf("first applied decision %v, want the ban of 198.51.100.7 until %v from gw-a", got[0], until)
	}
	if got[1].Scope.String() != "2001:db8::/64" {
		t.Errorf("second applied decision %v, want the /64", got[1])
	}

	// Garbage on gw-c's subject, and a decision of gw-a sent on gw-c's.
	nc, err := nats.Connect(srv.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Publish("nfqfw.T.ban.gw-c", []byte{1, 2, 3})
	good, _ := (&decision.Decision{Kind: decision.Ban, Scope: decision.ScopeOf(netip.MustParseAddr("203.0.113.1")), Expires: until, Origin: "gw-a"}).Marshal()
	nc.Publish("nfqfw.T.ban.gw-c", good)
	nc.Publish("nfqfw.T.ban.gw-c", make([]byte, decision.MaxSize+1))
	nc.Flush()
	// A last good one from gw-a: once it is applied the others were seen.
	a.Publish(ban("198.51.100.8", until))
	aB.wait(t, 3)
	s := b.Stats()
	if s.Refused[decision.Ban] != 1 || s.Malformed != 1 || s.Spoofed != 1 || s.Received[decision.Ban] != 3 {
		t.Errorf("gw-b stats %+v, want 1 refused, 1 malformed, 1 spoofed, 3 received bans", s)
	}
	if aA.count() != 0 {
		t.Errorf("gw-a applied %d decisions, want none (its own are skipped)", aA.count())
	}
	for i := 0; i < 100 && a.Backlog() > 0; i++ {
		time.Sleep(50 * time.Millisecond) // the ack may come after gw-b applied it
	}
	if p := a.Stats().Published[decision.Ban]; p != 4 {
		t.Errorf("gw-a published %d bans, want 4", p)
	}
	if a.Backlog() != 0 {
		t.Errorf("gw-a backlog %d, want 0", a.Backlog())
	}
}

// TestLinkOutage: decisions made while the server is down wait in the
// outbox (and survive a restart of the link through Outbox/Restore); once
// the server is back they are published, and a gateway that was away
// catches up from its cursor without applying again what it had.
func TestLinkOutage(t *testing.T) {
	srv := startNATS(t)
	aA, aB := newApplied(), newApplied()
	a, stopA := startLink(t, srv.url(), "gw-a", aA)
	b, stopB := startLink(t, srv.url(), "gw-b", aB)
	waitUp(t, a)
	waitUp(t, b)
	until := time.Now().Add(time.Hour)
	a.Publish(ban("198.51.100.1", until))
	aB.wait(t, 1)
	for i := 0; i < 100 && b.Cursor() == 0; i++ {
		time.Sleep(20 * time.Millisecond) // the cursor moves just after the apply
	}
	cursor := b.Cursor()
	stopB()

	srv.stop()
	for i := 0; i < 100; i++ {
		if up, _ := a.Up(); !up {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if up, _ := a.Up(); up {
		t.Fatal("link still up 10 s after the server stopped")
	}
	a.Publish(ban("198.51.100.2", until))
	a.Publish(ban("198.51.100.3", until))
	if n := a.Backlog(); n != 2 {
		t.Fatalf("backlog %d while the server is down, want 2", n)
	}
	// gw-a restarts while the server is down: its outbox is persisted.
	box := a.Outbox()
	stopA()
	srv.start()
	a2, err := New(Options{Config: a.opts.Config, Apply: aA.apply})
	if err != nil {
		t.Fatal(err)
	}
	a2.Restore(box, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a2.Run(ctx)

	// gw-b comes back from its cursor: only the two new bans.
	b2, err := New(Options{Config: b.opts.Config, Apply: aB.apply})
	if err != nil {
		t.Fatal(err)
	}
	b2.Restore(nil, cursor)
	go b2.Run(ctx)
	got := aB.wait(t, 3)
	if got[1].Scope.Addr().String() != "198.51.100.2" || got[2].Scope.Addr().String() != "198.51.100.3" {
		t.Errorf("applied after the outage %v, want .2 then .3", got[1:])
	}
	time.Sleep(300 * time.Millisecond)
	if n := aB.count(); n != 3 {
		t.Errorf("gw-b applied %d decisions in all, want 3 (no replay of what it had)", n)
	}
}

// TestLinkBacklogBatches: a gateway that joins after thousands of
// decisions were made applies them in a few large batches, in order.
func TestLinkBacklogBatches(t *testing.T) {
	srv := startNATS(t)
	a, _ := startLink(t, srv.url(), "gw-a", newApplied())
	waitUp(t, a)
	const n = 3000
	until := time.Now().Add(time.Hour)
	for i := 0; i < n; i++ {
		a.Publish(ban(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String(), until))
	}
	for i := 0; i < 400 && a.Backlog() > 0; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if a.Backlog() != 0 {
		t.Fatalf("%d decisions still unpublished after 20 s", a.Backlog())
	}
	got := newApplied()
	b, _ := startLink(t, srv.url(), "gw-b", got)
	ds := got.wait(t, n)
	for i, d := range ds {
		if want := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}); d.Scope.Addr() != want {
			t.Fatalf("decision %d is about %s, want %s: out of order", i, d.Scope, want)
		}
	}
	got.mu.Lock()
	calls := got.calls
	got.mu.Unlock()
	if calls > n/10 {
		t.Errorf("%d decisions applied in %d calls, want batches (at most %d calls)", n, calls, n/10)
	}
	for i := 0; i < 100 && b.Cursor() != n; i++ {
		time.Sleep(20 * time.Millisecond) // the cursor moves just after the apply
	}
	if c := b.Cursor(); c != n {
		t.Errorf("cursor %d after the backlog, want %d", c, n)
	}
}

// testConfig is a fleet of stream T on the server at url.
func testConfig(url, gw string) rules.Fleet {
	return rules.Fleet{Servers: []string{url}, Gateway: gw, Stream: "T", Replicas: 1, Share: rules.FleetShare{Bans: true}}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nfqfw/nfqfw/rules"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// startShippedCluster runs the 3-node cluster of the shipped configs
// rules/examples/fleet/nats-n*.conf on loopback, changed only in their
// addresses, ports and store directory, and returns the client URLs.
func startShippedCluster(t *testing.T) []string {
	t.Helper()
	bin := sandbox.NATSServerBin(t)
	var client, cluster [3]int
	for i := range 3 {
		client[i], cluster[i] = freePort(t), freePort(t)
	}
	var urls []string
	for i := range 3 {
		src := filepath.Join("..", "..", "rules", "examples", "fleet", fmt.Sprintf("nats-n%d.conf", i+1))
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		r := []string{
			`listen: "0.0.0.0:4222"`, fmt.Sprintf(`listen: "127.0.0.1:%d"`, client[i]),
			`http: "127.0.0.1:8222"`, fmt.Sprintf(`http: "127.0.0.1:%d"`, freePort(t)),
			`store_dir: "/var/lib/nats"`, fmt.Sprintf("store_dir: %q", dir),
			`listen: "0.0.0.0:6222"`, fmt.Sprintf(`listen: "127.0.0.1:%d"`, cluster[i]),
		}
		for j := range 3 {
			r = append(r, fmt.Sprintf("nats://10.0.0.1%d:6222", j+1), fmt.Sprintf("nats://127.0.0.1:%d", cluster[j]))
		}
		conf := strings.NewReplacer(r...).Replace(string(b))
		path := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		s := &natsServer{t: t, bin: bin, dir: dir, port: client[i], args: []string{"-c", path}}
		s.start()
		t.Cleanup(s.stop)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", client[i]))
	}
	return urls
}

// shippedGateway is the fleet section of rules/examples/fleet/gw-<x>.yaml
// for the cluster at urls.
func shippedGateway(t *testing.T, urls []string, x string) rules.Fleet {
	t.Helper()
	pass := filepath.Join(t.TempDir(), "fleet.pass")
	if err := os.WriteFile(pass, []byte("change-me-"+x+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return rules.Fleet{Servers: urls, Gateway: "gw-" + x, Stream: "NFQFW", Replicas: 3, Share: rules.FleetShare{Bans: true},
		Credentials: rules.FleetCredentials{User: "gw-" + x, PasswordFile: pass}}
}

// TestShippedPermissions: with the permissions of the shipped nats-server
// configs, two gateways share their bans (the link creates the stream,
// makes its consumers and reads replies on its own inboxes), while gw-a
// is refused by the servers when it publishes a decision under gw-b's
// name, deletes, purges or updates the stream, or subscribes to gw-b's
// inboxes; the forged decision never reaches gw-b.
func TestShippedPermissions(t *testing.T) {
	urls := startShippedCluster(t)
	links := map[string]*Link{}
	got := map[string]*applied{}
	for _, x := range []string{"a", "b"} {
		a := newApplied()
		l, err := New(Options{Config: shippedGateway(t, urls, x), Apply: a.apply})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); l.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		links[x], got[x] = l, a
	}
	for _, l := range links {
		waitUpWithin(t, l, 30*time.Second)
	}
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	links["a"].Publish(ban("10.98.0.1", until))
	links["b"].Publish(ban("10.98.0.2", until))
	if ds := got["b"].wait(t, 1); ds[0].Scope != netip.MustParsePrefix("10.98.0.1/32") || ds[0].Origin != "gw-a" {
		t.Fatalf("gw-b applied %v, want gw-a's ban of 10.98.0.1", ds[0])
	}
	if ds := got["a"].wait(t, 1); ds[0].Scope != netip.MustParsePrefix("10.98.0.2/32") || ds[0].Origin != "gw-b" {
		t.Fatalf("gw-a applied %v, want gw-b's ban of 10.98.0.2", ds[0])
	}

	// gw-a's credentials in the hands of an attacker.
	var mu sync.Mutex
	var violations []string
	nc, err := nats.Connect(strings.Join(urls, ","), nats.UserInfo("gw-a", "change-me-a"), nats.CustomInboxPrefix(InboxPrefix("gw-a")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				mu.Lock()
				violations = append(violations, err.Error())
				mu.Unlock()
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	refused := func(what, subject string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: accepted, want refused", what)
			return
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			seen := strings.Contains(strings.Join(violations, "\n"), subject)
			mu.Unlock()
			if seen {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: failed with %v, but the server reported no permissions violation on %s", what, err, subject)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	ctx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 2*time.Second)
	}

	forged := ban("10.98.0.66", until)
	forged.Origin, forged.Issued = "gw-b", time.Now()
	msg, err := forged.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := ctx()
	_, err = js.Publish(c, "nfqfw.NFQFW.ban.gw-b", msg)
	cancel()
	refused("publish under gw-b's subject", "nfqfw.NFQFW.ban.gw-b", err)
	c, cancel = ctx()
	err = js.DeleteStream(c, "NFQFW")
	cancel()
	refused("delete the stream", "$JS.API.STREAM.DELETE.NFQFW", err)
	c, cancel = ctx()
	if st, serr := js.Stream(c, "NFQFW"); serr != nil {
		t.Errorf("stream info as gw-a: %v", serr)
	} else {
		c2, cancel2 := ctx()
		refused("purge the stream", "$JS.API.STREAM.PURGE.NFQFW", st.Purge(c2))
		cancel2()
		cfg := st.CachedInfo().Config
		cfg.MaxMsgs = 1
		c2, cancel2 = ctx()
		_, uerr := js.UpdateStream(c2, cfg)
		cancel2()
		refused("update the stream to keep one message", "$JS.API.STREAM.UPDATE.NFQFW", uerr)
	}
	cancel()
	sub, err := nc.SubscribeSync("_INBOX.gw-b.>")
	if err == nil {
		nc.Flush()
		_, err = sub.NextMsg(2 * time.Second)
	}
	refused("subscribe to gw-b's inboxes", "_INBOX.gw-b.>", err)

	// The stream still holds both bans, and the next one of gw-a reaches
	// gw-b right after the first: the forged one was never stored.
	links["a"].Publish(ban("10.98.0.3", until))
	ds := got["b"].wait(t, 2)
	if len(ds) != 2 || ds[1].Scope != netip.MustParsePrefix("10.98.0.3/32") {
		t.Errorf("gw-b applied %v, want gw-a's two bans and nothing else", ds)
	}
	// The cursor moves just after the apply.
	for deadline := time.Now().Add(5 * time.Second); links["b"].Cursor() < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if s := links["b"].Stats(); s.Spoofed != 0 || s.Cursor != 3 {
		t.Errorf("gw-b: cursor %d, %d spoofed messages; want 3 and 0 (the stream holds the three real bans only)", s.Cursor, s.Spoofed)
	}

	// gw-c configured with 1 replica may not change the stream to it: it
	// says so and uses the stream as it is.
	var logs sandbox.LockedBuffer
	cfg := shippedGateway(t, urls, "c")
	cfg.Replicas = 1
	ac := newApplied()
	lc, err := New(Options{Config: cfg, Apply: ac.apply, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	cdone := make(chan struct{})
	go func() { defer close(cdone); lc.Run(cctx) }()
	defer func() { ccancel(); <-cdone }()
	waitUpWithin(t, lc, 30*time.Second)
	if ds := ac.wait(t, 3); len(ds) != 3 {
		t.Errorf("gw-c applied %v, want the three bans", ds)
	}
	if l := logs.String(); !strings.Contains(l, "fleet stream not updated") || !strings.Contains(l, "want_replicas=1") {
		t.Errorf("gw-c's log does not say the stream was not updated:\n%s", l)
	}
}

// waitUpWithin waits until l is up, failing after d.
func waitUpWithin(t *testing.T, l *Link, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if up, _ := l.Up(); up {
			return
		}
		if time.Now().After(deadline) {
			_, why := l.Up()
			t.Fatalf("link not up within %v: %s", d, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

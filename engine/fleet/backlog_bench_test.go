package fleet

import (
	"net/netip"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nfqfw/nfqfw/engine/decision"
)

// BenchmarkLinkBacklog measures how fast a link reads a backlog of
// 100,000 decisions from a (single, loopback) nats-server and hands them
// to Apply: the stream's share of a start's or a reconnect's load, with an
// Apply that costs nothing and one that costs what the daemon's does.
func BenchmarkLinkBacklog(b *testing.B) {
	const n = 100_000
	srv := startNATS(b)
	nc, err := nats.Connect(srv.url())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	l0, _ := New(Options{Config: testConfig(srv.url(), "gw-x"), Apply: func([]decision.Decision) {}})
	ctx, cancel := contextWithCancel()
	go l0.Run(ctx)
	waitUp(b, l0)
	cancel()
	until := time.Now().Add(time.Hour)
	for i := range n {
		d := decision.Decision{Kind: decision.Ban, Scope: decision.ScopeOf(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})),
			Issued: time.Now(), Expires: until, Origin: "gw-x", Source: "bench"}
		m, _ := d.Marshal()
		if _, err := js.PublishAsync("nfqfw.T.ban.gw-x", m, jetstream.WithStallWait(30*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	// "free": Apply returns at once; "7us": it takes 7.5 µs per decision,
	// what the daemon's ban table and kernel set writes cost (about 30 ms
	// per batch of 4,096 in its logs).
	for _, cost := range []time.Duration{0, 7500 * time.Nanosecond} {
		name := "free"
		if cost > 0 {
			name = "7us"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				got := make(chan int, 1024)
				l, _ := New(Options{Config: testConfig(srv.url(), "gw-b"), Apply: func(ds []decision.Decision) {
					time.Sleep(time.Duration(len(ds)) * cost)
					got <- len(ds)
				}})
				ctx, cancel := contextWithCancel()
				start := time.Now()
				go l.Run(ctx)
				total, calls := 0, 0
				for total < n {
					total += <-got
					calls++
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/100k")
				b.ReportMetric(float64(calls), "batches")
				cancel()
			}
		})
	}
}

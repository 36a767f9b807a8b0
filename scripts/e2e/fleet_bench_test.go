package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vishvananda/netns"

	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/engine/ipset"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// fleetBenchSamples is how many offending sources the propagation
// benchmark bans on ga; fleetBenchLoad how many decisions the load
// benchmark puts in the stream.
const (
	fleetBenchSamples = 100
	fleetBenchLoad    = 100_000
)

// BenchmarkFleet measures the fleet on a 3-node JetStream cluster
// (replicas 3) with real gateways, each in its own namespace (root; run
// with -run '^$' -bench Fleet -benchtime 1x):
//
//   - propagation: from the offending SYN on gateway ga to the ban's entry
//     in gateway gc's kernel set, over 100 sources: median and p99;
//   - load: 100,000 decisions in the stream loaded into the kernel set of a
//     gateway that starts with an empty state, and of one that was cut off
//     from the cluster while they were made (at reconnect), for two
//     partitions: the gateway's own link set down (its first hop's
//     neighbour entry fails meanwhile), and its NATS traffic dropped on
//     the path by the router's iptables (a WAN outage away from it); and
//     the daemon's memory and CPU per decision.
func BenchmarkFleet(b *testing.B) {
	requireStatefulTools(b)
	roles := append(append([]string(nil), fleetNodes...), "ga", "gc", "gd", "ge", fleetAttacker)
	var lans []sandbox.LAN
	for i, r := range roles {
		lans = append(lans, sandbox.LAN{Role: r, V4: netip.MustParsePrefix(fmt.Sprintf("10.96.%d.0/24", i+1))})
	}
	sb := sandbox.New(b, sandbox.Options{LANs: lans})
	cluster := startNATSCluster(b, sb, fleetNodes, []string{"ga", "gc", "gd", "ge", "gx"})
	// The second new ssh connection of a source within a minute is its
	// offence.
	start := func(gw string) *firewall {
		return startGuardedGateway(b, sb, cluster, gw, netip.MustParseAddr("192.0.2.10"), "LIMIT", "1", "WINDOW", "1m", "BANFOR", "30m")
	}
	serveTCP(b, sb.NS("ga"), 22)
	ga := start("ga")
	gc := start("gc")
	fleetUp(b, map[string]*firewall{"ga": ga, "gc": gc}, 30*time.Second)

	b.Run("propagation", func(b *testing.B) {
		for range b.N {
			lags := fleetPropagation(b, sb)
			slices.Sort(lags)
			ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
			b.ReportMetric(ms(lags[len(lags)/2]), "median-ms")
			b.ReportMetric(ms(lags[len(lags)*99/100]), "p99-ms")
			b.ReportMetric(ms(lags[len(lags)-1]), "max-ms")
			b.Logf("%d bans, SYN on ga to entry on gc: median %v, p99 %v, max %v", len(lags), lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1])
		}
	})

	b.Run("load", func(b *testing.B) {
		for range b.N {
			gd := start("gd")
			fleetUp(b, map[string]*firewall{"gd": gd}, 30*time.Second)
			rss0 := rssOf(b, gd)
			// gd is cut off, its link seen down, while gx makes
			// 100,000 decisions.
			link := sb.GatewayLink("gd")
			fleetPartitionLoad(b, sb, cluster, gd, "gd", 0, "",
				func() { sb.MustExec(sandbox.Gateway, "ip", "link", "set", link, "down") },
				func() { sb.MustExec(sandbox.Gateway, "ip", "link", "set", link, "up") })
			rss1 := rssOf(b, gd)
			b.ReportMetric(float64(rss1-rss0)/fleetBenchLoad, "rss-bytes/decision")
			b.Logf("gd RSS %d KiB before, %d KiB after: %d bytes per decision", rss0>>10, rss1>>10, (rss1-rss0)/fleetBenchLoad)

			// ge starts with an empty state while the stream holds
			// them, gd gone (2 cores: its state saves would compete).
			gd.kill()
			t0 := time.Now()
			ge := start("ge")
			prof := profileCPU(b, sb.NS("ge"), "start")
			took := waitSetSize(b, sb.NS("ge"), fleetBenchLoad, 120*time.Second)
			b.ReportMetric(time.Since(t0).Seconds(), "start-s")
			reportLoadCPU(b, ge, 0, "start")
			prof()
			b.Logf("ge's log:\n%s", bulkLines(ge))
			b.Logf("start: %d decisions in ge's kernel set %v after nfqfw run (%v after it was ready)", fleetBenchLoad, time.Since(t0), took)

			// The second partition: ge's NATS traffic dropped on
			// the path (the router's FORWARD chain), its own link
			// up: a WAN outage away from the gateway. ge holds the
			// first 100,000 and gets 100,000 more at the heal.
			drop := func(op string) {
				for _, dir := range [][]string{{"-s", sb.Addr4("ge").String(), "--dport"}, {"-d", sb.Addr4("ge").String(), "--sport"}} {
					sb.MustExec(sandbox.Gateway, "iptables", op, "FORWARD", dir[0], dir[1], "-p", "tcp", dir[2], strconv.Itoa(natsClientPort), "-j", "DROP")
				}
			}
			fleetPartitionLoad(b, sb, cluster, ge, "ge", fleetBenchLoad, "-drop", func() { drop("-I") }, func() { drop("-D") })
			ge.kill()
		}
	})
}

// fleetPartitionLoad cuts fw (gateway gw, holding the first from
// decisions) off the cluster with cut, waits for its health to say its
// link is down, has gx make fleetBenchLoad decisions more, heals the
// partition with heal and reports how long after the heal they are all
// in fw's kernel set (reconnect<kind>-s), when its link connected again
// (relink<kind>-s) and the daemon's CPU per decision.
func fleetPartitionLoad(b *testing.B, sb *sandbox.Sandbox, cluster *natsCluster, fw *firewall, gw string, from int, kind string, cut, heal func()) {
	b.Helper()
	cut()
	if _, ok := waitFor(20*time.Second, func() bool {
		out, _ := fw.cli("health")
		return strings.Contains(out, "link down")
	}); !ok {
		b.Fatalf("%s's health does not say its link is down 20 s into the partition", gw)
	}
	fleetPublishMany(b, sb, cluster, "gx", from, fleetBenchLoad)
	cpu0 := cpuOf(b, fw)
	healed := time.Now()
	heal()
	prof := profileCPU(b, sb.NS(gw), "reconnect"+kind)
	took := waitSetSize(b, sb.NS(gw), from+fleetBenchLoad, 120*time.Second)
	b.ReportMetric(time.Since(healed).Seconds(), "reconnect"+kind+"-s")
	if at, ok := reconnectedAt(fw, healed); ok {
		b.ReportMetric(at.Sub(healed).Seconds(), "relink"+kind+"-s")
		b.Logf("reconnect%s: %s's link connected again %v after the heal", kind, gw, at.Sub(healed))
	}
	reportLoadCPU(b, fw, cpu0, "reconnect"+kind)
	prof()
	b.Logf("%s's log:\n%s", gw, bulkLines(fw))
	b.Logf("reconnect%s: %d decisions more in %s's kernel set %v after the heal at %s (its link's own reconnect included)",
		kind, fleetBenchLoad, gw, took, healed.UTC().Format("15:04:05.000"))
}

// fleetPropagation bans fleetBenchSamples sources on ga, one at a time,
// and returns for each the time from its offending SYN to its entry in
// gc's kernel ban set.
func fleetPropagation(b testing.TB, sb *sandbox.Sandbox) []time.Duration {
	atk := sb.NS(fleetAttacker)
	link := sb.Link(fleetAttacker)
	ssh := netip.AddrPortFrom(sb.Addr4("ga"), 22)
	base := sb.Addr4(fleetAttacker).As4()
	sets, err := ipset.OpenAt(netns.NsHandle(sb.NS("gc").Handle()))
	if err != nil {
		b.Fatal(err)
	}
	defer sets.Close()
	var lags []time.Duration
	for i := range fleetBenchSamples {
		src := netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(100 + i)})
		atk.MustExec("ip", "addr", "add", src.String()+"/24", "dev", link)
		dial := func(timeout time.Duration) {
			atk.Do(func() error {
				d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
				if c, err := d.Dial("tcp", ssh.String()); err == nil {
					c.Close()
				}
				return nil
			})
		}
		dial(time.Second) // allowed: the first in the minute
		var wg sync.WaitGroup
		sent := time.Now()
		wg.Go(func() { dial(200 * time.Millisecond) }) // the offence
		var lag time.Duration
		for deadline := sent.Add(10 * time.Second); time.Now().Before(deadline); {
			es, err := sets.List("nfqfw-bannet4")
			if err != nil {
				b.Fatal(err)
			}
			if slices.ContainsFunc(es, func(e ipset.Entry) bool { return e.Prefix == netip.PrefixFrom(src, 32) }) {
				lag = time.Since(sent)
				break
			}
			time.Sleep(500 * time.Microsecond)
		}
		wg.Wait()
		if lag == 0 {
			b.Fatalf("%s not in gc's ban set 10 s after its offence on ga", src)
		}
		lags = append(lags, lag)
	}
	return lags
}

// nsDialer dials inside a namespace, for a NATS client in the test.
type nsDialer struct{ ns *sandbox.Netns }

func (d nsDialer) Dial(network, addr string) (c net.Conn, err error) {
	d.ns.Do(func() error {
		c, err = net.DialTimeout(network, addr, 2*time.Second)
		return err
	})
	return c, err
}

// fleetPublishMany publishes n ban decisions of gateway gw (from the
// attacker's namespace, as a fleet member would), of the sources from
// the from-th on, and waits for every acknowledgement.
func fleetPublishMany(b testing.TB, sb *sandbox.Sandbox, c *natsCluster, gw string, from, n int) {
	b.Helper()
	nc, err := nats.Connect(fmt.Sprintf("nats://%s:%d", sb.Addr4("n1"), natsClientPort),
		nats.SetCustomDialer(nsDialer{sb.NS(fleetAttacker)}), nats.UserInfo(gw, fleetPassword(gw)))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	until := time.Now().Add(time.Hour)
	subject := "nfqfw.NFQFW.ban." + gw
	for i := from; i < from+n; i++ {
		d := decision.Decision{Kind: decision.Ban, Scope: decision.ScopeOf(netip.AddrFrom4([4]byte{172, 16 + byte(i>>16), byte(i >> 8), byte(i)})),
			Issued: time.Now(), Expires: until, Origin: gw, Source: "bench", Reason: "load " + strconv.Itoa(i)}
		msg, err := d.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishAsync(subject, msg, jetstream.WithStallWait(30*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(120 * time.Second):
		b.Fatalf("publishing %d decisions: not acknowledged within 120 s", n)
	}
}

// waitSetSize waits until ns's IPv4 ban set holds at least n entries.
// It reads the set's header every 20 ms (ipset.Count): listing 100,000
// entries would take CPU from the daemon it measures.
func waitSetSize(b testing.TB, ns *sandbox.Netns, n int, d time.Duration) time.Duration {
	b.Helper()
	sets, err := ipset.OpenAt(netns.NsHandle(ns.Handle()))
	if err != nil {
		b.Fatal(err)
	}
	defer sets.Close()
	start := time.Now()
	got := 0
	for time.Since(start) < d {
		if got, err = sets.Count("nfqfw-bannet4"); err == nil && got >= n {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("%s: %d entries in the ban set after %v, want %d (%v)", ns.Name, got, d, n, err)
	return d
}

// bulkLines returns the daemon's log lines about its link (connects,
// link up and down, consumers made again) and the first and the last of
// its bulk loads, to time the load from the daemon's side.
func bulkLines(fw *firewall) string {
	var ls, bulk []string
	for _, l := range strings.Split(fw.proc.Output(), "\n") {
		switch {
		case strings.Contains(l, "applied in bulk"):
			bulk = append(bulk, l)
		case strings.Contains(l, "fleet link") || strings.Contains(l, "fleet server") || strings.Contains(l, "fleet consumer"):
			ls = append(ls, l)
		}
	}
	if len(bulk) > 0 {
		ls = append(ls, fmt.Sprintf("%s (first of %d)", bulk[0], len(bulk)), bulk[len(bulk)-1])
	}
	return strings.Join(ls, "\n")
}

// reconnectedAt returns the time of the first "fleet server reconnected"
// line of fw's log after t.
func reconnectedAt(fw *firewall, t time.Time) (time.Time, bool) {
	for _, l := range strings.Split(fw.proc.Output(), "\n") {
		if !strings.Contains(l, "fleet server reconnected") {
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
		if err == nil && at.After(t) {
			return at, true
		}
	}
	return time.Time{}, false
}

// reportLoadCPU reports the CPU fw's daemon used since cpu0 for the load
// of fleetBenchLoad decisions, per decision: when the set is full, and 3 s
// later (the state save after the backlog included).
func reportLoadCPU(b *testing.B, fw *firewall, cpu0 time.Duration, what string) {
	b.Helper()
	loaded := cpuOf(b, fw) - cpu0
	time.Sleep(3 * time.Second)
	saved := cpuOf(b, fw) - cpu0
	us := func(d time.Duration) float64 { return float64(d) / 1e3 / fleetBenchLoad }
	b.ReportMetric(us(loaded), what+"-cpu-us/decision")
	b.ReportMetric(us(saved), what+"-cpu-saved-us/decision")
	b.Logf("%s: daemon CPU %v when the set is full (%.1f us per decision), %v 3 s later (%.1f us)", what, loaded, us(loaded), saved, us(saved))
}

// profileCPU starts a 6 s CPU profile of the daemon in ns when pprofEnv
// names a directory, and returns a function that waits for it and writes
// it there as fleet-<what>.prof; otherwise it does nothing.
func profileCPU(b *testing.B, ns *sandbox.Netns, what string) (wait func()) {
	dir := os.Getenv(pprofEnv)
	if dir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := http.Client{Transport: &http.Transport{Dial: nsDialer{ns}.Dial}}
		resp, err := c.Get("http://" + pprofAddr + "/debug/pprof/profile?seconds=6")
		if err != nil {
			b.Logf("profile of %s: %v", what, err)
			return
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		path := filepath.Join(dir, "fleet-"+what+".prof")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			b.Logf("profile of %s: %v", what, err)
			return
		}
		b.Logf("CPU profile of the daemon at %s: %s", what, path)
	}()
	return func() { <-done }
}

// rssOf returns the daemon's resident set size in bytes.
func rssOf(b testing.TB, fw *firewall) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", fw.proc.PID()))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

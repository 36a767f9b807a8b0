package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/metrics"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// The fleet sandbox: three NATS nodes, three gateways and an attacker,
// each in its own namespace, on its own LAN of the sandbox's router (which
// only routes; taking a LAN's link down partitions that namespace).
var (
	fleetNodes    = []string{"n1", "n2", "n3"}
	fleetGateways = []string{"ga", "gb", "gc"}
	fleetAttacker = "atk"
	fleetClient   = "cl"  // knocks; never banned
	fleetScanner  = "scn" // probes a trap port: listed in the shared recent list
)

func fleetLANs() []sandbox.LAN {
	var lans []sandbox.LAN
	for i, role := range append(append(append([]string(nil), fleetNodes...), fleetGateways...), fleetAttacker, fleetClient, fleetScanner) {
		lans = append(lans, sandbox.LAN{Role: role, V4: netip.MustParsePrefix(fmt.Sprintf("10.97.%d.0/24", i+1))})
	}
	return lans
}

// natsNode is one nats-server process of the cluster, in its namespace.
type natsNode struct {
	role string
	ns   *sandbox.Netns
	conf string
	bin  string
	proc *sandbox.Proc
}

// natsCluster is a JetStream cluster of real nats-server processes, one per
// namespace of roles, with one user per gateway (password auth).
type natsCluster struct {
	t     testing.TB
	sb    *sandbox.Sandbox
	nodes map[string]*natsNode
}

const natsClientPort, natsClusterPort, natsMonitorPort = 4222, 6222, 8222

// fleetPassword is the password of gateway gw's NATS user.
func fleetPassword(gw string) string { return "pw-" + gw + "-7f3a9c" }

func startNATSCluster(t testing.TB, sb *sandbox.Sandbox, roles, gateways []string) *natsCluster {
	t.Helper()
	bin := sandbox.NATSServerBin(t)
	c := &natsCluster{t: t, sb: sb, nodes: map[string]*natsNode{}}
	dir := tempDir(t)
	var users []string
	for _, gw := range gateways {
		users = append(users, fmt.Sprintf("{user: %q, password: %q}", gw, fleetPassword(gw)))
	}
	for _, role := range roles {
		var routes []string
		for _, other := range roles {
			if other != role {
				routes = append(routes, fmt.Sprintf("nats://%s:%d", sb.Addr4(other), natsClusterPort))
			}
		}
		conf := fmt.Sprintf(`server_name: %s
listen: "0.0.0.0:%d"
http: "127.0.0.1:%d"
jetstream { store_dir: %q, max_mem: 64MB, max_file: 1GB }
cluster { name: nfqfw-e2e, listen: "0.0.0.0:%d", routes: [%s] }
authorization { users: [%s] }
`, role, natsClientPort, natsMonitorPort, filepath.Join(dir, role), natsClusterPort, strings.Join(routes, ", "), strings.Join(users, ", "))
		path := filepath.Join(dir, role+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		n := &natsNode{role: role, ns: sb.NS(role), conf: path, bin: bin}
		c.nodes[role] = n
		n.start()
		t.Cleanup(func() {
			if n.proc != nil {
				if t.Failed() {
					t.Logf("nats-server %s output:\n%s", role, tail(n.proc.Output(), 40))
				}
				n.proc.Stop()
			}
		})
	}
	c.waitHealthy(roles, 30*time.Second)
	return c
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func (n *natsNode) start() {
	if n.proc != nil {
		return
	}
	n.proc = n.ns.Start(n.bin, "-c", n.conf)
}

// kill SIGKILLs the node by PID, as a crash would.
func (n *natsNode) kill(t testing.TB) {
	t.Helper()
	if n.proc == nil {
		return // killed already
	}
	if err := n.proc.Cmd.Process.Kill(); err != nil {
		t.Fatalf("SIGKILL nats-server %s: %v", n.role, err)
	}
	n.proc.Wait(10 * time.Second)
	n.proc = nil
}

// healthy reports whether the node answers /healthz with JetStream current.
func (n *natsNode) healthy() bool {
	resp, err := obsHTTPClient(n.ns).Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", natsMonitorPort))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (c *natsCluster) waitHealthy(roles []string, d time.Duration) {
	c.t.Helper()
	if _, ok := waitFor(d, func() bool {
		for _, r := range roles {
			if !c.nodes[r].healthy() {
				return false
			}
		}
		return true
	}); !ok {
		c.t.Fatalf("NATS nodes %v not healthy within %v", roles, d)
	}
}

// servers returns the nodes' client URLs as a fleet config lists them.
func (c *natsCluster) servers() string {
	var s []string
	for _, r := range fleetNodes {
		s = append(s, fmt.Sprintf("nats://%s:%d", c.sb.Addr4(r), natsClientPort))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// fleetGatewayConfig is a gateway's config: ssh guarded (LIMIT new
// connections per WINDOW, then banned for BANFOR), and the fleet section.
const fleetGatewayConfig = `
allowlist: [ALLOW]
recent:
  - {name: portscan, size: 1000, shared: true}
guards:
  - name: ssh-guard
    limits: [{count: LIMIT, window: WINDOW}]
    ban: {duration: BANFOR}
knocks:
  - name: shared-knock
    steps: [tcp/7000, udp/8000, tcp/9000]
    open: [{proto: tcp, ports: [2222]}]
    open_for: 60s
    shared: true
  - name: once-knock
    steps: [tcp/7100, udp/8100, tcp/9100]
    open: [{proto: tcp, ports: [2223]}]
    open_for: 60s
    one_shot: true
input:
  policy: drop
  rules:
    - {name: scanners, proto: tcp, recent: {list: portscan, op: check, seconds: 300}, action: drop}
    - {name: trap, proto: tcp, dport: 23, recent: {list: portscan, op: set}, action: drop}
    - {name: ssh, proto: tcp, dport: 22, guard: ssh-guard, action: accept}
    - {name: admin, proto: tcp, dport: 2222, knock: shared-knock, action: accept}
    - {name: once, proto: tcp, dport: 2223, knock: once-knock, action: accept}
fleet:
  servers: SERVERS
  gateway: GATEWAY
  credentials: {user: GATEWAY, password_file: PASSFILE}
  share: [bans, knocks, one_shots, recent, allows]
  stream: NFQFW
  replicas: 3
`

// startFleetGateway starts nfqfw in gw's namespace as a fleet member
// whose guard allows 3 new ssh connections per 10 s, then bans for 10
// minutes.
func startFleetGateway(t testing.TB, sb *sandbox.Sandbox, c *natsCluster, gw string, allow netip.Addr) *firewall {
	return startGuardedGateway(t, sb, c, gw, allow, "LIMIT", "3", "WINDOW", "10s", "BANFOR", "10m")
}

// startGuardedGateway is startFleetGateway with the guard's LIMIT, WINDOW
// and BANFOR given as replacements.
func startGuardedGateway(t testing.TB, sb *sandbox.Sandbox, c *natsCluster, gw string, allow netip.Addr, guard ...string) *firewall {
	t.Helper()
	pass := filepath.Join(tempDir(t), "fleet.pass")
	if err := os.WriteFile(pass, []byte(fleetPassword(gw)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := append([]string{"SERVERS", c.servers(), "GATEWAY", gw, "PASSFILE", pass, "ALLOW", allow.String()}, guard...)
	return startFirewall(t, sb.NS(gw), strings.NewReplacer(r...).Replace(fleetGatewayConfig))
}

// inBanSet reports whether addr is in the IPv4 kernel ban set of ns, and
// the seconds the kernel has left.
func inBanSet(t testing.TB, ns *sandbox.Netns, addr netip.Addr) (int, bool) {
	e, ok := banSet(t, ns, "nfqfw-bannet4")[addr]
	return e.Timeout, ok
}

// fleetCtx is a short context for one exchange.
func fleetCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// fleetBan is a ban as `nfqfw bans list --json` shows it.
type fleetBan struct {
	Scope  string    `json:"scope"`
	Origin string    `json:"origin"`
	Source string    `json:"source"`
	Until  time.Time `json:"until"`
}

// fleetBans returns fw's bans by scope ("10.97.60.1/32").
func fleetBans(t testing.TB, fw *firewall) map[string]fleetBan {
	return cliJSONList(t, fw, "bans", func(b fleetBan) string { return b.Scope }, "bans", "list", "--json")
}

// fleetRecentEntry is an entry as `nfqfw recent --json` shows it.
type fleetRecentEntry struct {
	Addr   string `json:"addr"`
	Hits   int    `json:"hits"`
	Origin string `json:"origin"`
}

// fleetRecent returns fw's portscan list by address.
func fleetRecent(t testing.TB, fw *firewall) map[string]fleetRecentEntry {
	return cliJSONList(t, fw, "entries", func(e fleetRecentEntry) string { return e.Addr }, "recent", "--json", "portscan")
}

// fleetAllow is an allow as `nfqfw allows list --json` shows it.
type fleetAllow struct {
	Scope  string `json:"scope"`
	Origin string `json:"origin"`
}

// fleetAllows returns fw's allows by scope.
func fleetAllows(t testing.TB, fw *firewall) map[string]fleetAllow {
	return cliJSONList(t, fw, "allows", func(a fleetAllow) string { return a.Scope }, "allows", "list", "--json")
}

// cliJSONList runs the CLI with args (a --json listing) and returns the
// items of the answer's field, by key.
func cliJSONList[T any](t testing.TB, fw *firewall, field string, key func(T) string, args ...string) map[string]T {
	t.Helper()
	out, err := fw.cli(args...)
	if err != nil {
		t.Fatalf("nfqfw %s: %v: %s", strings.Join(args, " "), err, out)
	}
	var resp map[string]json.RawMessage
	var items []T
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("nfqfw %s: %v: %s", strings.Join(args, " "), err, out)
	}
	if err := json.Unmarshal(resp[field], &items); err != nil && resp[field] != nil {
		t.Fatalf("nfqfw %s: %s: %v: %s", strings.Join(args, " "), field, err, out)
	}
	m := map[string]T{}
	for _, x := range items {
		m[key(x)] = x
	}
	return m
}

// fleetUp waits until each gateway's health says its link is up.
func fleetUp(t testing.TB, gws map[string]*firewall, d time.Duration) {
	t.Helper()
	for name, fw := range gws {
		var out string
		if _, ok := waitFor(d, func() bool {
			var err error
			out, err = fw.cli("health")
			return err == nil && strings.Contains(out, "link up")
		}); !ok {
			t.Fatalf("gateway %s: fleet link not up within %v: %s", name, d, out)
		}
	}
}

// waitBanned waits until each of addrs is in the kernel ban set of every
// namespace of gws, and fails naming what is missing after d.
func waitBanned(t testing.TB, sb *sandbox.Sandbox, gws []string, addrs []netip.Addr, d time.Duration) time.Duration {
	t.Helper()
	var missing []string
	took, ok := waitFor(d, func() bool {
		missing = missing[:0]
		for _, gw := range gws {
			set := banSet(t, sb.NS(gw), "nfqfw-bannet4")
			for _, a := range addrs {
				if _, in := set[a]; !in {
					missing = append(missing, gw+":"+a.String())
				}
			}
		}
		return len(missing) == 0
	})
	if !ok {
		t.Fatalf("not in the kernel ban sets after %v: %v", d, missing)
	}
	return took
}

func addrs(prefix string, n int) []netip.Addr {
	var out []netip.Addr
	for i := 1; i <= n; i++ {
		out = append(out, netip.MustParseAddr(fmt.Sprintf("%s.%d", prefix, i)))
	}
	return out
}

func banAdd(t testing.TB, fw *firewall, a netip.Addr, d string) {
	t.Helper()
	if out, err := fw.cli("bans", "add", a.String(), "--for", d); err != nil {
		t.Fatalf("nfqfw bans add %s: %v: %s", a, err, out)
	}
}

// TestFleet: three gateways running the real daemon share their bans
// through a 3-node JetStream cluster (replicas 3), each node a real
// nats-server in its own namespace. A guard's ban on one gateway reaches
// the others' kernel ban sets; manual bans and unbans cross; a ban of an
// allowlisted source is refused on receipt; a gateway partitioned for 30 s
// and the others ban different sources meanwhile, and after the heal all
// three hold all bans with their original expiries; a NATS node killed
// during a stream of bans loses none; a gateway started while the whole
// cluster is down runs from its local state and says so.
func TestFleet(t *testing.T) {
	requireStatefulTools(t)
	t.Parallel()
	sb := sandbox.New(t, sandbox.Options{LANs: fleetLANs()})
	cluster := startNATSCluster(t, sb, fleetNodes, fleetGateways)
	protectedAddr := netip.MustParseAddr("10.97.200.7")
	gws := map[string]*firewall{}
	for _, gw := range fleetGateways {
		allow := protectedAddr
		if gw == "ga" {
			allow = netip.MustParseAddr("10.97.201.1") // ga may ban it; the others refuse it
		}
		serveTCP(t, sb.NS(gw), 22, 2222, 2223)
		if gw == "gb" {
			// gb does not share allows: it still bans what the others allow.
			gws[gw] = startGuardedGateway(t, sb, cluster, gw, allow, "LIMIT", "3", "WINDOW", "10s", "BANFOR", "10m", "recent, allows]", "recent]")
			continue
		}
		gws[gw] = startFleetGateway(t, sb, cluster, gw, allow)
	}
	fleetUp(t, gws, 30*time.Second)
	ga, gb, gc := gws["ga"], gws["gb"], gws["gc"]

	t.Run("guard ban crosses", func(t *testing.T) {
		atk := sb.Addr4(fleetAttacker)
		ssh := netip.AddrPortFrom(sb.Addr4("ga"), 22)
		for i := 0; i < 6; i++ {
			dialQuick(sb.NS(fleetAttacker), ssh, 300*time.Millisecond)
		}
		took := waitBanned(t, sb, fleetGateways, []netip.Addr{atk}, 10*time.Second)
		t.Logf("the guard's ban on ga in every kernel set after %v", took)
		bans := fleetBans(t, gc)
		b, ok := bans[atk.String()+"/32"]
		if !ok || b.Origin != "ga" || b.Source != "ssh-guard" {
			t.Errorf("gc lists %+v (present %v), want the ban of %s from ga by ssh-guard", b, ok, atk)
		}
		if a := fleetBans(t, ga)[atk.String()+"/32"]; !a.Until.Equal(b.Until) {
			t.Errorf("expiry on gc %v, on ga %v: want the same instant", b.Until, a.Until)
		}
	})

	t.Run("manual ban and unban cross", func(t *testing.T) {
		a := netip.MustParseAddr("10.97.50.5")
		banAdd(t, gb, a, "20m")
		waitBanned(t, sb, []string{"ga", "gc"}, []netip.Addr{a}, 10*time.Second)
		if out, err := gb.cli("bans", "del", a.String()); err != nil {
			t.Fatalf("nfqfw bans del: %v: %s", err, out)
		}
		if _, ok := waitFor(10*time.Second, func() bool {
			_, inA := inBanSet(t, sb.NS("ga"), a)
			_, inC := inBanSet(t, sb.NS("gc"), a)
			return !inA && !inC
		}); !ok {
			t.Errorf("%s still banned on ga or gc 10 s after bans del on gb", a)
		}
	})

	t.Run("protected source refused", func(t *testing.T) {
		banAdd(t, ga, protectedAddr, "5m")
		marker := netip.MustParseAddr("10.97.51.1")
		banAdd(t, ga, marker, "5m") // once it arrived, the one before it did
		waitBanned(t, sb, []string{"gb", "gc"}, []netip.Addr{marker}, 10*time.Second)
		for _, gw := range []string{"gb", "gc"} {
			if _, in := inBanSet(t, sb.NS(gw), protectedAddr); in {
				t.Errorf("%s banned the allowlisted %s on ga's word", gw, protectedAddr)
			}
			if m := gws[gw].metrics(); !strings.Contains(m, `nfqfw_fleet_decisions_refused_total{kind="ban"} 1`) {
				t.Errorf("%s: refused ban not counted:\n%s", gw, grepLines(m, "nfqfw_fleet_"))
			}
		}
	})

	t.Run("knock window and one-shot use cross", func(t *testing.T) {
		cl := sb.NS(fleetClient)
		admin := netip.AddrPortFrom(sb.Addr4("gc"), 2222)
		expectDial(t, cl, admin, timedOut, "gc's knocked port before any knock")
		knockWithGo(t, cl, sb.Addr4("ga"), "tcp/7000", "udp/8000", "tcp/9000")
		if took, ok := waitFor(10*time.Second, func() bool { return dialQuick(cl, admin, 200*time.Millisecond) == connected }); ok {
			t.Logf("a shared knock window opened on ga admits the knocker on gc after %v", took)
		} else {
			t.Errorf("the knock window opened on ga does not admit %s on gc", sb.Addr4(fleetClient))
		}

		// A one-shot sequence used on ga cannot be replayed on gc.
		knockWithGo(t, cl, sb.Addr4("ga"), "tcp/7100", "udp/8100", "tcp/9100")
		expectDial(t, cl, netip.AddrPortFrom(sb.Addr4("ga"), 2223), connected, "ga's one-shot port after its knock")
		if _, ok := waitFor(10*time.Second, func() bool {
			return strings.Contains(gc.metrics(), `nfqfw_fleet_decisions_received_total{kind="knock-use"} 1`)
		}); !ok {
			t.Fatalf("gc did not receive ga's one-shot use:\n%s", grepLines(gc.metrics(), "nfqfw_fleet_decisions_received"))
		}
		knockWithGo(t, cl, sb.Addr4("gc"), "tcp/7100", "udp/8100", "tcp/9100")
		expectDial(t, cl, netip.AddrPortFrom(sb.Addr4("gc"), 2223), timedOut, "the one-shot sequence replayed on gc")
	})

	t.Run("recent-list entry crosses", func(t *testing.T) {
		scn := sb.NS(fleetScanner)
		ssh := netip.AddrPortFrom(sb.Addr4("gc"), 22)
		expectDial(t, scn, ssh, connected, "gc's ssh before the scanner probed ga")
		dialQuick(scn, netip.AddrPortFrom(sb.Addr4("ga"), 23), 300*time.Millisecond)
		var entry fleetRecentEntry
		took, ok := waitFor(10*time.Second, func() bool {
			var in bool
			entry, in = fleetRecent(t, gc)[sb.Addr4(fleetScanner).String()]
			return in
		})
		if !ok {
			t.Fatalf("%s, listed on ga by the trap, is not on gc's portscan list within 10 s", sb.Addr4(fleetScanner))
		}
		t.Logf("the scanner listed on ga is on gc's list after %v", took)
		if entry.Origin != "ga" {
			t.Errorf("gc lists the scanner with origin %q, want ga", entry.Origin)
		}
		expectDial(t, scn, ssh, timedOut, "gc's ssh for a scanner ga listed")
	})

	t.Run("allow crosses", func(t *testing.T) {
		// The attacker ga's guard banned above is allowed on ga: the
		// allow lifts its ban on ga and gc, a guard offence on gc no
		// longer bans it, gb (which does not share allows) banning it
		// again is refused on receipt by gc, and its end on ga ends it
		// on gc.
		atk := sb.Addr4(fleetAttacker)
		out, err := ga.cli("allows", "add", atk.String(), "--for", "10m", "--reason", "e2e")
		if err != nil || !strings.Contains(out, "lifted the ban on "+atk.String()) {
			t.Fatalf("nfqfw allows add on ga: %v: %s", err, out)
		}
		took, ok := waitFor(10*time.Second, func() bool {
			_, banned := inBanSet(t, sb.NS("gc"), atk)
			return fleetAllows(t, gc)[atk.String()+"/32"].Origin == "ga" && !banned
		})
		if !ok {
			t.Fatalf("gc does not hold ga's allow of %s, its ban lifted, within 10 s: %v", atk, fleetAllows(t, gc))
		}
		t.Logf("ga's allow on gc, the ban lifted, after %v", took)
		ssh := netip.AddrPortFrom(sb.Addr4("gc"), 22)
		for i := range 6 {
			if r := dialQuick(sb.NS(fleetAttacker), ssh, time.Second); r != connected {
				t.Fatalf("connection %d of the allowed %s to gc's guarded ssh: %v", i+1, atk, r)
			}
		}
		if _, banned := inBanSet(t, sb.NS("gc"), atk); banned || fleetBans(t, gc)[atk.String()+"/32"].Scope != "" {
			t.Errorf("gc's guard banned the allowed %s", atk)
		}
		banAdd(t, gb, atk, "5m")
		marker := netip.MustParseAddr("10.97.52.1")
		banAdd(t, gb, marker, "5m")
		waitBanned(t, sb, []string{"gc"}, []netip.Addr{marker}, 10*time.Second)
		if _, banned := inBanSet(t, sb.NS("gc"), atk); banned {
			t.Errorf("gc applied gb's ban of %s, which ga's allow covers", atk)
		}
		if m := gc.metrics(); !strings.Contains(m, `nfqfw_fleet_decisions_refused_total{kind="ban"} 2`) {
			t.Errorf("gc: gb's ban of the allowed source not counted as refused:\n%s", grepLines(m, "nfqfw_fleet_decisions_refused"))
		}
		// Its end on ga ends it on gc.
		if out, err := ga.cli("allows", "del", atk.String()); err != nil {
			t.Fatalf("nfqfw allows del on ga: %v: %s", err, out)
		}
		if _, ok := waitFor(10*time.Second, func() bool { return len(fleetAllows(t, gc)) == 0 }); !ok {
			t.Errorf("ga's allows del does not end the allow on gc within 10 s: %v", fleetAllows(t, gc))
		}
	})

	t.Run("partition", func(t *testing.T) {
		const partition = 30 * time.Second
		link := sb.GatewayLink("gc")
		sb.MustExec(sandbox.Gateway, "ip", "link", "set", link, "down")
		start := time.Now()
		healed := false
		heal := func() {
			if !healed {
				healed = true
				sb.MustExec(sandbox.Gateway, "ip", "link", "set", link, "up")
			}
		}
		defer heal()
		if _, ok := waitFor(15*time.Second, func() bool {
			out, _ := gc.cli("health")
			return strings.Contains(out, "link down")
		}); !ok {
			t.Errorf("gc's health does not say its link is down 15 s into the partition")
		}
		onC, onA := addrs("10.97.60", 3), addrs("10.97.61", 3)
		for i := range onC {
			banAdd(t, gc, onC[i], "30m")
			banAdd(t, ga, onA[i], "30m")
		}
		// Each side enforces its own at once.
		waitBanned(t, sb, []string{"gc"}, onC, 5*time.Second)
		waitBanned(t, sb, []string{"ga", "gb"}, onA, 10*time.Second)
		time.Sleep(time.Until(start.Add(partition)))
		heal()
		took := waitBanned(t, sb, fleetGateways, append(onA, onC...), 45*time.Second)
		t.Logf("after the heal, every ban on every gateway within %v", took)
		want := map[string]time.Time{}
		for _, a := range onC {
			want[a.String()+"/32"] = fleetBans(t, gc)[a.String()+"/32"].Until
		}
		for _, a := range onA {
			want[a.String()+"/32"] = fleetBans(t, ga)[a.String()+"/32"].Until
		}
		for _, gw := range fleetGateways {
			bans := fleetBans(t, gws[gw])
			for scope, until := range want {
				if got := bans[scope].Until; !got.Equal(until) {
					t.Errorf("%s: %s until %v, want the original %v", gw, scope, got, until)
				}
			}
		}
	})

	t.Run("node killed during a stream of bans", func(t *testing.T) {
		defer func() {
			if t.Failed() {
				t.Logf("gb's log:\n%s", tail(gb.proc.Output(), 60))
			}
		}()
		stream := addrs("10.97.70", 40)
		for i, a := range stream {
			if i == 10 {
				cluster.nodes["n2"].kill(t)
			}
			banAdd(t, ga, a, "30m")
		}
		took := waitBanned(t, sb, []string{"gb", "gc"}, stream, 45*time.Second)
		t.Logf("40 bans with n2 killed after the 10th: all on gb and gc within %v", took)
		cluster.nodes["n2"].start()
		cluster.waitHealthy(fleetNodes, 30*time.Second)
	})

	t.Run("dashboard fleet row", func(t *testing.T) {
		// A real Prometheus scrapes gc, which received, refused and
		// reconnected above and shares a recent list: every query of
		// the Fleet row has data.
		prom := startPromServer(t, sb.NS("gc"))
		prom.waitFor(t, `count_over_time(nfqfw_fleet_link_up[1m]) >= 2`)
		queries, err := metrics.DashboardQueries(filepath.Join("..", "..", metrics.DashboardPath))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, q := range queries {
			if !strings.Contains(q, "nfqfw_fleet_") && !strings.Contains(q, "nfqfw_recent_shared_") {
				continue
			}
			n++
			res, err := prom.query(q)
			if err != nil || len(res) == 0 {
				t.Errorf("fleet row query returned no data (err %v): %s", err, q)
				continue
			}
			for _, s := range res {
				if math.IsNaN(s.value) {
					t.Errorf("fleet row query returned NaN for %v: %s", s.metric, q)
				}
			}
		}
		if n < 8 {
			t.Errorf("%d fleet queries on the dashboard, want the row's 8 or more", n)
		}
	})

	t.Run("cluster down at start", func(t *testing.T) {
		before := fleetBans(t, gb)
		gb.stop()
		for _, n := range fleetNodes {
			cluster.nodes[n].kill(t)
		}
		gb.start()
		if _, ok := waitFor(15*time.Second, func() bool {
			return strings.Contains(gb.proc.Output(), "fleet servers unreachable at start: running from local state")
		}); !ok {
			t.Errorf("gb does not log that it starts from local state:\n%s", tail(gb.proc.Output(), 20))
		}
		out, err := gb.cli("health")
		if err == nil || !strings.Contains(out, "fleet: gateway gb, link down") {
			t.Errorf("gb health with the cluster down: %v:\n%s", err, out)
		}
		after := fleetBans(t, gb)
		for scope := range before {
			if _, ok := after[scope]; !ok {
				t.Errorf("gb lost the ban of %s across its restart with the cluster down", scope)
			}
		}
		waitBanned(t, sb, []string{"gb"}, addrs("10.97.70", 40), 10*time.Second)
		for _, n := range fleetNodes {
			cluster.nodes[n].start()
		}
		cluster.waitHealthy(fleetNodes, 30*time.Second)
		fleetUp(t, map[string]*firewall{"gb": gb}, 30*time.Second)
	})
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

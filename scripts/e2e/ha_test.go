package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// The gateway pair of rules/examples/ha: keepalived moves the virtual
// addresses, conntrackd (FTFW) carries the kernel's flows across, and the
// notify hook tells nfqfw its role. The shipped files run as written, with
// only their paths (pid files, sockets, the hook, the binaries) pointed at
// the test's temporary directories.

// Bounds of the HA test's waits.
const (
	haSettle      = 15 * time.Second // a VRRP transition and its hook
	haStreamWait  = 10 * time.Second // one round trip of a session across a failover (TCP retransmits back off)
	haProbeEvery  = time.Millisecond // the gap prober's interval
	haProbeMax    = 20000            // at most this many probes (20 s) per measured transition
	haProbeTail   = 1500 * time.Millisecond
	haStreams     = 4 // long TCP sessions through the pair
	haStreamChunk = 16 << 10
	haStreamPort  = 5001
	haProbePort   = 5002
	haNewFlowPort = 5003
	haNATSUp      = 30 * time.Second // the NATS cluster healthy, the fleet links up
	haAdminPort   = 8443             // the gateways' knocked admin port (gateway-*.yaml)
	// haFleetWait bounds a decision's way from A to B through the fleet:
	// milliseconds when all is well (10-144 ms measured), but on the
	// loaded machine a publish to the fresh 3-replica stream can time out
	// (5 s) and be retried, and B's consumer, when it stalls, is made
	// again at the next stall check (every 5 s): engine/fleet's own
	// bounds, which add up to about 20 s. A publish that never succeeds
	// (seen once: A's link down with "publish: context deadline
	// exceeded" for the whole wait) is a fault of the link or the
	// cluster, not a slow crossing; the failure shows both links' health.
	haFleetWait    = 30 * time.Second
	haPromoteMatch = "ha -c "
)

// haGateway is one gateway of the pair with its daemons.
type haGateway struct {
	role      string
	ns        *sandbox.Netns
	dir       string
	fw        *firewall
	conntrack *sandbox.Proc
	ctConf    string
	kaConf    string
	keepalive *sandbox.Proc
	hookLog   string
}

// haLab is the pair, its client and server, and what the server runs.
type haLab struct {
	t    *testing.T
	pair *sandbox.Pair
	a, b *haGateway
	ftp  *vsftpdServer
	nats []*natsNode
}

// haBanned is a second address of the client, banned on A through the
// fleet; haScanner a third, which probes a trap port through A and is
// listed in the shared portscan list.
var (
	haBanned  = netip.MustParseAddr("10.98.1.20")
	haScanner = netip.MustParseAddr("10.98.1.30")
)

// haExample reads a shipped file of rules/examples/ha.
func haExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "rules", "examples", "ha", name))
	if err != nil {
		t.Fatalf("read the shipped HA example: %v", err)
	}
	return string(b)
}

// replaceAll applies old/new pairs to s; each old must occur.
func replaceAll(t *testing.T, name, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s: %q not found: the shipped file changed", name, pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// newHALab builds the pair and starts, on each gateway, nfqfw with its
// shipped config and conntrackd; then keepalived on A, which becomes
// master, then on B, which becomes backup.
func newHALab(t *testing.T) *haLab {
	t.Helper()
	l := &haLab{t: t, pair: sandbox.NewPair(t)}
	srv := l.pair.NS(sandbox.PairServer)
	serveTCP(t, srv, haStreamPort, haNewFlowPort)
	serveUDP(t, srv, haProbePort)
	l.ftp = startVsftpd(t, srv)
	for _, a := range []netip.Addr{haBanned, haScanner} {
		l.pair.NS(sandbox.PairClient).MustExec("ip", "addr", "add", a.String()+"/24", "dev", "br0")
	}
	l.startNATS()
	l.a = l.startGateway(sandbox.PairPrimary, "a")
	l.b = l.startGateway(sandbox.PairBackup, "b")
	// The admin console a knock opens (gateway-*.yaml admin-knocked).
	serveTCP(t, l.a.ns, haAdminPort)
	serveTCP(t, l.b.ns, haAdminPort)
	fleetUp(t, map[string]*firewall{"A": l.a.fw, "B": l.b.fw}, haNATSUp)
	l.a.startKeepalived(t)
	l.waitRole(l.a, "primary", 0)
	l.b.startKeepalived(t)
	l.waitRole(l.b, "backup", 0)
	return l
}

// haNATSFiles are the shipped nats-server configs of the pair's cluster,
// by the namespace each runs in.
var haNATSFiles = map[string]string{
	sandbox.PairPrimary: "nats-a.conf",
	sandbox.PairBackup:  "nats-b.conf",
	sandbox.PairArbiter: "nats-arbiter.conf",
}

// startNATS runs the fleet's JetStream cluster on the sync network from
// the shipped configs (a node on each gateway and one on the arbiter, a
// user per gateway), with their store directories and passwords changed.
func (l *haLab) startNATS() {
	t := l.t
	t.Helper()
	bin := sandbox.NATSServerBin(t)
	dir := tempDir(t)
	for _, role := range []string{sandbox.PairPrimary, sandbox.PairBackup, sandbox.PairArbiter} {
		name := haNATSFiles[role]
		conf := filepath.Join(dir, name)
		writeFile(t, conf, replaceAll(t, name, haExample(t, name),
			"/var/lib/nats", filepath.Join(dir, role),
			"change-me-a", fleetPassword("gw-a"),
			"change-me-b", fleetPassword("gw-b")), 0o600)
		n := &natsNode{role: role, ns: l.pair.NS(role), conf: conf, bin: bin}
		n.start()
		l.nats = append(l.nats, n)
		t.Cleanup(func() {
			if n.proc != nil {
				if t.Failed() {
					t.Logf("nats-server %s output:\n%s", role, tail(n.proc.Output(), 40))
				}
				n.proc.Stop()
			}
		})
	}
	if _, ok := waitFor(haNATSUp, func() bool {
		for _, n := range l.nats {
			if !n.healthy() {
				return false
			}
		}
		return true
	}); !ok {
		t.Fatalf("the NATS cluster is not healthy within %v", haNATSUp)
	}
}

func (l *haLab) startGateway(role, name string) *haGateway {
	t := l.t
	t.Helper()
	g := &haGateway{role: role, ns: l.pair.NS(role), dir: tempDir(t)}
	g.hookLog = filepath.Join(g.dir, "hook.log")
	pass := filepath.Join(g.dir, "fleet.pass")
	writeFile(t, pass, fleetPassword("gw-"+name)+"\n", 0o600)
	g.fw = startFirewall(t, g.ns, replaceAll(t, "gateway-"+name+".yaml", haExample(t, "gateway-"+name+".yaml"),
		"/etc/nfqfw/fleet.pass", pass))
	g.ctConf = filepath.Join(g.dir, "conntrackd.conf")
	writeFile(t, g.ctConf, replaceAll(t, "conntrackd-"+name+".conf", haExample(t, "conntrackd-"+name+".conf"),
		"/run/conntrackd.lock", filepath.Join(g.dir, "conntrackd.lock"),
		"/run/conntrackd.ctl", filepath.Join(g.dir, "conntrackd.ctl"),
		"LogFile off", "LogFile "+filepath.Join(g.dir, "conntrackd.log"),
		"Syslog on", "Syslog off"), 0o600)
	hook := filepath.Join(g.dir, "nfqfw-ha-notify")
	writeFile(t, hook, replaceAll(t, "nfqfw-ha-notify", haExample(t, "nfqfw-ha-notify"),
		"CONNTRACKD_CONFIG=/etc/conntrackd/conntrackd.conf", "CONNTRACKD_CONFIG="+g.ctConf,
		"NFQFW=/usr/local/sbin/nfqfw", "NFQFW="+nfqfwBin,
		"NFQFW_CONFIG=/etc/nfqfw/nfqfw.yaml", "NFQFW_CONFIG="+g.fw.config,
		"HA_LOG=\n", "HA_LOG="+g.hookLog+"\n"), 0o700)
	g.kaConf = filepath.Join(g.dir, "keepalived.conf")
	writeFile(t, g.kaConf, replaceAll(t, "keepalived-"+name+".conf", haExample(t, "keepalived-"+name+".conf"),
		"/etc/nfqfw/ha/nfqfw-ha-notify", hook), 0o600)
	g.startConntrackd(t)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(g.hookLog)
			ct, _ := os.ReadFile(filepath.Join(g.dir, "conntrackd.log"))
			t.Logf("%s: hook log:\n%s\nconntrackd:\n%s%s\nkeepalived:\n%s", role, b, ct, g.conntrack.Output(), g.keepalivedOutput())
		}
	})
	return g
}

func (g *haGateway) keepalivedOutput() string {
	if g.keepalive == nil {
		return ""
	}
	return g.keepalive.Output()
}

// startConntrackd runs conntrackd in the foreground and waits until it
// answers on its socket.
func (g *haGateway) startConntrackd(t *testing.T) {
	t.Helper()
	g.conntrack = g.ns.Start("conntrackd", "-C", g.ctConf)
	if !eventually(haSettle, func() bool {
		_, err := g.ns.Exec("conntrackd", "-C", g.ctConf, "-s")
		return err == nil
	}) {
		t.Fatalf("%s: conntrackd does not answer: %s", g.role, g.conntrack.Output())
	}
}

// startKeepalived runs keepalived in the foreground, VRRP only, with its
// own pid files.
func (g *haGateway) startKeepalived(t *testing.T) {
	t.Helper()
	g.keepalive = g.ns.Start("keepalived", "-n", "-l", "-D", "-P", "-f", g.kaConf,
		"-p", filepath.Join(g.dir, "keepalived.pid"), "-r", filepath.Join(g.dir, "vrrp.pid"))
}

// killKeepalived SIGKILLs keepalived's VRRP child and its parent by PID,
// as a crash would: no priority-0 advertisement, no address removed.
func (g *haGateway) killKeepalived(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(g.dir, "vrrp.pid"))
	if err != nil {
		t.Fatalf("%s: keepalived's VRRP pid file: %v", g.role, err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || child <= 1 {
		t.Fatalf("%s: keepalived's VRRP pid file: %q", g.role, b)
	}
	syscall.Kill(child, syscall.SIGKILL)
	g.keepalive.Cmd.Process.Kill()
	if err := g.keepalive.Wait(stopTimeout); err == sandbox.ErrStillRunning {
		t.Fatalf("%s: keepalived still running after SIGKILL", g.role)
	}
}

// hookLines returns the notify hook's log.
func (g *haGateway) hookLines() string {
	b, _ := os.ReadFile(g.hookLog)
	return string(b)
}

// waitRole waits until g's hook has run for state (primary, backup, fault)
// more than `before` times and every step of it has finished.
func (l *haLab) waitRole(g *haGateway, state string, before int) {
	l.t.Helper()
	last := map[string]string{"primary": "conntrackd.conf -R", "backup": "conntrackd.conf -n", "fault": "conntrackd.conf -f internal"}[state]
	ok := eventually(haSettle, func() bool {
		log := g.hookLines()
		i := strings.LastIndex(log, "state "+state)
		return strings.Count(log, "state "+state) > before && i >= 0 && strings.Contains(log[i:], last)
	})
	if !ok {
		l.t.Fatalf("%s: hook for %s did not complete within %v:\n%s\nkeepalived:\n%s", g.role, state, haSettle, g.hookLines(), g.keepalivedOutput())
	}
	if strings.Contains(g.hookLines(), "FAILED") {
		l.t.Errorf("%s: a hook step failed:\n%s", g.role, g.hookLines())
	}
}

// banHolds checks that g, holding the addresses, enforces the ban made on
// A: its ban list has it with A's origin, and a new connection from the
// banned address gets nowhere.
func (l *haLab) banHolds(g *haGateway, when string) {
	l.t.Helper()
	if b, ok := fleetBans(l.t, g.fw)[haBanned.String()+"/32"]; !ok || b.Origin != "gw-a" {
		l.t.Errorf("%s: %s's bans list has %s as %+v (listed %v), want it with origin gw-a", when, g.role, haBanned, b, ok)
	}
	if err := l.dialFrom(haBanned, netip.AddrPortFrom(l.pair.ServerAddr(), haNewFlowPort)); err == nil {
		l.t.Errorf("%s: a new connection from the banned %s reached the server through %s", when, haBanned, g.role)
	}
}

// dialFrom connects from the client's address src to dst (closing the
// connection at once) and returns the dial's error.
func (l *haLab) dialFrom(src netip.Addr, dst netip.AddrPort) error {
	return l.pair.NS(sandbox.PairClient).Do(func() error {
		d := net.Dialer{Timeout: ftpDialTimeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err := d.Dial("tcp", dst.String())
		if err == nil {
			c.Close()
		}
		return err
	})
}

// scannerListed waits until g's shared portscan list has haScanner with
// origin, and fails naming what it holds after haFleetWait.
func (l *haLab) scannerListed(g *haGateway, origin, when string) {
	l.t.Helper()
	var e fleetRecentEntry
	took, ok := waitFor(haFleetWait, func() bool {
		var in bool
		e, in = fleetRecent(l.t, g.fw)[haScanner.String()]
		return in && e.Origin == origin
	})
	if !ok {
		l.t.Errorf("%s: %s's portscan list has %s as %+v, want it with origin %q within %v", when, g.role, haScanner, e, origin, haFleetWait)
		return
	}
	l.t.Logf("%s: %s listed the scanner after %v", when, g.role, took.Round(time.Millisecond))
}

// healthSays checks that g's nfqfw health reports role.
func (l *haLab) healthSays(g *haGateway, role, when string) {
	l.t.Helper()
	if out, err := g.fw.cli("health"); err != nil || !strings.Contains(out, "\n  ha: "+role) {
		l.t.Errorf("%s: %s's nfqfw health does not say ha: %s: %v\n%s", when, g.role, role, err, out)
	}
}

// roleMetric checks that g's nfqfw_ha_role says role.
func (l *haLab) roleMetric(g *haGateway, role, when string) {
	l.t.Helper()
	if v := metricValue(g.fw.metrics(), `nfqfw_ha_role{role="`+role+`"}`); v != 1 {
		l.t.Errorf("%s: %s's nfqfw_ha_role{role=%q} = %v, want 1", when, g.role, role, v)
	}
}

// adoptedWhileBackup waits until g, backup, has every transfer in its
// nfqfw flow table: conntrackd injected them into its kernel and nfqfw
// adopted them as they appeared, before any promotion.
func (l *haLab) adoptedWhileBackup(g *haGateway, streams []*haStream) {
	l.t.Helper()
	var missing []int
	took, ok := waitFor(haSettle, func() bool {
		flows := g.fw.state().Flows
		missing = missing[:0]
		for _, st := range streams {
			port := st.conn.LocalAddr().(*net.TCPAddr).Port
			if !slices.ContainsFunc(flows, func(f control.StateFlow) bool {
				return f.Src == l.pair.ClientAddr().String() && int(f.SPort) == port && f.DPort == haStreamPort
			}) {
				missing = append(missing, port)
			}
		}
		return len(missing) == 0
	})
	if !ok {
		l.t.Errorf("%s (backup): the transfers from client ports %v are not in its nfqfw flow table within %v", g.role, missing, haSettle)
		return
	}
	l.roleMetric(g, "backup", "with the transfers adopted")
	l.t.Logf("%s (backup) had adopted the %d transfers after %v", g.role, len(streams), took.Round(time.Millisecond))
}

// expects fails the test unless g's kernel expects the data connection
// to dst (the FTP helper's expectation, conntrack -L expect).
func (l *haLab) expects(g *haGateway, dst netip.AddrPort, when string) {
	l.t.Helper()
	out, err := g.ns.Exec("conntrack", "-L", "expect")
	if err != nil || !strings.Contains(out, fmt.Sprintf("dst=%s sport=0 dport=%d", dst.Addr(), dst.Port())) {
		l.t.Errorf("%s: %s's kernel does not expect the data connection to %s: %v\n%s", when, g.role, dst, err, out)
	}
}

// promotionTook returns, from g's hook log, the time from the start of
// its last primary hook (keepalived has just added the addresses) to the
// end of nfqfw's promotion: the window in which a queued packet of a
// synced flow meets an engine that has not adopted it yet.
func (g *haGateway) promotionTook() time.Duration {
	log := g.hookLines()
	i := strings.LastIndex(log, "state primary")
	if i < 0 {
		return -1
	}
	start := strings.LastIndex(log[:i], "\n") + 1
	j := strings.Index(log[i:], " promote ")
	if j < 0 {
		return -1
	}
	end := strings.LastIndex(log[:i+j], "\n") + 1
	t0, err0 := time.Parse("15:04:05.999999999", strings.Fields(log[start:])[0])
	t1, err1 := time.Parse("15:04:05.999999999", strings.Fields(log[end:])[0])
	if err0 != nil || err1 != nil {
		return -1
	}
	return t1.Sub(t0)
}

// holdsVIPs reports whether g's interfaces carry both virtual addresses.
func (g *haGateway) holdsVIPs() bool {
	out, err := g.ns.Exec("ip", "-o", "-4", "addr", "show")
	return err == nil && strings.Contains(out, sandbox.PairLANVIP.String()+"/") && strings.Contains(out, sandbox.PairWANVIP.String()+"/")
}

// haStream is one long TCP transfer through the pair: chunks written to
// the server's echo port and read back, without pause.
type haStream struct {
	conn  net.Conn
	bytes atomic.Int64
	mu    sync.Mutex
	err   error
	stop  chan struct{}
	done  chan struct{}
}

func startStream(t *testing.T, ns *sandbox.Netns, dst netip.AddrPort) *haStream {
	t.Helper()
	s := &haStream{stop: make(chan struct{}), done: make(chan struct{})}
	if err := ns.Do(func() (err error) { s.conn, err = net.DialTimeout("tcp", dst.String(), ftpDialTimeout); return err }); err != nil {
		t.Fatalf("long transfer to %s: %v", dst, err)
	}
	go s.run()
	t.Cleanup(func() {
		close(s.stop)
		s.conn.Close()
		<-s.done
	})
	return s
}

func (s *haStream) run() {
	defer close(s.done)
	out := make([]byte, haStreamChunk)
	in := make([]byte, haStreamChunk)
	for i := 0; ; i++ {
		select {
		case <-s.stop:
			return
		default:
		}
		binary.BigEndian.PutUint64(out, uint64(i))
		s.conn.SetDeadline(time.Now().Add(haStreamWait))
		_, err := s.conn.Write(out)
		if err == nil {
			_, err = io.ReadFull(s.conn, in)
		}
		if err == nil && binary.BigEndian.Uint64(in) != uint64(i) {
			err = fmt.Errorf("chunk %d came back as %d", i, binary.BigEndian.Uint64(in))
		}
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		s.bytes.Add(haStreamChunk)
		time.Sleep(5 * time.Millisecond)
	}
}

// alive reports whether the transfer carries at least one more chunk
// within haStreamWait, and its error if it broke.
func (s *haStream) alive() (bool, error) {
	from := s.bytes.Load()
	deadline := time.Now().Add(haStreamWait)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return false, err
		}
		if s.bytes.Load() > from+haStreamChunk {
			return true, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false, errors.New("no progress")
}

// gapProbe sends a numbered UDP datagram every haProbeEvery from the
// client to the server's echo port through the pair and records which
// were answered.
type gapProbe struct {
	conn     *net.UDPConn
	sent     []time.Time // by sequence number; written by the sender only
	answered []atomic.Bool
	n        atomic.Int64 // probes sent
	stop     chan struct{}
	done     sync.WaitGroup
}

func startGapProbe(t *testing.T, ns *sandbox.Netns, dst netip.AddrPort) *gapProbe {
	t.Helper()
	p := &gapProbe{sent: make([]time.Time, haProbeMax), answered: make([]atomic.Bool, haProbeMax), stop: make(chan struct{})}
	if err := ns.Do(func() (err error) {
		p.conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		t.Fatalf("gap probe: %v", err)
	}
	p.done.Add(2)
	go p.send()
	go p.receive()
	return p
}

func (p *gapProbe) send() {
	defer p.done.Done()
	tick := time.NewTicker(haProbeEvery)
	defer tick.Stop()
	var b [8]byte
	for i := 0; i < haProbeMax; i++ {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		p.sent[i] = time.Now()
		p.n.Store(int64(i + 1))
		binary.BigEndian.PutUint64(b[:], uint64(i))
		p.conn.Write(b[:])
	}
}

func (p *gapProbe) receive() {
	defer p.done.Done()
	var b [64]byte
	for {
		n, err := p.conn.Read(b[:])
		if err != nil {
			return
		}
		if n == 8 {
			if i := binary.BigEndian.Uint64(b[:]); i < haProbeMax {
				p.answered[i].Store(true)
			}
		}
	}
}

// finish stops the probe after haProbeTail more and returns the longest
// time without an answer: from the send time of the first probe of the
// longest run of unanswered ones to that of the first answered probe
// after it (0 when every probe was answered; a run that lasts until the
// end counts to the last probe sent). It also returns the probes sent and
// answered.
func (p *gapProbe) finish() (gap time.Duration, sent, answered int) {
	time.Sleep(haProbeTail)
	close(p.stop)
	time.Sleep(100 * time.Millisecond) // late answers
	p.conn.Close()
	p.done.Wait()
	sent = int(p.n.Load())
	first := -1 // the first probe of the current unanswered run
	for i := 0; i < sent; i++ {
		switch {
		case !p.answered[i].Load():
			if first < 0 {
				first = i
			}
			continue
		case first >= 0:
			gap = max(gap, p.sent[i].Sub(p.sent[first]))
			first = -1
		}
		answered++
	}
	if first >= 0 {
		gap = max(gap, p.sent[sent-1].Sub(p.sent[first]))
	}
	return gap, sent, answered
}

// haSessions are the sessions a transition must keep: the long
// transfers, and the FTP control session.
type haSessions struct {
	streams []*haStream
	ftp     *ftpConn
}

// check counts the sessions that still work after a transition: each
// transfer moves on, and the FTP session lists and fetches over new
// passive data connections.
func (l *haLab) check(s *haSessions, when string) (kept, lost int) {
	l.t.Helper()
	for i, st := range s.streams {
		if ok, err := st.alive(); ok {
			kept++
		} else {
			lost++
			l.t.Errorf("long transfer %d %s: %v", i, when, err)
		}
	}
	cli := l.pair.NS(sandbox.PairClient)
	s.ftp.list(cli, when)
	s.ftp.retr(cli, l.ftp, when)
	kept++
	return kept, lost
}

// newFlowDecidedBy opens a new TCP connection through the pair and
// checks that g's nfqfw tracks it: the gateway holding the addresses
// decides new flows.
func (l *haLab) newFlowDecidedBy(g *haGateway, when string) {
	l.t.Helper()
	var c net.Conn
	dst := netip.AddrPortFrom(l.pair.ServerAddr(), haNewFlowPort)
	if err := l.pair.NS(sandbox.PairClient).Do(func() (err error) { c, err = net.DialTimeout("tcp", dst.String(), ftpDialTimeout); return err }); err != nil {
		l.t.Fatalf("new connection %s: %v", when, err)
	}
	defer c.Close()
	port := c.LocalAddr().(*net.TCPAddr).Port
	for _, f := range g.fw.state().Flows {
		if f.Src == l.pair.ClientAddr().String() && int(f.SPort) == port && f.DPort == haNewFlowPort {
			return
		}
	}
	l.t.Errorf("new connection %s (client port %d): not in %s's nfqfw flow table", when, port, g.role)
}

// TestHAFailover: the gateway pair of rules/examples/ha fails over from A
// to B and back, once with A's keepalived and nfqfw killed (SIGKILL), once
// with A's keepalived stopped (its stop hook demotes A's nfqfw) and once
// with A's links set down. Long TCP transfers and an FTP session
// (passive, through the SNAT to the uplink's virtual address) started
// through A survive on B and again on A; new flows are decided by the
// nfqfw of the gateway holding the addresses; B, while still backup, has
// adopted the transfers conntrackd injected into its kernel, and again
// after the failback; nfqfw_ha_role names each gateway's role. A ban made
// on A and a knock window opened through A hold through B (the fleet
// link, the shipped 3-node NATS cluster), and so does a port-scan source
// listed through A (the shared recent list). The gap a 1 ms UDP probe
// through the virtual address sees, and the sessions kept and lost, are
// logged for each transition.
func TestHAFailover(t *testing.T) {
	requireSandbox(t)
	sandbox.Require(t, "keepalived", "conntrackd", "conntrack", "vsftpd", "ipset")
	const (
		killed  = "SIGKILL of keepalived and nfqfw"
		stopped = "keepalived stopped (SIGTERM)"
		down    = "links down"
	)
	for _, how := range []string{killed, stopped, down} {
		t.Run(how, func(t *testing.T) {
			l := newHALab(t)
			cli := l.pair.NS(sandbox.PairClient)
			if !l.a.holdsVIPs() || l.b.holdsVIPs() {
				t.Fatalf("after start: A holds the virtual addresses %v, B %v; want A only", l.a.holdsVIPs(), l.b.holdsVIPs())
			}
			s := &haSessions{}
			for range haStreams {
				s.streams = append(s.streams, startStream(t, cli, netip.AddrPortFrom(l.pair.ServerAddr(), haStreamPort)))
			}
			s.ftp = dialFTP(t, cli, netip.AddrPortFrom(l.pair.ServerAddr(), 21))
			s.ftp.expect("220")
			s.ftp.send("USER anonymous")
			s.ftp.expect("331")
			s.ftp.send("PASS ha@")
			s.ftp.expect("230")
			l.check(s, "through A")
			l.newFlowDecidedBy(l.a, "through A")
			// A ban made on A reaches B through the fleet.
			banAdd(t, l.a.fw, haBanned, "10m")
			if took, ok := waitFor(haFleetWait, func() bool { _, in := inBanSet(t, l.b.ns, haBanned); return in }); !ok {
				ha, _ := l.a.fw.cli("health")
				hb, _ := l.b.fw.cli("health")
				t.Fatalf("the ban of %s made on A is not in B's kernel ban set within %v\nA's health:\n%s\nB's health:\n%s", haBanned, haFleetWait, ha, hb)
			} else {
				t.Logf("the ban made on A was in B's kernel set after %v", took.Round(time.Millisecond))
			}
			// A knock through A opens the admin port for the client; the
			// window is shared with B through the fleet.
			admin := netip.AddrPortFrom(sandbox.PairLANVIP, haAdminPort)
			expectDial(t, cli, admin, timedOut, "the admin port before the knock")
			knockWithGo(t, cli, sandbox.PairLANVIP, "tcp/7000", "udp/8000", "tcp/9000")
			expectDial(t, cli, admin, connected, "the admin port through A after the knock")
			if took, ok := waitFor(haFleetWait, func() bool {
				return metricValue(l.b.fw.metrics(), `nfqfw_fleet_decisions_received_total{kind="knock-window"}`) >= 1
			}); !ok {
				t.Errorf("the knock window opened through A did not reach B within %v", haFleetWait)
			} else {
				t.Logf("the knock window opened through A reached B after %v", took.Round(time.Millisecond))
			}
			// A port scan through A: a probe of a trap port on the LAN
			// virtual address lists the scanner (it could reach the
			// server before), and the shared list crosses to B.
			server := netip.AddrPortFrom(l.pair.ServerAddr(), haNewFlowPort)
			if err := l.dialFrom(haScanner, server); err != nil {
				t.Errorf("%s to the server through A before its scan: %v", haScanner, err)
			}
			if err := l.dialFrom(haScanner, netip.AddrPortFrom(sandbox.PairLANVIP, 23)); err == nil {
				t.Errorf("%s reached the trap port 23 through A", haScanner)
			}
			l.scannerListed(l.a, "", "after the scan through A")
			l.scannerListed(l.b, "gw-a", "after the scan through A")
			// B, still backup, has adopted the transfers conntrackd
			// injected into its kernel: nothing is left for the promotion.
			l.adoptedWhileBackup(l.b, s.streams)
			// A passive data connection announced through A (the kernel's
			// FTP helper expects it) and made only after the failover:
			// conntrackd carries the expectation to B.
			announced := s.ftp.pasv()
			l.expects(l.a, announced, "after PASV through A")

			// Failover.
			const pickups = "nfqfw_flows_picked_up_total"
			bPickups := metricValue(l.b.fw.metrics(), pickups)
			probe := startGapProbe(t, cli, netip.AddrPortFrom(l.pair.ServerAddr(), haProbePort))
			time.Sleep(200 * time.Millisecond)
			switch how {
			case down:
				for _, link := range []string{sandbox.PairLANLink, sandbox.PairWANLink, sandbox.PairSyncLink} {
					l.a.ns.MustExec("ip", "link", "set", link, "down")
				}
			case stopped:
				// A graceful stop: keepalived hands the addresses over
				// (priority 0) and its notify_stop hook demotes nfqfw.
				faults := strings.Count(l.a.hookLines(), "state fault")
				l.a.keepalive.Stop()
				l.waitRole(l.a, "fault", faults)
			default:
				l.a.killKeepalived(t)
				l.a.fw.kill()
			}
			l.waitRole(l.b, "primary", 0)
			// Before anything else uses the control connection (a new
			// PASV replaces the announced port).
			l.expects(l.b, announced, "after the failover to B")
			d := s.ftp.dialData(cli, announced)
			s.ftp.send("LIST")
			s.ftp.expect("150")
			if b, err := io.ReadAll(d); err != nil || !strings.Contains(string(b), l.ftp.file) {
				t.Errorf("LIST over the data connection announced through A, made through B: %q, %v", b, err)
			}
			d.Close()
			s.ftp.expect("226")
			gap, sent, answered := probe.finish()
			kept, lost := l.check(s, "after the failover to B")
			t.Logf("failover (%s): gap %v (%d probes, %d answered); sessions kept %d, lost %d; B's hook promoted nfqfw %v after its start, and B's nfqfw picked up %v flows mid-stream meanwhile",
				how, gap.Round(time.Millisecond), sent, answered, kept, lost, l.b.promotionTook().Round(time.Millisecond),
				metricValue(l.b.fw.metrics(), pickups)-bPickups)
			if !l.b.holdsVIPs() {
				t.Errorf("B does not hold the virtual addresses after the failover")
			}
			// A killed keepalived cannot remove its addresses: B's
			// gratuitous ARPs draw the traffic away from A.
			t.Logf("after the failover (%s), A still holds the virtual addresses: %v", how, l.a.holdsVIPs())
			if !strings.Contains(l.b.hookLines(), haPromoteMatch+l.b.fw.config+" promote (role: primary") {
				t.Errorf("B's hook did not promote its nfqfw:\n%s", l.b.hookLines())
			}
			if v := metricValue(l.b.fw.metrics(), "nfqfw_flows_adopted_total"); v < haStreams {
				t.Errorf("B's nfqfw_flows_adopted_total = %v, want at least %d (the transfers conntrackd committed)", v, haStreams)
			}
			l.newFlowDecidedBy(l.b, "after the failover to B")
			l.healthSays(l.b, "primary", "after the failover to B")
			l.banHolds(l.b, "after the failover to B")
			expectDial(t, cli, admin, connected, "the admin port through B after the failover (the knock went through A)")
			l.scannerListed(l.b, "gw-a", "after the failover to B")
			if err := l.dialFrom(haScanner, server); err == nil {
				t.Errorf("after the failover to B: the scanner %s listed through A reached the server through B", haScanner)
			}
			l.roleMetric(l.b, "primary", "after the failover to B")

			// Failback: A comes back and preempts B.
			probe = startGapProbe(t, cli, netip.AddrPortFrom(l.pair.ServerAddr(), haProbePort))
			time.Sleep(200 * time.Millisecond)
			primaries := strings.Count(l.a.hookLines(), "state primary")
			backups := strings.Count(l.b.hookLines(), "state backup")
			var aPickups float64
			switch how {
			case down:
				aPickups = metricValue(l.a.fw.metrics(), pickups)
				for _, link := range []string{sandbox.PairLANLink, sandbox.PairWANLink, sandbox.PairSyncLink} {
					l.a.ns.MustExec("ip", "link", "set", link, "up")
				}
			case stopped:
				aPickups = metricValue(l.a.fw.metrics(), pickups)
				l.a.startKeepalived(t)
			default:
				l.a.fw.start()
				aPickups = metricValue(l.a.fw.metrics(), pickups)
				l.a.startKeepalived(t)
			}
			l.waitRole(l.a, "primary", primaries)
			l.waitRole(l.b, "backup", backups)
			gap, sent, answered = probe.finish()
			kept, lost = l.check(s, "after the failback to A")
			t.Logf("failback (%s): gap %v (%d probes, %d answered); sessions kept %d, lost %d; A's hook promoted nfqfw %v after its start, and A's nfqfw picked up %v flows mid-stream meanwhile",
				how, gap.Round(time.Millisecond), sent, answered, kept, lost, l.a.promotionTook().Round(time.Millisecond),
				metricValue(l.a.fw.metrics(), pickups)-aPickups)
			if !l.a.holdsVIPs() || l.b.holdsVIPs() {
				t.Errorf("after the failback: A holds the virtual addresses %v, B %v; want A only", l.a.holdsVIPs(), l.b.holdsVIPs())
			}
			l.newFlowDecidedBy(l.a, "after the failback to A")
			l.healthSays(l.a, "primary", "after the failback to A")
			l.healthSays(l.b, "backup", "after the failback to A")
			l.roleMetric(l.a, "primary", "after the failback to A")
			l.roleMetric(l.b, "backup", "after the failback to A")
			// B, backup again, adopts what A now syncs to it.
			l.adoptedWhileBackup(l.b, s.streams)
		})
	}
}

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// The oracle: every setup of the reference guides (the shared seeds) is
// built twice, side by side, from the same topology. In one sandbox the
// protected namespace runs the guide's own rules, transcribed literally in
// testdata/oracle (the kernel decides); in the other it runs nfqfw with the
// matching shipped example of rules/examples. The same probes go against
// both, in the same order, and each is classified from what the sender
// observed on the wire: connected, answered, a TCP reset, an ICMP error of
// a given type and code, or silence. A difference fails the test unless it
// is listed, with its reason, in oracleIntended (the guide is wrong) or
// oracleKnownOpen (nfqfw is, and the entry names the behaviour still to
// fix); a listed difference that no longer differs fails too, so the lists
// only ever shrink to what is true.

// Bounds of an oracle probe: silence is declared after oracleSilence, and
// the raw sockets keep listening oracleGrace after any other outcome. A
// TCP connect whose SYN drew an ICMP error it has not ended with is given
// until oracleRetransmit (past the kernel's initial retransmission timeout
// of one second) to end with the error the retransmitted SYN draws; see
// connectContext.
const (
	oracleSilence    = 500 * time.Millisecond
	oracleGrace      = 100 * time.Millisecond
	oracleRetransmit = 1500 * time.Millisecond
)

// oracleParallel is how many setups run at the same time: a setup spends
// its time waiting out silence, not computing.
const oracleParallel = 5

// Probe kinds only the oracle sends.
const (
	tcpFIN   probeKind = "fin"  // a raw FIN of no connection (nmap -sF)
	tcpXMAS  probeKind = "xmas" // a raw FIN+PSH+URG of no connection (nmap -sX)
	ftpFetch probeKind = "ftp"  // an FTP download with the probe's tool
	// tcpBanner and udpBanner read the line of a banner server (bannerTCP,
	// bannerUDP), which names the server and the address it saw the
	// client come from: NAT shows.
	tcpBanner probeKind = "banner"
	udpBanner probeKind = "banner-udp"
	// spoofUDP sends one datagram from the sender's address inside the
	// LAN of the probe's spoof role (see addSpoofed); the outcome is
	// whether the target's banner server received it.
	spoofUDP probeKind = "spoof"
)

// ftpOracleTimeout bounds an FTP transfer of the oracle, in seconds.
const ftpOracleTimeout = 8

// oracleSetup is one setup of the guides.
type oracleSetup struct {
	name  string
	lans  []sandbox.LAN // nil: the reference sandbox (cli, srv)
	guard string        // the role whose namespace runs the firewall
	// rules4 and rules6 name testdata/oracle/RULES4.rules and
	// RULES6.rules6, the guide's rules for iptables-restore and
	// ip6tables-restore.
	rules4, rules6 string
	example        string // the file of rules/examples nfqfw runs
	// names maps the interface names of the guide's transcription and of
	// the example to the sandbox's links.
	names   func(sb *sandbox.Sandbox) *strings.Replacer
	prepare func(t *testing.T, s *oracleSide) // servers, before either firewall starts
	probes  []oracleProbe
}

// oracleProbe is one probe: what is sent, from where, to where.
type oracleProbe struct {
	from string // the sending role: a LAN role or sandbox.Gateway
	kind probeKind
	// to is the target: a LAN role (its host's address), "gw@ROLE" (the
	// gateway's address on that LAN), "lo" (the sender's loopback) or
	// "ll@ROLE" (the link-local address of ROLE's host, reached over the
	// sender's link to it; the probe is sent from the sender's own
	// link-local address).
	to    string
	v6    bool
	port  uint16
	sport uint16  // the source port of a UDP or raw TCP probe, when it matters
	tool  ftpTool // the client of an ftp probe
	flush bool    // flush every neighbour cache first: discovery must work
	spoof string  // spoofUDP: the role whose LAN the forged source is in
	// pause is waited before the probe, in a setup whose rules count
	// time; note tells apart repeats of the same probe.
	pause time.Duration
	note  string
}

// name identifies the probe in its setup, e.g. "cli>srv tcp/22 v6 #2".
func (p oracleProbe) name() string {
	n := p.from + ">" + p.to + " " + string(p.kind)
	switch {
	case p.kind == ftpFetch:
		n += " " + p.tool.name
	case p.port != 0:
		n += fmt.Sprintf("/%d", p.port)
	}
	if p.sport != 0 {
		n += fmt.Sprintf(" from port %d", p.sport)
	}
	if p.spoof != "" {
		n += " as " + p.spoof
	}
	if p.v6 {
		n += " v6"
	} else {
		n += " v4"
	}
	if p.flush {
		n += " after neighbour flush"
	}
	if p.note != "" {
		n += " " + p.note
	}
	return n
}

// both returns each probe for IPv4 and for IPv6.
func both(ps ...oracleProbe) []oracleProbe {
	var out []oracleProbe
	for _, p := range ps {
		p.v6 = false
		out = append(out, p)
		p.v6 = true
		out = append(out, p)
	}
	return out
}

// oracleSide is one of the two sandboxes of a setup.
type oracleSide struct {
	name string // "guide" or "nfqfw"
	sb   *sandbox.Sandbox
	ftp  *vsftpdServer // the FTP server of FTP setups
	// logs are the datagram logs of the UDP banner servers, by
	// "ROLE/PORT".
	logs map[string]*datagramLog
}

// target is a probe resolved in one side: the addresses it goes from and to.
type target struct {
	src, dst netip.AddrPort
}

// resolve finds p's addresses in s.
func (s *oracleSide) resolve(t *testing.T, p oracleProbe) target {
	t.Helper()
	var tg target
	addr := func(role string) netip.Addr {
		if p.v6 {
			return s.sb.Addr6(role)
		}
		return s.sb.Addr4(role)
	}
	switch {
	case p.to == "lo" && p.v6:
		tg.dst = netip.AddrPortFrom(netip.IPv6Loopback(), p.port)
	case p.to == "lo":
		tg.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), p.port)
	case strings.HasPrefix(p.to, "gw@"):
		role := strings.TrimPrefix(p.to, "gw@")
		a := s.sb.GatewayAddr4(role)
		if p.v6 {
			a = s.sb.GatewayAddr6(role)
		}
		tg.dst = netip.AddrPortFrom(a, p.port)
	case strings.HasPrefix(p.to, "ll@"):
		role := strings.TrimPrefix(p.to, "ll@")
		if p.from != sandbox.Gateway {
			t.Fatalf("probe %s: a link-local target is reached from the gateway only", p.name())
		}
		link := s.sb.GatewayLink(role)
		dst := linkLocal(t, s.sb.NS(role), s.sb.Link(role)).WithZone(link)
		tg.dst = netip.AddrPortFrom(dst, p.port)
		tg.src = netip.AddrPortFrom(linkLocal(t, s.sb.NS(sandbox.Gateway), link), p.sport)
		return tg
	default:
		tg.dst = netip.AddrPortFrom(addr(p.to), p.port)
	}
	if p.spoof != "" {
		tg.src = netip.AddrPortFrom(spoofedAddr(lanPrefix(addr(p.spoof))), 0)
	}
	if p.sport != 0 {
		any := netip.IPv4Unspecified()
		if p.v6 {
			any = netip.IPv6Unspecified()
		}
		tg.src = netip.AddrPortFrom(any, p.sport)
	}
	return tg
}

// observe sends p to tg from its role and returns what came back.
func (s *oracleSide) observe(t *testing.T, p oracleProbe, tg target) result {
	if p.pause > 0 {
		time.Sleep(p.pause)
	}
	ns := s.sb.NS(p.from)
	if p.flush {
		for _, role := range append(s.sb.Roles(), sandbox.Gateway) {
			if out, err := s.sb.Exec(role, "ip", "neigh", "flush", "all"); err != nil {
				return result{Outcome: outcome("error: neigh flush: " + err.Error() + ": " + out)}
			}
		}
	}
	if p.kind == ftpFetch {
		if ok, out := s.ftp.fetch(t, ns, p.tool, tg.dst.Addr()); !ok {
			// The tool's last word says why.
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			if i := strings.LastIndex(last, "curl: "); i >= 0 {
				last = last[i:]
			}
			return result{Outcome: "transfer failed", Seen: []string{last}}
		}
		return result{Outcome: "transferred"}
	}
	if p.kind == spoofUDP {
		return s.spoof(ns, p, tg)
	}
	c, err := openCapture(ns, p.v6)
	if err != nil {
		return result{Outcome: outcome("error: " + err.Error())}
	}
	var got outcome
	switch p.kind {
	case tcpBanner:
		ctx, cancel := connectContext(c)
		got = outcome(fetchBannerContext(ctx, ns, false, tg.src.Addr(), tg.dst, oracleRetransmit))
		cancel()
	case udpBanner:
		got = outcome(fetchBannerWithin(ns, true, tg.src.Addr(), tg.dst, oracleSilence))
	case tcpConnect:
		ctx, cancel := connectContext(c)
		got = dialTCPContext(ctx, ns, tg.dst, oracleRetransmit)
		cancel()
	case udpQuery:
		got = queryUDPWithin(ns, tg.src, tg.dst, oracleSilence)
	case icmpEcho:
		got = answered
		if err := ns.Ping(tg.dst.Addr(), 1, oracleSilence); err != nil {
			got = timedOut
		}
	case tcpACK, tcpFIN, tcpXMAS, rawGRE:
		got = s.sendRaw(ns, p, tg, c)
	default:
		got = outcome("error: unknown probe kind " + string(p.kind))
	}
	return result{Outcome: got, Seen: distinct(c.stopAfter(oracleGrace))}
}

// distinct is seen without repeats, in the order of first arrival: a
// retransmission drawing the same answer again is the same observation.
func distinct(seen []string) []string {
	var out []string
	for _, s := range seen {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// connectContext bounds a probe's TCP connect: it is done after
// oracleSilence if the capture c has recorded nothing, and after
// oracleRetransmit otherwise. An ICMP error the client saw does not always
// end its connect at once: the kernel's REJECT answers a forwarded SYN in
// the same softirq that sends it, while connect() still holds the socket,
// and the client's TCP drops an error that arrives then
// (TcpExtLockDroppedIcmps; seen for the guide's icmp6-adm-prohibited). The
// same error for the retransmitted SYN, a second later, ends the connect,
// and that is what the application sees: the probe waits for it.
func connectContext(c *capture) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), oracleRetransmit)
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(oracleSilence):
		}
		select {
		case <-c.first:
		default:
			cancel()
		}
	}()
	return ctx, cancel
}

// sendRaw sends a raw TCP segment or GRE packet and waits until the
// capture records an answer or oracleSilence passes.
func (s *oracleSide) sendRaw(ns *sandbox.Netns, p oracleProbe, tg target, c *capture) outcome {
	proto, payload := greProto, grePacket
	if p.kind != rawGRE {
		seg := &layers.TCP{SrcPort: layers.TCPPort(p.sport)}
		switch p.kind {
		case tcpACK:
			seg.ACK, seg.Ack = true, 0x2000
		case tcpFIN:
			seg.FIN = true
		case tcpXMAS:
			seg.FIN, seg.PSH, seg.URG = true, true, true
		}
		src, err := sourceToward(ns, tg.dst.Addr())
		if err != nil {
			return outcome("error: " + err.Error())
		}
		b, err := tcpSegment(src, tg.dst, seg)
		if err != nil {
			return outcome("error: " + err.Error())
		}
		proto, payload = int(layers.IPProtocolTCP), b
	}
	got := sendRaw(ns, tg.dst.Addr(), proto, payload)
	select {
	case <-c.first:
	case <-time.After(oracleSilence):
	}
	return got
}

// spoof sends one datagram from the forged source tg.src and reports
// whether the banner server at tg.dst received it.
func (s *oracleSide) spoof(ns *sandbox.Netns, p oracleProbe, tg target) result {
	role := p.to
	if strings.HasPrefix(role, "gw@") {
		role = sandbox.Gateway
	}
	log := s.logs[fmt.Sprintf("%s/%d", role, p.port)]
	if log == nil {
		return result{Outcome: outcome(fmt.Sprintf("error: no banner server %s/%d", p.to, p.port))}
	}
	payload := "spoofed " + p.name()
	if err := sendDatagramFrom(ns, tg.src, tg.dst, payload); err != nil {
		return result{Outcome: outcome("error: " + err.Error())}
	}
	if eventually(oracleSilence, func() bool { return log.carried(payload) }) {
		return result{Outcome: "delivered"}
	}
	return result{Outcome: "not delivered"}
}

// lanPrefix is the sandbox LAN of a host address: its /24 or /64.
func lanPrefix(a netip.Addr) netip.Prefix {
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked()
	}
	return netip.PrefixFrom(a, 24).Masked()
}

// carried reports whether a datagram with payload arrived, from any peer.
func (d *datagramLog) carried(payload string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range d.got {
		if strings.HasSuffix(g, " "+payload) {
			return true
		}
	}
	return false
}

// String is the observation as the table prints it.
func (r result) String() string {
	if len(r.Seen) == 0 {
		return string(r.Outcome)
	}
	return string(r.Outcome) + ": " + strings.Join(r.Seen, ", ")
}

func (r result) equal(o result) bool {
	return r.Outcome == o.Outcome && strings.Join(r.Seen, "\n") == strings.Join(o.Seen, "\n")
}

// oracleRow is one line of the summary: a setup's counts.
type oracleRow struct {
	setup                                   string
	probes, matches, intended, open, failed int
}

// TestOracle runs every setup of oracleSetups against both sides.
func TestOracle(t *testing.T) {
	requireSandbox(t)
	checkOracleLists(t)
	var (
		mu   sync.Mutex
		rows []oracleRow
	)
	t.Cleanup(func() {
		sort.Slice(rows, func(i, j int) bool { return rows[i].setup < rows[j].setup })
		var b strings.Builder
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(w, "setup\tprobes\tmatch\tintended\tknown open\tunexplained\t")
		var sum oracleRow
		for _, r := range rows {
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t\n", r.setup, r.probes, r.matches, r.intended, r.open, r.failed)
			sum.probes, sum.matches, sum.intended, sum.open, sum.failed = sum.probes+r.probes, sum.matches+r.matches, sum.intended+r.intended, sum.open+r.open, sum.failed+r.failed
		}
		fmt.Fprintf(w, "all\t%d\t%d\t%d\t%d\t%d\t\n", sum.probes, sum.matches, sum.intended, sum.open, sum.failed)
		w.Flush()
		t.Logf("the guides' rules against nfqfw's examples:\n%s", b.String())
	})
	// The setups run side by side, oracleParallel at a time (t.Run may be
	// called from several goroutines; t.Parallel would hold them to
	// -parallel, the number of CPUs), the longest first.
	t.Parallel()
	setups := slices.Clone(oracleSetups)
	slices.SortStableFunc(setups, func(a, b oracleSetup) int { return len(b.probes) - len(a.probes) })
	sem := make(chan struct{}, oracleParallel)
	var wg sync.WaitGroup
	for _, setup := range setups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t.Run(setup.name, func(t *testing.T) {
				row := runOracle(t, setup)
				mu.Lock()
				rows = append(rows, row)
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
}

// checkOracleLists fails t for an entry of either list that names no probe.
func checkOracleLists(t *testing.T) {
	t.Helper()
	keys := map[string]bool{}
	for _, s := range oracleSetups {
		for _, p := range s.probes {
			k := s.name + ": " + p.name()
			if keys[k] {
				t.Errorf("probe %q is listed twice: give one a note", k)
			}
			keys[k] = true
		}
	}
	for name, list := range map[string]map[string]string{"oracleIntended": oracleIntended, "oracleKnownOpen": oracleKnownOpen} {
		for k := range list {
			if !keys[k] {
				t.Errorf("%s names %q, which is no probe of any setup", name, k)
			}
			if _, dup := oracleIntended[k]; dup && name == "oracleKnownOpen" {
				t.Errorf("%q is in both lists", k)
			}
		}
	}
}

// runOracle builds both sides of setup, sends its probes against both at
// the same time and compares what came back.
func runOracle(t *testing.T, setup oracleSetup) oracleRow {
	sides := []*oracleSide{{name: "guide", logs: map[string]*datagramLog{}}, {name: "nfqfw", logs: map[string]*datagramLog{}}}
	// Both sides are built at the same time. A helper failing in a side's
	// goroutine marks t failed and ends only that goroutine: t stops here.
	var wg sync.WaitGroup
	for i, s := range sides {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.sb = sandbox.New(t, sandbox.Options{LANs: setup.lans})
			if setup.prepare != nil {
				setup.prepare(t, s)
			}
			if i == 0 {
				loadGuide(t, s.sb, setup)
				return
			}
			config := setup.names(s.sb).Replace(exampleConfig(t, s.sb, setup.example))
			startFirewall(t, s.sb.NS(setup.guard), config)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	results := make([][]result, len(sides))
	for i, s := range sides {
		results[i] = make([]result, len(setup.probes))
		targets := make([]target, len(setup.probes))
		for j, p := range setup.probes {
			targets[j] = s.resolve(t, p)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j, p := range setup.probes {
				results[i][j] = s.observe(t, p, targets[j])
			}
		}()
	}
	wg.Wait()
	return compareOracle(t, setup, results[0], results[1])
}

// loadGuide installs the guide's transcribed rules in the guarded
// namespace of sb, both families.
func loadGuide(t *testing.T, sb *sandbox.Sandbox, setup oracleSetup) {
	t.Helper()
	for _, f := range []struct{ file, cmd string }{{setup.rules4 + ".rules", "iptables-restore"}, {setup.rules6 + ".rules6", "ip6tables-restore"}} {
		b, err := os.ReadFile(filepath.Join("testdata", "oracle", f.file))
		if err != nil {
			t.Fatalf("the guide's rules: %v", err)
		}
		path := filepath.Join(tempDir(t), "rules")
		if err := os.WriteFile(path, []byte(setup.names(sb).Replace(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
		sb.NS(setup.guard).MustExec(f.cmd, path)
	}
}

// compareOracle classifies each probe's pair of observations, fails t on
// an unexplained difference or a listed one that is gone, and logs the
// setup's table.
func compareOracle(t *testing.T, setup oracleSetup, guide, nfq []result) oracleRow {
	t.Helper()
	row := oracleRow{setup: setup.name, probes: len(setup.probes)}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "\tprobe\tguide\tnfqfw")
	for i, p := range setup.probes {
		key := setup.name + ": " + p.name()
		why, intended := oracleIntended[key]
		open, known := oracleKnownOpen[key]
		mark := "="
		switch same := guide[i].equal(nfq[i]); {
		case same && intended:
			row.failed++
			mark = "!"
			t.Errorf("%s: both observe %s, yet it is listed as an intended difference (%s): remove from oracleIntended", key, guide[i], why)
		case same && known:
			row.failed++
			mark = "!"
			t.Errorf("%s: now matches (%s): remove from oracleKnownOpen (%s)", key, guide[i], open)
		case same:
			row.matches++
		case intended:
			row.intended++
			mark = "intended"
		case known:
			row.open++
			mark = "open"
		default:
			row.failed++
			mark = "!"
			t.Errorf("%s: the guide's rules give %q, nfqfw gives %q: a difference in neither oracleIntended nor oracleKnownOpen", key, guide[i], nfq[i])
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", mark, p.name(), guide[i], nfq[i])
	}
	w.Flush()
	t.Logf("%s: %d probes, %d match, %d intended differences, %d known open, %d unexplained\n%s",
		setup.name, row.probes, row.matches, row.intended, row.open, row.failed, b.String())
	return row
}

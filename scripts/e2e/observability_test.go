package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/metrics"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// obsConfig is the observability scenario's policy on the host: every
// stateful mechanism is configured, so that every metric family of the
// dashboard has data, and one rule logs what it drops. UPLINK is replaced
// by the host's link.
const obsConfig = `
zones:
  uplink: [UPLINK]
trusted: [lo]
log: {format: json, level: info, rate: 10}
recent:
  - name: scanners
    size: 100
knocks:
  - name: admin-knock
    steps: [tcp/7000, udp/8000, tcp/9000]
    step_window: 5s
    window: 15s
    open:
      - {proto: tcp, ports: [2222]}
    open_for: 60s
guards:
  - name: ssh-bruteforce
    limits:
      - {count: 3, window: 30s}
    log: {prefix: "SSH-BRUTE "}
    ban: {duration: 60s}
input:
  policy: drop
  invalid: drop
  rules:
    - name: ping
      proto: icmp
      icmp_type: echo-request
      action: accept
    - name: admin
      in: uplink
      proto: tcp
      dport: 2222
      knock: admin-knock
      action: accept
    - name: ssh
      in: uplink
      proto: tcp
      dport: 22
      guard: ssh-bruteforce
      action: accept
    - name: web
      in: uplink
      proto: tcp
      dport: 80
      action: accept
    - name: dns
      in: uplink
      proto: udp
      dport: 53
      action: accept
    - name: scanned-again
      proto: tcp
      dport: 8443
      recent: {list: scanners, op: check, seconds: 60}
      action: reject
    - name: trap
      proto: tcp
      dport: 8081
      recent: {list: scanners, op: set}
      action: reject
    - name: flood-sink
      proto: udp
      dport: 9999
      action: drop
      log: {prefix: "E2E-DROP "}
    - name: closed-tcp
      proto: tcp
      action: reject
    - name: closed-udp
      proto: udp
      action: reject
      reject_with: icmp-port-unreachable
output:
  policy: accept
`

// Scenario constants.
const (
	obsPromAddr    = "127.0.0.1:9470" // Prometheus' own listener, in the host namespace
	obsDNSPort     = 40053            // the client's fixed source port of its DNS query
	obsFloodCount  = 300              // datagrams sent to the logging rule
	obsFloodBursts = 3                // in this many bursts, a second apart
	obsLogRate     = 10               // log.rate of obsConfig
	obsManualBan   = "192.0.2.55"     // banned by hand, never seen on the wire
	obsScrapeWait  = 20 * time.Second // bound for Prometheus to catch up with the daemon
	obsAgreeWait   = 5 * time.Second  // bound for the engine's flags to agree with conntrack's
)

// TestObservability runs a real Prometheus against the daemon while
// scripted traffic exercises every mechanism of the policy (accepted and
// rejected TCP, UDP, pings, a knock sequence and a failed one, a recent
// list, a rate guard that bans, a manual ban, a log flood and a reload),
// then:
//
//   - every panel query of the Grafana dashboard evaluates through
//     Prometheus' HTTP API to a non-empty result without NaN;
//   - promtool check metrics accepts a live scrape;
//   - nfqfw state lists the flows like conntrack -L, its filters and summary
//     are right, and it agrees with the kernel's conntrack table;
//   - a dropped packet writes one JSON log line with the fields an operator
//     greps for, and a flood is written at the configured rate with the
//     rest counted as suppressed.
func TestObservability(t *testing.T) {
	requireSandbox(t, "prometheus", "promtool", "conntrack")
	t.Parallel()

	sb := sandbox.New(t, sandbox.Options{})
	cli, host := sb.NS(clientRole), sb.NS(hostRole)
	h4, h6 := sb.Addr4(hostRole), sb.Addr6(hostRole)
	c4 := sb.Addr4(clientRole)
	at := func(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
	serveTCP(t, host, 22, 80, 2222)
	serveUDP(t, host, 53)

	fw := startFirewall(t, host, strings.ReplaceAll(obsConfig, "UPLINK", sb.Link(hostRole)))
	prom := startPromServer(t, host)
	web := converse(t, cli, at(h4, 80))

	t.Run("traffic", func(t *testing.T) {
		runProbes(t, sb, cli, []probe{
			// Without the knock the rule does not match: the port is as
			// closed as any other.
			{name: "knocked service is closed before the knock", kind: tcpConnect, dst: at(h4, 2222), want: refused,
				seen: []string{"tcp RST from 10.99.2.2:2222"}},
			{name: "web", kind: tcpConnect, dst: at(h4, 80), want: connected},
			{name: "web over IPv6", kind: tcpConnect, dst: at(h6, 80), want: connected},
			{name: "dns", kind: udpQuery, src: at(c4, obsDNSPort), dst: at(h4, 53), want: answered},
			{name: "ping", kind: icmpEcho, dst: at(h4, 0), want: answered},
			{name: "closed tcp port is reset", kind: tcpConnect, dst: at(h4, 8080), want: refused,
				seen: []string{"tcp RST from 10.99.2.2:8080"}},
			{name: "closed udp port is port-unreachable", kind: udpQuery, dst: at(h4, 5000), want: refused,
				seen: []string{"icmp port-unreachable from 10.99.2.2"}},
			{name: "trap port puts the source on the recent list", kind: tcpConnect, dst: at(h4, 8081), want: refused,
				seen: []string{"tcp RST from 10.99.2.2:8081"}},
			{name: "a listed source is refused again", kind: tcpConnect, dst: at(h4, 8443), want: refused,
				seen: []string{"tcp RST from 10.99.2.2:8443"}},
		})
		// A knock broken by a step out of order fails (wrong_port), as
		// knockd's does; a connection to a port that is no step (the
		// web server) leaves the progress alone. The IPv6 address is
		// the source, so the IPv4 sequence below is not disturbed.
		obsKnock(t, cli, at(h6, 7000), "tcp")
		runProbes(t, sb, cli, []probe{{name: "a connection to no step leaves the IPv6 knock alone", kind: tcpConnect, dst: at(h6, 80), want: connected}})
		obsKnock(t, cli, at(h6, 9000), "tcp")
		for _, k := range []struct {
			port  uint16
			proto string
		}{{7000, "tcp"}, {8000, "udp"}, {9000, "tcp"}} {
			obsKnock(t, cli, at(h4, k.port), k.proto)
		}
		runProbes(t, sb, cli, []probe{{name: "knocked service opens", kind: tcpConnect, dst: at(h4, 2222), want: connected}})
		// The guard admits 3 new SSH connections per 30 s, then bans.
		runProbes(t, sb, cli, []probe{
			{name: "ssh 1", kind: tcpConnect, dst: at(h6, 22), want: connected},
			{name: "ssh 2", kind: tcpConnect, dst: at(h6, 22), want: connected},
			{name: "ssh 3", kind: tcpConnect, dst: at(h6, 22), want: connected},
			{name: "ssh 4 trips the guard", kind: tcpConnect, dst: at(h6, 22), want: timedOut},
			{name: "the banned source is dropped everywhere", kind: tcpConnect, dst: at(h6, 80), want: timedOut},
		})
		fw.mustCLI(t, "bans", "add", obsManualBan, "--for", "5m", "--reason", "e2e")
	})

	var flood obsFlood
	t.Run("log", func(t *testing.T) { flood = obsCheckLogs(t, fw, cli, at(h4, 9999), c4, h4, sb.Link(hostRole)) })

	t.Run("metrics of every mechanism", func(t *testing.T) {
		// Knock windows and progress are gauges as of the last expiry
		// pass, which runs every second.
		want := map[string]float64{
			`nfqfw_knock_success_total{sequence="admin-knock"}`:                      1,
			`nfqfw_knock_failures_total{reason="wrong_port",sequence="admin-knock"}`: 1,
			`nfqfw_knock_windows_open{sequence="admin-knock"}`:                       1,
			`nfqfw_recent_entries{list="scanners"}`:                                  1,
			`nfqfw_recent_hits_total{list="scanners"}`:                               1,
			`nfqfw_guard_attempts_total{guard="ssh-bruteforce",result="allowed"}`:    3,
			`nfqfw_guard_attempts_total{guard="ssh-bruteforce",result="limited"}`:    1,
			`nfqfw_bans_active`:                                                       2,
			`nfqfw_bans_issued_total{source="guard"}`:                                 1,
			`nfqfw_bans_issued_total{source="manual"}`:                                1,
			`nfqfw_packets_total{action="accept",chain="input",rule="web"}`:           4,
			`nfqfw_packets_total{action="reject",chain="input",rule="closed-tcp"}`:    1,
			`nfqfw_packets_total{action="reject",chain="input",rule="scanned-again"}`: 1,
			`nfqfw_packets_total{action="drop",chain="input",rule="flood-sink"}`:      obsFloodCount + 1,
			`nfqfw_log_suppressed_total`:                                              float64(flood.suppressed),
			`nfqfw_verdict_latency_seconds_count{queue="0"}`:                          obsFloodCount,
		}
		exp := obsWaitMetrics(t, fw, want, 3*time.Second)
		exact := map[string]float64{
			`nfqfw_knock_success_total{sequence="admin-knock"}`:                   1,
			`nfqfw_guard_attempts_total{guard="ssh-bruteforce",result="allowed"}`: 3,
			`nfqfw_bans_issued_total{source="guard"}`:                             1,
			`nfqfw_bans_issued_total{source="manual"}`:                            1,
		}
		for series, v := range exact {
			if got := metricValue(exp, series); got != v {
				t.Errorf("%s = %v, want exactly %v", series, got, v)
			}
		}

		// A reload rebuilds the stateful matchers; their counters go on.
		before := map[string]float64{}
		for series := range want {
			if strings.Contains(series, "_total") {
				before[series] = metricValue(exp, series)
			}
		}
		fw.reload()
		after := fw.metrics()
		for series, v := range before {
			if got := metricValue(after, series); got < v {
				t.Errorf("after reload %s = %v, was %v: a counter went back", series, got, v)
			}
		}
		if got := metricValue(after, `nfqfw_config_reloads_total{result="success"}`); got != 1 {
			t.Errorf(`nfqfw_config_reloads_total{result="success"} = %v after one reload, want 1`, got)
		}
	})

	t.Run("promtool check metrics", func(t *testing.T) {
		cmd := exec.Command("promtool", "check", "metrics")
		cmd.Stdin = strings.NewReader(fw.metrics())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v:\n%s", err, out)
		}
	})

	t.Run("prometheus evaluates every dashboard query", func(t *testing.T) {
		// Wait until Prometheus has scraped the daemon after the
		// reload twice, so that rate() over the reload family works.
		prom.waitFor(t, `count_over_time(nfqfw_config_reloads_total[1m]) >= 2`)
		prom.waitFor(t, fmt.Sprintf(`nfqfw_log_suppressed_total >= %d`, flood.suppressed))
		queries, err := metrics.DashboardQueries(filepath.Join("..", "..", metrics.DashboardPath))
		if err != nil {
			t.Fatal(err)
		}
		exposed := obsExposedFamilies(fw.metrics())
		var empty []string
		for i, q := range queries {
			res, err := prom.query(q)
			if err != nil {
				t.Errorf("query %d %s: %v", i, q, err)
				continue
			}
			if len(res) == 0 {
				if missing := obsOptionalAbsent(q, exposed); missing != "" {
					empty = append(empty, fmt.Sprintf("%s (%s not exposed)", q, missing))
					continue
				}
				t.Errorf("query %d returned no data: %s", i, q)
				continue
			}
			for _, s := range res {
				if math.IsNaN(s.value) {
					t.Errorf("query %d returned NaN for %v: %s", i, s.metric, q)
				}
			}
			t.Logf("query %2d: %d series, first %v = %g: %s", i, len(res), res[0].metric, res[0].value, q)
		}
		t.Logf("%d dashboard queries evaluated by Prometheus; %d empty because their family is not exposed: %q",
			len(queries), len(empty), empty)
	})

	t.Run("state", func(t *testing.T) { obsCheckState(t, fw, host, web, c4, h4) })
	web.check(t, "at the end")
}

// obsKnock sends one knock from ns: a TCP SYN (the connection attempt is
// abandoned: knocks are dropped) or a UDP datagram.
func obsKnock(t *testing.T, ns *sandbox.Netns, dst netip.AddrPort, proto string) {
	t.Helper()
	err := ns.Do(func() error {
		if proto == "udp" {
			c, err := net.Dial("udp", dst.String())
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("knock"))
			return err
		}
		c, err := net.DialTimeout("tcp", dst.String(), 150*time.Millisecond)
		if err == nil {
			c.Close()
			return fmt.Errorf("knock %s connected: knocks must be dropped", dst)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("knock %s/%d: %v", proto, dst.Port(), err)
	}
	// Let the queue decide the knock before the next one is sent.
	time.Sleep(100 * time.Millisecond)
}

// obsWaitMetrics scrapes the daemon until every series of atLeast has at
// least its value, at most for d, and returns the last scrape; it fails t
// with what is missing after d.
func obsWaitMetrics(t *testing.T, fw *firewall, atLeast map[string]float64, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		exp := fw.metrics()
		ok := true
		for series, min := range atLeast {
			if metricValue(exp, series) < min {
				ok = false
			}
		}
		if ok || time.Now().After(deadline) {
			checkMetrics(t, exp, atLeast)
			return exp
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// obsFlood is what the log flood counted.
type obsFlood struct {
	suppressed uint64 // nfqfw_log_suppressed_total after the flood
}

// obsPacketLine is one packet log line of the daemon, in JSON.
type obsPacketLine struct {
	Time   time.Time `json:"time"`
	Level  string    `json:"level"`
	Msg    string    `json:"msg"`
	Prefix string    `json:"prefix"`
	Action string    `json:"action"`
	Rule   string    `json:"rule"`
	Reason string    `json:"reason"`
	Chain  string    `json:"chain"`
	In     *string   `json:"in"`
	Out    *string   `json:"out"`
	Proto  string    `json:"proto"`
	Src    string    `json:"src"`
	Dst    string    `json:"dst"`
	SPort  int       `json:"sport"`
	DPort  int       `json:"dport"`
}

// obsPacketLines returns the daemon's packet log lines with prefix; every
// line of its output must be JSON.
func obsPacketLines(t *testing.T, output, prefix string) []obsPacketLine {
	t.Helper()
	var out []obsPacketLine
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.TrimSpace(l) == "" {
			continue
		}
		var pl obsPacketLine
		if err := json.Unmarshal([]byte(l), &pl); err != nil {
			t.Errorf("log line is not JSON (log.format json): %v: %s", err, l)
			continue
		}
		if pl.Msg == "packet" && pl.Prefix == prefix {
			out = append(out, pl)
		}
	}
	return out
}

// obsCheckLogs sends one datagram to the logging rule and expects one line
// with every field, then floods it and expects at most the rate per second
// with the rest counted as suppressed.
func obsCheckLogs(t *testing.T, fw *firewall, cli *sandbox.Netns, dst netip.AddrPort, src, host netip.Addr, link string) obsFlood {
	const prefix = "E2E-DROP "
	before := fw.metrics()
	w0 := metricValue(before, "nfqfw_log_lines_total")
	s0 := metricValue(before, "nfqfw_log_suppressed_total")

	ports := obsSendUDP(t, cli, dst, 1)
	var lines []obsPacketLine
	deadline := time.Now().Add(3 * time.Second)
	for len(lines) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		lines = obsPacketLines(t, fw.proc.Output(), prefix)
	}
	if len(lines) != 1 {
		t.Fatalf("one dropped datagram: %d log lines with prefix %q, want 1\n%s", len(lines), prefix, fw.proc.Output())
	}
	got := lines[0]
	in, out := "<absent>", "<absent>"
	if got.In != nil {
		in = *got.In
	}
	if got.Out != nil {
		out = *got.Out
	}
	type fields struct {
		Level, Prefix, Action, Rule, Reason, Chain, In, Out, Proto, Src, Dst string
		SPort, DPort                                                         int
	}
	wantF := fields{Level: "INFO", Prefix: prefix, Action: "drop", Rule: "flood-sink", Reason: "rule", Chain: "input",
		In: link, Out: "", Proto: "udp", Src: src.String(), Dst: dst.Addr().String(), SPort: int(ports[0]), DPort: int(dst.Port())}
	gotF := fields{Level: got.Level, Prefix: got.Prefix, Action: got.Action, Rule: got.Rule, Reason: got.Reason, Chain: got.Chain,
		In: in, Out: out, Proto: got.Proto, Src: got.Src, Dst: got.Dst, SPort: got.SPort, DPort: got.DPort}
	if gotF != wantF {
		t.Errorf("drop log line:\n got %+v\nwant %+v", gotF, wantF)
	}
	if got.Time.IsZero() {
		t.Errorf("drop log line has no time")
	}

	// The flood comes in bursts a second apart, so that the limit is
	// seen per second and not only once.
	start := time.Now()
	for i := range obsFloodBursts {
		if i > 0 {
			time.Sleep(time.Second)
		}
		obsSendUDP(t, cli, dst, obsFloodCount/obsFloodBursts)
	}
	sent := time.Since(start)
	// Wait until every datagram is decided: written + suppressed grows
	// by the flood.
	var exp string
	deadline = time.Now().Add(5 * time.Second)
	for {
		exp = fw.metrics()
		decided := metricValue(exp, "nfqfw_log_lines_total") - w0 + metricValue(exp, "nfqfw_log_suppressed_total") - s0
		if decided >= obsFloodCount+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	written := metricValue(exp, "nfqfw_log_lines_total") - w0
	suppressed := metricValue(exp, "nfqfw_log_suppressed_total") - s0
	lines = obsPacketLines(t, fw.proc.Output(), prefix)
	perSecond := map[int64]int{}
	for _, l := range lines {
		perSecond[l.Time.Unix()]++
	}
	t.Logf("flood of %d datagrams sent in %v: %d lines written, %d suppressed; lines per second: %v",
		obsFloodCount, sent.Round(time.Millisecond), len(lines), int(suppressed), perSecond)
	if written+suppressed != obsFloodCount+1 {
		t.Errorf("log lines written %v + suppressed %v = %v, want every dropped datagram (%d) counted once",
			written, suppressed, written+suppressed, obsFloodCount+1)
	}
	if float64(len(lines)) != written {
		t.Errorf("%d %q lines in the output, nfqfw_log_lines_total grew by %v", len(lines), prefix, written)
	}
	for sec, n := range perSecond {
		// The limiter's window is the wall-clock second at the decision;
		// the line's time is taken a moment later and may cross into the
		// next second, hence one line of slack.
		if n > obsLogRate+1 {
			t.Errorf("%d log lines in second %d, want at most the rate %d (+1)", n, sec, obsLogRate)
		}
	}
	if maxLines := obsLogRate * (int(sent/time.Second) + 2); len(lines) > maxLines {
		t.Errorf("%d log lines for a flood of %v, want at most %d", len(lines), sent, maxLines)
	}
	// Each burst is ten times the rate and starts in a second of its
	// own: the limit must not suppress more than it has to.
	if minLines := obsLogRate * obsFloodBursts; len(lines) < minLines {
		t.Errorf("%d log lines for %d bursts of %d, want at least %d (the rate in each burst's second)",
			len(lines), obsFloodBursts, obsFloodCount/obsFloodBursts, minLines)
	}
	if suppressed < obsFloodCount-float64(len(lines)) {
		t.Errorf("suppressed %v, want at least %v", suppressed, obsFloodCount-len(lines))
	}
	return obsFlood{suppressed: uint64(metricValue(exp, "nfqfw_log_suppressed_total"))}
}

// obsSendUDP sends n datagrams from ns to dst, each from a new socket so
// that each is a NEW flow the queue decides, and returns their source
// ports.
func obsSendUDP(t *testing.T, ns *sandbox.Netns, dst netip.AddrPort, n int) []uint16 {
	t.Helper()
	ports := make([]uint16, 0, n)
	err := ns.Do(func() error {
		for range n {
			c, err := net.Dial("udp", dst.String())
			if err != nil {
				return err
			}
			ports = append(ports, c.LocalAddr().(*net.UDPAddr).AddrPort().Port())
			_, err = c.Write([]byte("nfqfw e2e flood"))
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send udp to %s: %v", dst, err)
	}
	return ports
}

// promServer is a Prometheus server started by the test in the daemon's
// namespace, scraping it every second.
type promServer struct {
	ns   *sandbox.Netns
	proc *sandbox.Proc
	http *http.Client
}

const obsPromConfig = `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: nfqfw
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ["%s"]
`

// startPromServer starts /usr/bin/prometheus in ns with a temporary config
// and storage, and waits until it is ready and has scraped the daemon
// once. It is stopped by PID at cleanup.
func startPromServer(t *testing.T, ns *sandbox.Netns) *promServer {
	t.Helper()
	dir := tempDir(t)
	cfg := filepath.Join(dir, "promServer.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(obsPromConfig, metricsAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &promServer{ns: ns, http: ns.HTTPClient()}
	p.proc = ns.Start("prometheus",
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=1h",
		"--web.listen-address="+obsPromAddr,
		"--log.level=warn",
	)
	t.Cleanup(func() {
		p.proc.Stop()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.proc.Output())
		}
	})
	deadline := time.Now().Add(obsScrapeWait)
	for {
		resp, err := p.http.Get("http://" + obsPromAddr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if werr := p.proc.Wait(10 * time.Millisecond); werr != sandbox.ErrStillRunning {
			t.Fatalf("prometheus exited: %v\n%s", werr, p.proc.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after %v: %v\n%s", obsScrapeWait, err, p.proc.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.waitFor(t, `up{job="nfqfw"} == 1`)
	return p
}

// obsHTTPClient is an HTTP client whose connections are dialled inside ns.
func obsHTTPClient(ns *sandbox.Netns) *http.Client { return ns.HTTPClient() }

// obsSample is one element of an instant query's result.
type obsSample struct {
	metric map[string]string
	value  float64
}

// query evaluates q through /api/v1/query. The status must be success;
// a scalar result is one obsSample without labels.
func (p *promServer) query(q string) ([]obsSample, error) {
	resp, err := p.http.Get("http://" + obsPromAddr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", resp.Status, err, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("status %q: %s: %s", r.Status, r.ErrorType, r.Error)
	}
	parse := func(v [2]any) (float64, error) {
		s, _ := v[1].(string)
		return strconv.ParseFloat(s, 64)
	}
	switch r.Data.ResultType {
	case "vector":
		var vs []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &vs); err != nil {
			return nil, err
		}
		out := make([]obsSample, 0, len(vs))
		for _, v := range vs {
			f, err := parse(v.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, obsSample{metric: v.Metric, value: f})
		}
		return out, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return nil, err
		}
		f, err := parse(v)
		return []obsSample{{value: f}}, err
	}
	return nil, fmt.Errorf("unexpected result type %q", r.Data.ResultType)
}

// waitFor polls q until it returns data, at most obsScrapeWait.
func (p *promServer) waitFor(t *testing.T, q string) {
	t.Helper()
	deadline := time.Now().Add(obsScrapeWait)
	for {
		res, err := p.query(q)
		if err == nil && len(res) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %s: no data after %v (err %v)\n%s", q, obsScrapeWait, err, p.proc.Output())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// obsExposedFamilies returns the metric families of a text exposition.
func obsExposedFamilies(exposition string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(exposition, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = true
		}
	}
	return out
}

// obsOptionalFamilies are the families the daemon may leave out: the FTP
// helper's, when no FTP source is wired, the fleet link's, without a
// fleet, and the shared recent lists', without a list shared with one
// (TestFleet evaluates the fleet row, both). Every other family must have
// data in the scenario.
var obsOptionalFamilies = regexp.MustCompile(`^nfqfw_(ftp_|fleet_|recent_shared_total$)`)

var obsFamilyRef = regexp.MustCompile(`\b(nfqfw_[a-z0-9_]+|process_[a-z0-9_]+|go_[a-z0-9_]+)`)

// obsOptionalAbsent returns the optional family q reads that the daemon does
// not expose, or "" when q reads only families that must have data.
func obsOptionalAbsent(q string, exposed map[string]bool) string {
	for _, name := range obsFamilyRef.FindAllString(q, -1) {
		name = strings.TrimSuffix(name, "_bucket")
		if obsOptionalFamilies.MatchString(name) && !exposed[name] {
			return name
		}
	}
	return ""
}

// obsCheckState compares nfqfw state with the kernel's conntrack table and
// checks its filters and summary.
func obsCheckState(t *testing.T, fw *firewall, host *sandbox.Netns, web *conversation, c4, h4 netip.Addr) {
	webPort := uint16(web.conn.LocalAddr().(*net.TCPAddr).Port)
	webKey := fmt.Sprintf("src=%s dst=%s sport=%d dport=80", c4, h4, webPort)
	dnsKey := fmt.Sprintf("src=%s dst=%s sport=%d dport=53", c4, h4, obsDNSPort)

	t.Run("agrees with conntrack -L", func(t *testing.T) {
		for _, key := range []string{webKey, dnsKey} {
			var eng, kern string
			deadline := time.Now().Add(obsAgreeWait)
			for {
				eng, kern = obsEngineFlow(t, fw, key), obsKernelFlow(t, host, key)
				if eng != "" && eng == kern {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("flow %s within %v:\nnfqfw state: %q\nconntrack:   %q", key, obsAgreeWait, eng, kern)
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			t.Logf("flow %s: %s", key, eng)
		}
	})

	t.Run("lists flows like conntrack -L", func(t *testing.T) {
		out, err := fw.cli("state")
		if err != nil {
			t.Fatalf("nfqfw state: %v: %s", err, out)
		}
		want := regexp.MustCompile(`(?m)^tcp +6 \d+ ESTABLISHED ` + regexp.QuoteMeta(webKey) +
			` src=` + regexp.QuoteMeta(h4.String()) + ` dst=` + regexp.QuoteMeta(c4.String()) +
			fmt.Sprintf(` sport=80 dport=%d \[ASSURED\] rule=web#\d+$`, webPort))
		if !want.MatchString(out) {
			t.Errorf("nfqfw state has no line matching %s:\n%s", want, out)
		}
		line := regexp.MustCompile(`^(tcp|udp|icmp|icmpv6) +\d+ \d+ ([A-Z_]+ )?src=\S+ dst=\S+ .*src=\S+ dst=\S+`)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		for _, l := range lines[:len(lines)-1] {
			if !line.MatchString(l) {
				t.Errorf("not a conntrack -L line: %q", l)
			}
		}
		obsCheckSummary(t, lines[len(lines)-1], len(lines)-1, fw.state())
	})

	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			args    []string
			keep    func(control.StateFlow) bool
			present []string // flows (by original tuple) that must match
			absent  []string // flows that must not
		}{
			{name: "proto udp", args: []string{"--proto", "udp"}, keep: func(f control.StateFlow) bool { return f.Proto == "udp" },
				present: []string{dnsKey}, absent: []string{webKey}},
			{name: "proto tcp", args: []string{"--proto", "tcp"}, keep: func(f control.StateFlow) bool { return f.Proto == "tcp" },
				present: []string{webKey}, absent: []string{dnsKey}},
			{name: "port 80", args: []string{"--port", "80"}, keep: func(f control.StateFlow) bool {
				return slices.Contains([]uint16{f.SPort, f.DPort, f.RSPort, f.RDPort}, 80)
			}, present: []string{webKey}, absent: []string{dnsKey}},
			{name: "addr of the client", args: []string{"--addr", c4.String()}, keep: func(f control.StateFlow) bool {
				return slices.Contains([]string{f.Src, f.Dst, f.RSrc, f.RDst}, c4.String())
			}, present: []string{webKey, dnsKey}},
			{name: "state ESTABLISHED", args: []string{"--state", "established"}, keep: func(f control.StateFlow) bool {
				return f.State == "ESTABLISHED"
			}, present: []string{webKey}, absent: []string{dnsKey}},
			{name: "state ASSURED", args: []string{"--state", "ASSURED"}, keep: func(f control.StateFlow) bool { return f.Assured },
				present: []string{webKey}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st := cliJSON[control.StateResponse](t, fw, append([]string{"state", "--json"}, tc.args...)...)
				if st.Matched != len(st.Flows) {
					t.Errorf("matched %d, listed %d flows", st.Matched, len(st.Flows))
				}
				keys := map[string]bool{}
				for _, f := range st.Flows {
					keys[obsFlowKey(f)] = true
					if !tc.keep(f) {
						t.Errorf("flow does not pass the filter: %s", f.Line)
					}
				}
				for _, k := range tc.present {
					if !keys[k] {
						t.Errorf("flow %s missing:\n%s", k, lines(st))
					}
				}
				for _, k := range tc.absent {
					if keys[k] {
						t.Errorf("flow %s listed, want it filtered out", k)
					}
				}
			})
		}
	})
}

// obsCheckSummary checks the last line of nfqfw state against the number of
// flow lines printed and the JSON view's counts.
func obsCheckSummary(t *testing.T, summary string, printed int, st control.StateResponse) {
	t.Helper()
	m := regexp.MustCompile(`^nfqfw state: (\d+) flows shown, (\d+) matched, (\d+) tracked \(max (\d+)\)((?:; [^;]+ \d+)*)$`).
		FindStringSubmatch(summary)
	if m == nil {
		t.Fatalf("summary line %q", summary)
	}
	shown, _ := strconv.Atoi(m[1])
	matched, _ := strconv.Atoi(m[2])
	tracked, _ := strconv.Atoi(m[3])
	if shown != printed || matched != printed {
		t.Errorf("summary says %d shown, %d matched; %d flow lines printed", shown, matched, printed)
	}
	sum := 0
	for _, part := range strings.Split(strings.TrimPrefix(m[5], "; "), "; ") {
		i := strings.LastIndexByte(part, ' ')
		n, err := strconv.Atoi(part[i+1:])
		if err != nil {
			t.Fatalf("summary part %q: %v", part, err)
		}
		sum += n
	}
	if sum != tracked {
		t.Errorf("summary per state adds up to %d, tracked %d: %s", sum, tracked, summary)
	}
	jsum := 0
	for _, n := range st.ByState {
		jsum += n
	}
	if jsum != st.Total || st.Matched != len(st.Flows) || st.Total < len(st.Flows) {
		t.Errorf("--json counts: total %d, matched %d, by state adds up to %d, %d flows", st.Total, st.Matched, jsum, len(st.Flows))
	}
}

// obsFlowKey is a flow's original tuple as conntrack prints it.
func obsFlowKey(f control.StateFlow) string {
	return fmt.Sprintf("src=%s dst=%s sport=%d dport=%d", f.Src, f.Dst, f.SPort, f.DPort)
}

// obsEngineFlow describes the engine's flow with original tuple key as
// "PROTO STATE [UNREPLIED] [ASSURED]", or "" when absent.
func obsEngineFlow(t *testing.T, fw *firewall, key string) string {
	for _, f := range fw.state().Flows {
		if obsFlowKey(f) == key {
			return obsDescribeFlow(f.Proto, f.State, !f.Replied, f.Assured)
		}
	}
	return ""
}

// obsKernelFlow describes the conntrack entry of ns with original tuple key
// the same way, or "" when absent.
func obsKernelFlow(t *testing.T, ns *sandbox.Netns, key string) string {
	out, err := ns.Exec("conntrack", "-L")
	if err != nil {
		t.Fatalf("conntrack -L: %v: %s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || !strings.Contains(l, " "+key+" ") {
			continue
		}
		state := ""
		if f[0] == "tcp" {
			state = f[3]
		}
		return obsDescribeFlow(f[0], state, strings.Contains(l, "[UNREPLIED]"), strings.Contains(l, "[ASSURED]"))
	}
	return ""
}

func obsDescribeFlow(proto, state string, unreplied, assured bool) string {
	s := proto
	if state != "" {
		s += " " + state
	}
	if unreplied {
		s += " [UNREPLIED]"
	}
	if assured {
		s += " [ASSURED]"
	}
	return s
}

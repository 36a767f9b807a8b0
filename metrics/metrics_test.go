package metrics

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

var update = flag.Bool("update", false, "rewrite the golden exposition files under testdata/")

// asCollector makes one of the package's collectors a prometheus.Collector,
// without the scrape meta families, so that it can be compared alone.
type asCollector struct{ c collector }

func (a asCollector) Describe(ch chan<- *prometheus.Desc) { a.c.describe(ch) }

func (a asCollector) Collect(ch chan<- prometheus.Metric) {
	if err := a.c.update(ch); err != nil {
		panic(err)
	}
}

// compareGolden compares what c exposes with testdata/<name>.prom, or
// rewrites that file under -update.
func compareGolden(t *testing.T, c prometheus.Collector, name string) {
	t.Helper()
	path := filepath.Join("testdata", name+".prom")
	if *update {
		got, err := formatText(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if err := testutil.CollectAndCompare(c, bytes.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// formatText is the text exposition of every family c collects.
// (testutil.CollectAndFormat without metric names formats nothing.)
func formatText(c prometheus.Collector) ([]byte, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

func TestCollectorsExposeTheirSources(t *testing.T) {
	tests := []struct {
		name string
		c    collector
	}{
		{"engine", newEngineCollector(testEngine)},
		{"flows", newFlowCollector(testFlows)},
		{"queue", newQueueCollector(testQueues)},
		{"kernel", newKernelCollector(testKernel)},
		{"recent", newRecentCollector(testRecent)},
		{"guard", newGuardCollector(testGuards)},
		{"bans", newBanCollector(testBans)},
		{"state", newStateCollector(testState)},
		{"knock", newKnockCollector(testKnock)},
		{"ftp", newFTPCollector(testFTP)},
		{"ha", newHACollector(testHA)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			compareGolden(t, asCollector{tt.c}, tt.name)
		})
	}
}

// dupEngine reports the same label sets twice, as two flow tables or a rule
// named like a chain policy could.
type dupEngine struct{ fakeEngine }

func (dupEngine) RuleCounts(fn func(RuleCount)) {
	fn(RuleCount{Chain: "input", Rule: "ssh", Action: "accept", Packets: 1})
	fn(RuleCount{Chain: "input", Rule: "ssh", Action: "accept", Packets: 2})
}

func (dupEngine) NewFlowCounts(fn func(string, uint64)) {
	fn("tcp", 5)
	fn("tcp", 6)
}

func TestSamplesWithEqualLabelsAreSummed(t *testing.T) {
	const want = `
# HELP nfqfw_packets_total Packets decided per rule and action; rule is "" for the chain's default policy.
# TYPE nfqfw_packets_total counter
nfqfw_packets_total{action="accept",chain="input",rule="ssh"} 3
# HELP nfqfw_flows_new_total Flows admitted into the flow table per protocol.
# TYPE nfqfw_flows_new_total counter
nfqfw_flows_new_total{proto="tcp"} 11
`
	m := New(Options{Engine: dupEngine{}, NoRuntime: true})
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"nfqfw_packets_total", "nfqfw_flows_new_total"); err != nil {
		t.Error(err)
	}
}

type panickyFlows struct{ fakeFlows }

func (panickyFlows) FlowStats() FlowStats { panic("flow table bug") }

func TestFailingCollectorCostsOnlyItsOwnFamilies(t *testing.T) {
	m := New(Options{
		Engine:    testEngine,
		Flows:     panickyFlows{testFlows},
		Kernel:    func() ([]ProcQueue, error) { return nil, errors.New("permission denied") },
		NoRuntime: true,
	})
	const want = `
# HELP nfqfw_scrape_collector_success Whether a collector read its source without error during this scrape (1) or not (0).
# TYPE nfqfw_scrape_collector_success gauge
nfqfw_scrape_collector_success{collector="engine"} 1
nfqfw_scrape_collector_success{collector="flows"} 0
nfqfw_scrape_collector_success{collector="kernel"} 0
# HELP nfqfw_log_lines_total Packet log lines written.
# TYPE nfqfw_log_lines_total counter
nfqfw_log_lines_total 950
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"nfqfw_scrape_collector_success", "nfqfw_log_lines_total", "nfqfw_kernel_queue_length"); err != nil {
		t.Error(err)
	}
	n, err := testutil.GatherAndCount(m.Registry(), "nfqfw_scrape_collector_duration_seconds")
	if err != nil || n != 3 {
		t.Errorf("scrape duration samples = %d, %v; want 3, nil", n, err)
	}
}

func TestNilSourcesLeaveTheirFamiliesOut(t *testing.T) {
	m := New(Options{NoRuntime: true})
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	// The latency histogram has no queue yet, and no config is loaded.
	want := []string{
		"nfqfw_build_info",
		"nfqfw_config_reloads_total",
		"promhttp_metric_handler_errors_total",
		"promhttp_metric_handler_requests_in_flight",
		"promhttp_metric_handler_requests_total",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("families (-want +got):\n%s", diff)
	}
}

func TestConfigReloads(t *testing.T) {
	start := time.Unix(1700000000, 0)
	m := New(Options{ConfigHash: "3f2a9c", ConfigLoaded: start, NoRuntime: true})
	names := []string{
		"nfqfw_config_reloads_total", "nfqfw_config_info",
		"nfqfw_config_last_reload_timestamp_seconds", "nfqfw_config_last_reload_success",
	}
	expo := func(reloadsOK, reloadsFailed int, hash string, at time.Time, ok int) string {
		return fmt.Sprintf(`
# HELP nfqfw_config_reloads_total Config reloads attempted, per result (success, failure).
# TYPE nfqfw_config_reloads_total counter
nfqfw_config_reloads_total{result="failure"} %d
nfqfw_config_reloads_total{result="success"} %d
# HELP nfqfw_config_info Always 1; the hash label names the config in force and changes on each successful reload that changes the config.
# TYPE nfqfw_config_info gauge
nfqfw_config_info{hash=%q} 1
# HELP nfqfw_config_last_reload_timestamp_seconds Unix time of the last config load or reload attempt.
# TYPE nfqfw_config_last_reload_timestamp_seconds gauge
nfqfw_config_last_reload_timestamp_seconds %d
# HELP nfqfw_config_last_reload_success Whether the last config load or reload attempt succeeded (1) or left the previous config in force (0).
# TYPE nfqfw_config_last_reload_success gauge
nfqfw_config_last_reload_success %d
`, reloadsFailed, reloadsOK, hash, at.Unix(), ok)
	}
	steps := []struct {
		name   string
		reload func()
		want   string
	}{
		{"loaded at start, no reload counted", func() {}, expo(0, 0, "3f2a9c", start, 1)},
		{"successful reload swaps the hash", func() {
			m.ReloadObserved(ReloadSuccess, "77b01e", start.Add(time.Minute))
		}, expo(1, 0, "77b01e", start.Add(time.Minute), 1)},
		{"failed reload keeps the running config's hash", func() {
			m.ReloadObserved(ReloadFailure, "ignored", start.Add(2*time.Minute))
		}, expo(1, 1, "77b01e", start.Add(2*time.Minute), 0)},
		{"unknown result counts as failure", func() {
			m.ReloadObserved("bogus", "ignored", start.Add(3*time.Minute))
		}, expo(1, 2, "77b01e", start.Add(3*time.Minute), 0)},
	}
	for _, st := range steps {
		st.reload()
		if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(st.want), names...); err != nil {
			t.Errorf("%s: %v", st.name, err)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	want := fmt.Sprintf(`
# HELP nfqfw_build_info Always 1; labelled with nfqfw's version and the Go version that built it.
# TYPE nfqfw_build_info gauge
nfqfw_build_info{goversion=%q,version="v1.2.3"} 1
`, runtime.Version())
	m := New(Options{Version: "v1.2.3", NoRuntime: true})
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "nfqfw_build_info"); err != nil {
		t.Error(err)
	}
}

func TestLatencyHistogram(t *testing.T) {
	m := New(Options{NoRuntime: true})
	o := m.LatencyObserver(0)
	// Powers of two, so that the sum is exact: about 3.8µs, 30.5µs twice,
	// 122µs and 250ms.
	for _, s := range []float64{0x1p-18, 0x1p-15, 0x1p-15, 0x1p-13, 0.25} {
		o.Observe(s)
	}
	const want = `
# HELP nfqfw_verdict_latency_seconds Time from receiving a packet from the queue to issuing its verdict.
# TYPE nfqfw_verdict_latency_seconds histogram
nfqfw_verdict_latency_seconds_bucket{queue="0",le="5e-06"} 1
nfqfw_verdict_latency_seconds_bucket{queue="0",le="1e-05"} 1
nfqfw_verdict_latency_seconds_bucket{queue="0",le="2.5e-05"} 1
nfqfw_verdict_latency_seconds_bucket{queue="0",le="5e-05"} 3
nfqfw_verdict_latency_seconds_bucket{queue="0",le="0.0001"} 3
nfqfw_verdict_latency_seconds_bucket{queue="0",le="0.00025"} 4
nfqfw_verdict_latency_seconds_bucket{queue="0",le="0.0005"} 4
nfqfw_verdict_latency_seconds_bucket{queue="0",le="0.001"} 4
nfqfw_verdict_latency_seconds_bucket{queue="0",le="0.0025"} 4
nfqfw_verdict_latency_seconds_bucket{queue="0",le="0.005"} 4
nfqfw_verdict_latency_seconds_bucket{queue="0",le="0.01"} 4
nfqfw_verdict_latency_seconds_bucket{queue="0",le="0.025"} 4
nfqfw_verdict_latency_seconds_bucket{queue="0",le="0.05"} 4
nfqfw_verdict_latency_seconds_bucket{queue="0",le="+Inf"} 5
nfqfw_verdict_latency_seconds_sum{queue="0"} 0.250186920166015625
nfqfw_verdict_latency_seconds_count{queue="0"} 5
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "nfqfw_verdict_latency_seconds"); err != nil {
		t.Error(err)
	}
}

func TestLatencyObserveDoesNotAllocate(t *testing.T) {
	m := New(Options{NoRuntime: true})
	o := m.LatencyObserver(3)
	if n := testing.AllocsPerRun(1000, func() { o.Observe(42e-6) }); n != 0 {
		t.Errorf("Observe allocates %v times per call, want 0", n)
	}
}

func BenchmarkLatencyObserve(b *testing.B) {
	m := New(Options{NoRuntime: true})
	o := m.LatencyObserver(0)
	b.ReportAllocs()
	for b.Loop() {
		o.Observe(42e-6)
	}
}

func BenchmarkLatencyObserveParallel(b *testing.B) {
	m := New(Options{NoRuntime: true})
	o := m.LatencyObserver(0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			o.Observe(42e-6)
		}
	})
}

func BenchmarkScrape(b *testing.B) {
	m := New(testOptions())
	m.LatencyObserver(0).Observe(1e-4)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Registry().Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// fullMetrics is an exporter with every source, a latency sample and a
// loaded config: every family it can expose is present.
func fullMetrics() *Metrics {
	o := testOptions()
	o.ConfigHash = "3f2a9c"
	o.ConfigLoaded = time.Unix(1700000000, 0)
	m := New(o)
	m.LatencyObserver(0).Observe(80e-6)
	m.LatencyObserver(1).Observe(120e-6)
	m.ReloadObserved(ReloadSuccess, "77b01e", time.Unix(1700000060, 0))
	return m
}

func TestRegistryPassesLint(t *testing.T) {
	problems, err := testutil.GatherAndLint(fullMetrics().Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestAllFamiliesCarryThePrefix(t *testing.T) {
	mfs, err := fullMetrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, p := range []string{"nfqfw_", "go_", "process_", "promhttp_"} {
			if strings.HasPrefix(name, p) {
				name = ""
			}
		}
		if name != "" {
			t.Errorf("family %s has no nfqfw_ prefix", mf.GetName())
		}
	}
}

// lookPromtool returns the path of promtool. Without it the test is
// skipped, or fails under CI (CI=true), which must run it.
func lookPromtool(t *testing.T) string {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found (Debian package prometheus): %v", err)
		}
		t.Skipf("promtool not found (install the Debian package prometheus): %v", err)
	}
	return promtool
}

func TestPromtoolChecksScrape(t *testing.T) {
	promtool := lookPromtool(t)
	srv := httptest.NewServer(fullMetrics().Handler())
	defer srv.Close()
	// Two scrapes: the second also carries the handler's own counters.
	body := get(t, srv.URL)
	body = get(t, srv.URL)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return body
}

func TestServe(t *testing.T) {
	m := New(Options{Version: "v1.2.3", Engine: testEngine, NoRuntime: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.ServeListener(ctx, ln) }()

	body := get(t, "http://"+ln.Addr().String()+MetricsPath)
	for _, want := range []string{`nfqfw_build_info{`, `nfqfw_packets_total{action="accept",chain="input",rule="ssh"} 120`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("scrape lacks %q", want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeListener after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeListener did not return after its context ended")
	}
}

func TestServeRefusesBadAddresses(t *testing.T) {
	m := New(Options{NoRuntime: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Serve(ctx, ""); !errors.Is(err, ErrDisabled) {
		t.Errorf("Serve(\"\") = %v, want ErrDisabled", err)
	}
	if err := m.Serve(ctx, "127.0.0.1:99999"); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Serve(bad port) = %v, want a listen error", err)
	}
}

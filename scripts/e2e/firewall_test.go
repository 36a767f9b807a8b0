package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// Roles of the sandbox namespaces: the client reaches the protected host
// through the gateway, which only routes.
const (
	clientRole = "cli"
	hostRole   = "srv"
)

// metricsAddr is where the exporter listens: the host namespace's own
// loopback. Every namespace has its own, so one port serves every test.
const metricsAddr = "127.0.0.1:9469"

// pprofEnv, when set in the environment (to a directory), makes every
// daemon serve net/http/pprof on pprofAddr in its namespace, and the
// benchmarks that profile a daemon write its CPU profiles there.
const (
	pprofEnv  = "NFQFW_E2E_PPROF"
	pprofAddr = "127.0.0.1:6060"
)

// Bounds of the waits around the daemon.
const (
	readyTimeout = 10 * time.Second // from start until `nfqfw state` answers
	stopTimeout  = 10 * time.Second // from SIGTERM until the exit
	cliTimeout   = 15 * time.Second // one nfqfw client command
)

// firewall is `nfqfw run` in a sandbox namespace, started by a test and
// stopped by PID.
type firewall struct {
	t      testing.TB
	ns     *sandbox.Netns
	config string // path of the rendered config
	socket string // its control socket
	proc   *sandbox.Proc
}

// runtimeSection is appended to every config: this daemon's own control
// socket, state directory and metrics address, so parallel tests share
// nothing.
var runtimeSection = template.Must(template.New("runtime").Parse(`
# Added by the e2e test: this daemon's own socket, state and metrics.
control: {socket: {{.Socket}}}
state: {dir: {{.StateDir}}}
metrics: {listen: "{{.Metrics}}"}
`))

// exampleConfig returns the shipped example rules/examples/name rendered for
// sb: the reference sandbox's host interface veth-sg becomes the host's real
// link. Nothing else is changed.
func exampleConfig(t *testing.T, sb *sandbox.Sandbox, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "rules", "examples", name))
	if err != nil {
		t.Fatalf("read example config: %v", err)
	}
	return strings.ReplaceAll(string(b), "veth-sg", sb.Link(hostRole))
}

// startFirewall writes config plus the runtime section to a temporary
// directory and starts `nfqfw run` with it in ns. It returns once the
// daemon answers on its control socket, which it opens only after its
// chains are installed. At cleanup a still running daemon is stopped with
// SIGTERM and its chains must be gone.
func startFirewall(t testing.TB, ns *sandbox.Netns, config string) *firewall {
	t.Helper()
	dir := tempDir(t)
	fw := &firewall{t: t, ns: ns, config: filepath.Join(dir, "nfqfw.yaml"), socket: filepath.Join(dir, "nfqfw.sock")}
	var b bytes.Buffer
	b.WriteString(config)
	err := runtimeSection.Execute(&b, map[string]string{
		"Socket": fw.socket, "StateDir": filepath.Join(dir, "state"), "Metrics": metricsAddr,
	})
	if err != nil {
		t.Fatalf("render config: %v", err)
	}
	if err := os.WriteFile(fw.config, b.Bytes(), 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
	t.Cleanup(func() {
		if fw.running() {
			fw.stop()
		}
		if t.Failed() {
			t.Logf("nfqfw output:\n%s", fw.proc.Output())
		}
	})
	fw.start()
	return fw
}

// start starts the daemon with its config and waits until it is ready.
func (fw *firewall) start() {
	fw.t.Helper()
	fw.startWith(fw.t)
}

// startWith starts the daemon with extra `nfqfw run` flags and waits until
// it is ready; t is the test that fails when it is not.
func (fw *firewall) startWith(t testing.TB, flags ...string) {
	t.Helper()
	if os.Getenv(pprofEnv) != "" {
		flags = append(flags, "--pprof", pprofAddr) // each daemon on its own namespace's loopback
	}
	fw.proc = fw.ns.Start(append([]string{nfqfwBin, "run", "-c", fw.config}, flags...)...)
	deadline := time.Now().Add(readyTimeout)
	for {
		_, err := fw.cli("state", "--limit", "1")
		if err == nil {
			return
		}
		if werr := fw.proc.Wait(10 * time.Millisecond); werr != sandbox.ErrStillRunning {
			t.Fatalf("nfqfw run %v exited before it was ready: %v\n%s", flags, werr, fw.proc.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("nfqfw run %v not ready after %v: %v\n%s", flags, readyTimeout, err, fw.proc.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (fw *firewall) running() bool {
	// A short wait, not 0: Wait must see an exited process as exited.
	return fw.proc != nil && fw.proc.Wait(10*time.Millisecond) == sandbox.ErrStillRunning
}

// cli runs an nfqfw client command against this daemon's control socket.
func (fw *firewall) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, nfqfwBin, append(args, "-s", fw.socket)...).CombinedOutput()
	return string(out), err
}

// mustCLI is cli that fails t unless the command succeeds.
func (fw *firewall) mustCLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := fw.cli(args...)
	if err != nil {
		t.Fatalf("nfqfw %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// cliJSON runs an nfqfw client command whose args ask for JSON and
// decodes what it prints; a failure of either fails t.
func cliJSON[T any](t testing.TB, fw *firewall, args ...string) T {
	t.Helper()
	out := fw.mustCLI(t, args...)
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("nfqfw %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return v
}

// state returns the daemon's flow table as `nfqfw state --json` prints it.
func (fw *firewall) state() control.StateResponse {
	fw.t.Helper()
	return cliJSON[control.StateResponse](fw.t, fw, "state", "--json")
}

// reload runs `nfqfw reload` and fails the test unless it succeeds.
func (fw *firewall) reload() {
	fw.t.Helper()
	fw.mustCLI(fw.t, "reload")
}

// metrics scrapes the daemon's /metrics from inside its namespace.
func (fw *firewall) metrics() string {
	fw.t.Helper()
	resp, err := fw.ns.HTTPClient().Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		fw.t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		fw.t.Fatalf("scrape metrics: %s: %v", resp.Status, err)
	}
	return string(b)
}

// stop sends SIGTERM by PID, expects a clean exit within stopTimeout, and
// checks that no NFQFW chain or jump is left in the namespace.
func (fw *firewall) stop() {
	fw.t.Helper()
	if err := fw.proc.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		fw.t.Fatalf("SIGTERM nfqfw: %v", err)
	}
	if err := fw.proc.Wait(stopTimeout); err != nil {
		fw.t.Fatalf("nfqfw after SIGTERM: %v\n%s", err, fw.proc.Output())
	}
	if left := nfqfwRules(fw.t, fw.ns); len(left) > 0 {
		fw.t.Errorf("NFQFW rules left after SIGTERM:\n%s", strings.Join(left, "\n"))
	}
}

// kill sends SIGKILL by PID, as a crash would, and waits for the exit.
func (fw *firewall) kill() {
	fw.t.Helper()
	if err := fw.proc.Cmd.Process.Kill(); err != nil {
		fw.t.Fatalf("SIGKILL nfqfw: %v", err)
	}
	if err := fw.proc.Wait(stopTimeout); err == sandbox.ErrStillRunning {
		fw.t.Fatalf("nfqfw still running %v after SIGKILL", stopTimeout)
	}
}

// saveCommands dump the rulesets of both iptables backends and both
// families: whichever backend the daemon chose, a leftover is found.
var saveCommands = []string{"iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save"}

// nfqfwRules returns every line of ns's rulesets that mentions NFQFW,
// prefixed by the save command that printed it and the table.
func nfqfwRules(t testing.TB, ns *sandbox.Netns) []string {
	t.Helper()
	var lines []string
	for _, cmd := range saveCommands {
		if _, err := exec.LookPath(cmd); err != nil {
			continue
		}
		out, err := ns.Exec(cmd)
		if err != nil {
			t.Fatalf("%s: %v: %s", cmd, err, out)
		}
		table := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "*") {
				table = l[1:]
			}
			if strings.Contains(l, "NFQFW") {
				lines = append(lines, cmd+" "+table+": "+l)
			}
		}
	}
	return lines
}

// kernelPackets sums, over both families and backends, the packet
// counters of ns's rules in chain whose comment contains comment.
func kernelPackets(t *testing.T, ns *sandbox.Netns, chain, comment string) float64 {
	t.Helper()
	re := regexp.MustCompile(`^\[(\d+):\d+\] -A ` + regexp.QuoteMeta(chain) + ` .*` + regexp.QuoteMeta(comment))
	var sum float64
	for _, cmd := range saveCommands {
		if _, err := exec.LookPath(cmd); err != nil {
			continue
		}
		out, err := ns.Exec(cmd, "-c")
		if err != nil {
			t.Fatalf("%s -c: %v: %s", cmd, err, out)
		}
		for _, l := range strings.Split(out, "\n") {
			if m := re.FindStringSubmatch(l); m != nil {
				n, _ := strconv.ParseFloat(m[1], 64)
				sum += n
			}
		}
	}
	return sum
}

// metricValue returns the value of one series of a Prometheus text
// exposition, named exactly as exposed (labels in alphabetical order), or
// -1 when the series is absent.
func metricValue(exposition, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(exposition)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// checkMetrics fails t for every series of atLeast whose value is below
// its minimum (or absent).
func checkMetrics(t *testing.T, exposition string, atLeast map[string]float64) {
	t.Helper()
	for series, min := range atLeast {
		if got := metricValue(exposition, series); got < min {
			t.Errorf("metric %s = %v, want at least %v", series, got, min)
		}
	}
	if t.Failed() {
		var b strings.Builder
		for _, l := range strings.Split(exposition, "\n") {
			if strings.HasPrefix(l, "nfqfw_packets_total") || strings.HasPrefix(l, "nfqfw_verdicts_total") {
				fmt.Fprintln(&b, l)
			}
		}
		t.Logf("verdict counters:\n%s", b.String())
	}
}

// tempDir is a short-named temporary directory (a unix socket path must
// stay under 108 bytes, which t.TempDir's long names can exceed).
func tempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nfqfw-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

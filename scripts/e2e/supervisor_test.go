package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/engine/guard"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// rejectedPort has an echo server on the host that the server example's
// policy rejects (closed-tcp: tcp-reset): a probe that connects to it found
// the host open.
const rejectedPort = 9999

// probeEvery is the probe period of an openness measurement.
const probeEvery = 100 * time.Millisecond

// openProbe dials the rejected port every probeEvery and counts the dials
// that got through: leaks × probeEvery estimates how long the host was open.
type openProbe struct {
	stop          chan struct{}
	done          chan struct{}
	probes, leaks atomic.Int64
	first, last   atomic.Int64 // unix nanoseconds of the first and last leak
}

// startOpenProbe starts probing dst from ns. It probes for at most 5
// minutes; finish stops it.
func startOpenProbe(ns *sandbox.Netns, dst netip.AddrPort) *openProbe {
	p := &openProbe{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); {
			at := time.Now().UnixNano()
			p.probes.Add(1)
			if dialTCPWithin(ns, dst, probeEvery-10*time.Millisecond) == connected {
				p.leaks.Add(1)
				p.first.CompareAndSwap(0, at)
				p.last.Store(at)
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// finish stops the probe and returns its counts and the span from the
// first to the last leak.
func (p *openProbe) finish() (probes, leaks int64, span time.Duration) {
	close(p.stop)
	<-p.done
	if p.leaks.Load() > 0 {
		span = time.Duration(p.last.Load()-p.first.Load()) + probeEvery
	}
	return p.probes.Load(), p.leaks.Load(), span
}

// supervisorLab is the server example on the host with an echo server on
// the rejected port, probed from the client.
type supervisorLab struct {
	sb        *sandbox.Sandbox
	cli, host *sandbox.Netns
	rejected  netip.AddrPort
}

func newSupervisorLab(t *testing.T) *supervisorLab {
	t.Helper()
	requireSandbox(t)
	sb := sandbox.New(t, sandbox.Options{})
	l := &supervisorLab{sb: sb, cli: sb.NS(clientRole), host: sb.NS(hostRole)}
	l.rejected = netip.AddrPortFrom(sb.Addr4(hostRole), rejectedPort)
	serveTCP(t, l.host, rejectedPort, 22)
	return l
}

// guardSection gives the config ban sets (a guard with bans): the kernel
// ruleset then refers to nfqfw-bannet4/6.
const guardSection = `
guards:
  - name: probe-guard
    limits: [{count: 1000, window: 1s}]
    ban: {duration: 1h}
`

// startRun starts `nfqfw run -c path` in ns and returns the process; the
// caller waits for it.
func startRun(ns *sandbox.Netns, path string) *sandbox.Proc {
	return ns.Start(nfqfwBin, "run", "-c", path)
}

// exitCode waits for p's exit and returns its status.
func exitCode(t *testing.T, p *sandbox.Proc) int {
	t.Helper()
	if err := p.Wait(stopTimeout); err == sandbox.ErrStillRunning {
		p.Cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, in the output
		p.Wait(2 * time.Second)
		t.Fatalf("nfqfw still running %v later:\n%s", stopTimeout, p.Output())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// writeRuntimeConfig writes config with its own socket, state directory
// and metrics address under a new temporary directory, and returns the
// file's path.
func writeRuntimeConfig(t *testing.T, config, metrics string) string {
	t.Helper()
	dir := tempDir(t)
	path := filepath.Join(dir, "nfqfw.yaml")
	text := config + fmt.Sprintf("\ncontrol: {socket: %s}\nstate: {dir: %s}\nmetrics: {listen: %q}\n",
		filepath.Join(dir, "nfqfw.sock"), filepath.Join(dir, "state"), metrics)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSupervisor(t *testing.T) {
	t.Run("a taken metrics port refuses the start with nothing installed", func(t *testing.T) {
		l := newSupervisorLab(t)
		t.Parallel()
		var ln net.Listener
		if err := l.host.Do(func() (err error) { ln, err = net.Listen("tcp", metricsAddr); return err }); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		p := startRun(l.host, writeRuntimeConfig(t, exampleConfig(t, l.sb, "server.yaml"), metricsAddr))
		if code := exitCode(t, p); code == 0 {
			t.Errorf("nfqfw run exited 0 with its metrics port taken")
		}
		t.Logf("output: %s", strings.TrimSpace(p.Output()))
		if !strings.Contains(p.Output(), "metrics.listen") || !strings.Contains(p.Output(), "nothing was installed") {
			t.Errorf("the error does not name metrics.listen and say nothing was installed:\n%s", p.Output())
		}
		if left := nfqfwRules(t, l.host); len(left) > 0 {
			t.Errorf("NFQFW rules after a refused start:\n%s", strings.Join(left, "\n"))
		}
	})

	t.Run("a second instance refuses and leaves the first alone", func(t *testing.T) {
		l := newSupervisorLab(t)
		t.Parallel()
		fw := startFirewall(t, l.host, exampleConfig(t, l.sb, "server.yaml")+guardSection)
		before := nfqfwRules(t, l.host)
		probe := startOpenProbe(l.cli, l.rejected)
		// Another queue, socket, state directory and metrics port: only
		// the namespace is shared, and that is enough to refuse.
		p := startRun(l.host, writeRuntimeConfig(t, exampleConfig(t, l.sb, "server.yaml")+"\nqueue: {number: 7}\n", "127.0.0.1:9470"))
		if code := exitCode(t, p); code == 0 {
			t.Errorf("second nfqfw run exited 0")
		}
		time.Sleep(time.Second)
		probes, leaks, _ := probe.finish()
		t.Logf("second instance: %s; %d of %d probes got through", strings.TrimSpace(p.Output()), leaks, probes)
		if !strings.Contains(p.Output(), "another nfqfw is running") {
			t.Errorf("the second instance does not say another one runs:\n%s", p.Output())
		}
		if leaks > 0 {
			t.Errorf("%d probes got through while a second instance started", leaks)
		}
		if diff := cmp.Diff(before, nfqfwRules(t, l.host)); diff != "" {
			t.Errorf("the second instance changed the first one's rules (-before +after):\n%s", diff)
		}
		if out, err := fw.cli("health"); err != nil {
			t.Errorf("first instance not healthy after the second one's attempt: %v: %s", err, out)
		}
		fw.reload() // its ban sets are still there
	})

	t.Run("a flushed or replaced ruleset is put back", func(t *testing.T) {
		l := newSupervisorLab(t)
		t.Parallel()
		fw := startFirewall(t, l.host, exampleConfig(t, l.sb, "server.yaml")+guardSection)
		installed := nfqfwRules(t, l.host)
		damages := []struct {
			name   string
			cmds   [][]string
			reason string
		}{
			{"iptables -F; iptables -X", [][]string{{"sh", "-c", "iptables -F; iptables -X"}}, "chains"},
			{"iptables-restore without --noflush", [][]string{{"sh", "-c",
				`printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' | iptables-restore`}}, "chains"},
			{"iptables -F; iptables -X; ipset destroy", [][]string{{"sh", "-c", "iptables -F; iptables -X; ipset destroy nfqfw-bannet4"}}, "sets"},
		}
		for _, dm := range damages {
			t.Run(dm.name, func(t *testing.T) {
				reinstalls := metricValue(fw.metrics(), `nfqfw_ruleset_reinstalls_total{reason="`+dm.reason+`"}`)
				probe := startOpenProbe(l.cli, l.rejected)
				time.Sleep(300 * time.Millisecond)
				// One shell runs the commands back to back, as a firewall
				// manager would; should nfqfw repair between two of them,
				// the later ones may fail (a chain in use): logged only.
				for _, c := range dm.cmds {
					if out, err := l.host.Exec(c...); err != nil {
						t.Logf("%v: %v: %s", c, err, out)
					}
				}
				back, ok := waitFor(10*time.Second, func() bool { return cmp.Equal(installed, nfqfwRules(t, l.host)) })
				time.Sleep(time.Second)
				probes, leaks, span := probe.finish()
				t.Logf("%s: ruleset back after %v; %d of %d probes (every %v) got through, open about %v",
					dm.name, back.Round(10*time.Millisecond), leaks, probes, probeEvery, span)
				if !ok {
					t.Fatalf("ruleset not put back within 10 s:\n%s", strings.Join(nfqfwRules(t, l.host), "\n"))
				}
				if got := metricValue(fw.metrics(), `nfqfw_ruleset_reinstalls_total{reason="`+dm.reason+`"}`); got != reinstalls+1 {
					t.Errorf("nfqfw_ruleset_reinstalls_total{reason=%q} = %v, want %v", dm.reason, got, reinstalls+1)
				}
				if !strings.Contains(fw.proc.Output(), "kernel ruleset was changed by another tool: reinstalled") {
					t.Errorf("no warning logged for the repair:\n%s", fw.proc.Output())
				}
				if out, err := fw.cli("health"); err != nil {
					t.Errorf("health after the repair: %v: %s", err, out)
				}
				expectDial(t, l.cli, l.rejected, refused, "the rejected port after the repair")
			})
		}
		fw.reload() // the ban sets it refers to exist again
	})

	t.Run("a restart keeps the host closed, even with a large state", func(t *testing.T) {
		l := newSupervisorLab(t)
		t.Parallel()
		fw := startFirewall(t, l.host, exampleConfig(t, l.sb, "server.yaml")+guardSection)
		stateFile := filepath.Join(filepath.Dir(fw.config), "state", "state.json")

		restart := func(how string, exit func() int, wantCode int) {
			probe := startOpenProbe(l.cli, l.rejected)
			time.Sleep(300 * time.Millisecond)
			start := time.Now()
			if code := exit(); code != wantCode {
				t.Errorf("%s: exit status %d, want %d:\n%s", how, code, wantCode, fw.proc.Output())
			}
			writeLargeState(t, stateFile, 50000)
			fw.start()
			ready := time.Since(start)
			time.Sleep(time.Second)
			probes, leaks, span := probe.finish()
			t.Logf("%s with 50000 bans in the state: ready again after %v; %d of %d probes (every %v) got through, open about %v",
				how, ready.Round(10*time.Millisecond), leaks, probes, probeEvery, span)
			if how == "nfqfw restart" && leaks > 0 {
				t.Errorf("%s: %d probes got through", how, leaks)
			}
			// The engine drops banned sources itself from the start; the
			// kernel set, their fast path, is filled in the background.
			filled, ok := waitFor(2*time.Minute, func() bool { return len(banSet(t, l.host, "nfqfw-bannet4")) >= 50000 })
			t.Logf("%s: nfqfw-bannet4 held the 50000 restored bans %v after ready (ok %v)", how, filled.Round(100*time.Millisecond), ok)
			if !ok {
				t.Errorf("%s: the 50000 restored bans are not all in nfqfw-bannet4", how)
			}
			for _, line := range strings.Split(fw.proc.Output(), "\n") {
				if !strings.Contains(line, "msg=banned") {
					t.Logf("  %s", line)
				}
			}
		}
		restart("nfqfw restart", func() int {
			if out, err := fw.cli("restart"); err != nil {
				t.Fatalf("nfqfw restart: %v: %s", err, out)
			}
			return exitCode(t, fw.proc)
		}, 75)
		// For comparison: an explicit stop removes the ruleset, so a
		// stop and start ("systemctl restart") leaves the gap between.
		restart("SIGTERM then start", func() int {
			fw.proc.Cmd.Process.Signal(syscall.SIGTERM)
			return exitCode(t, fw.proc)
		}, 0)
	})

	t.Run("SIGHUP while starting is queued, not fatal", func(t *testing.T) {
		l := newSupervisorLab(t)
		t.Parallel()
		fw := startFirewall(t, l.host, exampleConfig(t, l.sb, "server.yaml"))
		fw.stop()
		fw.proc = startRun(l.host, fw.config)
		// The process is "ip netns exec" until it execs nfqfw: signal it
		// as soon as it is nfqfw, long before its ruleset is installed.
		exe := fmt.Sprintf("/proc/%d/exe", fw.proc.PID())
		want, _ := filepath.Abs(nfqfwBin)
		if _, ok := waitFor(5*time.Second, func() bool { p, _ := os.Readlink(exe); return p == want }); !ok {
			t.Fatalf("process %d never became %s", fw.proc.PID(), want)
		}
		// The Go runtime's own start (a few ms) is the only window left.
		time.Sleep(20 * time.Millisecond)
		installed := len(nfqfwRules(t, l.host)) > 0
		if err := fw.proc.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if _, ok := waitFor(readyTimeout, func() bool { _, err := fw.cli("health"); return err == nil || !fw.running() }); !ok || !fw.running() {
			t.Fatalf("nfqfw not running after an early SIGHUP:\n%s", fw.proc.Output())
		}
		if _, ok := waitFor(5*time.Second, func() bool { return strings.Contains(fw.proc.Output(), "config reloaded") }); !ok {
			t.Errorf("the early SIGHUP was not handled as a reload:\n%s", fw.proc.Output())
		}
		t.Logf("SIGHUP sent %s the ruleset was installed; nfqfw reloaded once running", map[bool]string{false: "before", true: "after"}[installed])
	})

	t.Run("reload applies log format, refuses restart-only fields loudly", func(t *testing.T) {
		l := newSupervisorLab(t)
		t.Parallel()
		base := exampleConfig(t, l.sb, "server.yaml")
		fw := startFirewall(t, l.host, base)
		relWriteConfig(t, fw, base+"\nlog: {format: json}\n")
		fw.reload()
		relWriteConfig(t, fw, base+"\nlog: {format: json}\nqueue: {number: 9, batch: 8}\n")
		code, out := relExitCode(t, fw, "reload")
		if code == 0 || !strings.Contains(out, "queue.number, queue.batch changed and needs a restart") {
			t.Errorf("reload changing queue.number and queue.batch: exit %d: %s", code, out)
		}
		code, out = relExitCode(t, fw, "health")
		if code != 0 || !strings.Contains(out, "warning: config file on disk") {
			t.Errorf("health after a refused reload: exit %d, want 0 with a warning that the file on disk differs: %s", code, out)
		}
		if v := metricValue(fw.metrics(), "nfqfw_config_file_differs"); v != 1 {
			t.Errorf("nfqfw_config_file_differs = %v after a refused reload, want 1", v)
		}
		lines := strings.Split(strings.TrimSpace(fw.proc.Output()), "\n")
		last := lines[len(lines)-1]
		var m map[string]any
		if err := json.Unmarshal([]byte(last), &m); err != nil || m["level"] != "WARN" {
			t.Errorf("after a reload to log.format json, the refusal is not a JSON warning: %v: %s", err, last)
		}
	})
}

// writeLargeState writes a state file holding n bans (10.200.0.0/16 and
// on), each with an hour left.
func writeLargeState(t *testing.T, path string, n int) {
	t.Helper()
	now := time.Now()
	bans := make([]guard.BanSnapshot, n)
	base := netip.MustParseAddr("10.200.0.0").As4()
	for i := range bans {
		a := base
		a[1] += byte(i >> 16)
		a[2], a[3] = byte(i>>8), byte(i)
		bans[i] = guard.BanSnapshot{Addr: netip.AddrFrom4(a), Source: "manual", Reason: "e2e", Since: now,
			Until: now.Add(time.Hour), Offences: 1, LastOffence: now, Forget: now.Add(2 * time.Hour)}
	}
	// The state file's envelope (cmd/nfqfw/internal/store), version 1.
	b, err := json.Marshal(map[string]any{"version": 1, "saved_at": now.UTC(),
		"data": map[string]any{"bans": bans, "knock": map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

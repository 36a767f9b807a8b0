package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// unitName is the shipped unit's name: ExecStopPost's %n.
const unitName = "nfqfw.service"

// shippedUnit is what a stop or restart of scripts/systemd/nfqfw.service
// does to the daemon: the signal systemd sends and the commands it runs
// after the daemon exited and before it starts again.
type shippedUnit struct {
	killSignal syscall.Signal
	stopPost   [][]string // ExecStopPost argv, nfqfw as the first word
	startPre   [][]string
}

// readShippedUnit reads the unit's KillSignal= and its ExecStopPost= and
// ExecStartPre= lines. ${NFQFW_CONFIG} becomes config and %n the unit's
// name.
func readShippedUnit(t *testing.T, config string) shippedUnit {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "systemd", unitName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := shippedUnit{killSignal: syscall.SIGTERM} // systemd's default
	argv := func(v string) []string {
		w := strings.Fields(strings.TrimLeft(v, "-+@!:"))
		for i := range w {
			w[i] = strings.NewReplacer("${NFQFW_CONFIG}", config, "%n", unitName).Replace(w[i])
		}
		return w
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		switch k {
		case "KillSignal":
			u.killSignal = map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "SIGUSR2": syscall.SIGUSR2}[v]
		case "ExecStopPost":
			u.stopPost = append(u.stopPost, argv(v))
		case "ExecStartPre":
			u.startPre = append(u.startPre, argv(v))
		}
	}
	if err := sc.Err(); err != nil || u.killSignal == 0 {
		t.Fatalf("read %s: KillSignal not one the test knows, or %v", unitName, err)
	}
	return u
}

// fakeSystemctl writes a systemctl that answers "list-jobs" with job as
// the unit's running job ("" for none) and returns the directory to put
// first in PATH.
func fakeSystemctl(t *testing.T, job string) string {
	t.Helper()
	dir := tempDir(t)
	script := "#!/bin/sh\n[ \"$1\" = list-jobs ] || exit 1\n"
	if job != "" {
		script += "echo '4242 " + unitName + " " + job + " running'\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runUnitCommands runs the unit's commands in ns as systemd would (nfqfw
// being the binary under test), with systemctl answering job.
func runUnitCommands(t *testing.T, ns *sandbox.Netns, cmds [][]string, job string) string {
	t.Helper()
	path := "PATH=" + fakeSystemctl(t, job) + ":" + os.Getenv("PATH")
	var out strings.Builder
	for _, c := range cmds {
		c = slices.Clone(c)
		c[0] = nfqfwBin
		o, err := ns.Exec(append([]string{"env", path}, c...)...)
		out.WriteString(o)
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(c, " "), err, o)
		}
	}
	return out.String()
}

// TestSystemdStopAndRestart plays the shipped unit's stop and restart
// against the real daemon, with a fake systemctl telling which job runs:
// a restart (an upgrade) never opens the host, a stop removes the ruleset,
// a daemon that exited on its own leaves it in force. The probe dials a
// port the policy rejects every 100 ms; for comparison the unit as it was
// (KillSignal=SIGTERM, nothing after the stop) is measured too.
func TestSystemdStopAndRestart(t *testing.T) {
	l := newSupervisorLab(t)
	fw := startFirewall(t, l.host, exampleConfig(t, l.sb, "server.yaml")+guardSection)
	unit := readShippedUnit(t, fw.config)
	if unit.killSignal != syscall.SIGUSR2 || len(unit.stopPost) == 0 {
		t.Fatalf("the unit stops with %v and has %d ExecStopPost lines: want SIGUSR2 and nfqfw remove", unit.killSignal, len(unit.stopPost))
	}
	stateFile := filepath.Join(filepath.Dir(fw.config), "state", "state.json")
	banSetExists := func() bool {
		out, _ := l.host.Exec("ipset", "list", "-n")
		return slices.Contains(strings.Fields(out), "nfqfw-bannet4")
	}

	restart := func(name string, sig syscall.Signal, stopPost [][]string, wantLeaks bool) {
		probe := startOpenProbe(l.cli, l.rejected)
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		fw.proc.Cmd.Process.Signal(sig)
		code := exitCode(t, fw.proc)
		out := runUnitCommands(t, l.host, stopPost, "restart")
		writeLargeState(t, stateFile, 50000)
		runUnitCommands(t, l.host, unit.startPre, "restart")
		fw.start()
		ready := time.Since(start)
		time.Sleep(time.Second)
		probes, leaks, span := probe.finish()
		t.Logf("systemctl restart, %s, 50000 saved bans: exit %d, %s ready again after %v; %d of %d probes (every %v) got through, open about %v",
			name, code, strings.TrimSpace(out), ready.Round(10*time.Millisecond), leaks, probes, probeEvery, span)
		if !wantLeaks && leaks > 0 {
			t.Errorf("systemctl restart with the shipped unit: %d probes got through", leaks)
		}
	}
	// Before: the stop removed the ruleset, the start put it back.
	restart("the unit before (KillSignal=SIGTERM)", syscall.SIGTERM, nil, true)
	restart("the shipped unit", unit.killSignal, unit.stopPost, false)

	t.Run("a daemon that exited on its own keeps its ruleset", func(t *testing.T) {
		installed := nfqfwRules(t, l.host)
		fw.proc.Cmd.Process.Kill() // a crash: systemd runs ExecStopPost with no job
		exitCode(t, fw.proc)
		out := runUnitCommands(t, l.host, unit.stopPost, "")
		if len(nfqfwRules(t, l.host)) != len(installed) || !banSetExists() {
			t.Errorf("ExecStopPost after a crash removed the ruleset or the ban set: %s", out)
		}
		expectDial(t, l.cli, l.rejected, timedOut, "the rejected port while no daemon listens (bypass false)")
		fw.start()
	})

	t.Run("systemctl stop removes the ruleset and the ban sets", func(t *testing.T) {
		fw.proc.Cmd.Process.Signal(unit.killSignal)
		if code := exitCode(t, fw.proc); code != 75 {
			t.Errorf("exit status %d on %v, want 75 (SuccessExitStatus)", code, unit.killSignal)
		}
		if len(nfqfwRules(t, l.host)) == 0 {
			t.Fatalf("the daemon removed its ruleset itself on %v", unit.killSignal)
		}
		out := runUnitCommands(t, l.host, unit.stopPost, "stop")
		t.Logf("ExecStopPost: %s", strings.TrimSpace(out))
		if left := nfqfwRules(t, l.host); len(left) > 0 {
			t.Errorf("NFQFW rules left after systemctl stop:\n%s", strings.Join(left, "\n"))
		}
		if banSetExists() {
			t.Errorf("nfqfw-bannet4 left after systemctl stop")
		}
	})

	t.Run("remove refuses while a daemon runs", func(t *testing.T) {
		fw.start()
		out, err := l.host.Exec(nfqfwBin, "remove", "-c", fw.config)
		if err == nil || !strings.Contains(out, "another nfqfw is running") {
			t.Errorf("nfqfw remove while the daemon runs: %v: %s", err, out)
		}
		if len(nfqfwRules(t, l.host)) == 0 {
			t.Errorf("nfqfw remove removed a running daemon's ruleset")
		}
	})
}

// TestQueueReaderFailureKeepsTheRuleset: a queue reader failing (an
// essential subsystem; injected by a build with the nfqfw_fault tag) makes
// the daemon exit non-zero leaving its ruleset in force: NEW flows are
// dropped by the queue (bypass: false), not let through, and established
// connections go on. The unit's ExecStopPost (no job: the daemon exited on
// its own) keeps the ruleset and the restart systemd makes takes it over;
// a probe to a port the policy rejects never gets through.
func TestQueueReaderFailureKeepsTheRuleset(t *testing.T) {
	l := newSupervisorLab(t)
	faultBin := filepath.Join(tempDir(t), "nfqfw-fault")
	if out, err := exec.Command("go", "build", "-tags", "nfqfw_fault", "-o", faultBin, "github.com/nfqfw/nfqfw/cmd/nfqfw").CombinedOutput(); err != nil {
		t.Fatalf("build with the nfqfw_fault tag: %v: %s", err, out)
	}
	fw := startFirewall(t, l.host, exampleConfig(t, l.sb, "server.yaml")+guardSection)
	unit := readShippedUnit(t, fw.config)
	fw.proc.Cmd.Process.Signal(unit.killSignal)
	exitCode(t, fw.proc)
	trigger := filepath.Join(tempDir(t), "fail-queues")
	fw.proc = l.host.Start("env", "NFQFW_FAULT_QUEUE="+trigger, faultBin, "run", "-c", fw.config)
	if _, ok := waitFor(readyTimeout, func() bool { _, err := fw.cli("health"); return err == nil }); !ok {
		t.Fatalf("the nfqfw_fault build is not ready:\n%s", fw.proc.Output())
	}
	ssh := netip.AddrPortFrom(l.sb.Addr4(hostRole), 22)
	established := dialTCPConn(t, l.cli, ssh)
	defer established.Close()

	probe := startOpenProbe(l.cli, l.rejected)
	time.Sleep(300 * time.Millisecond)
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code := exitCode(t, fw.proc)
	t.Logf("after the injected queue failure: exit %d", code)
	if code == 0 || !strings.Contains(fw.proc.Output(), "essential subsystem failed") {
		t.Errorf("exit status %d, want non-zero with the essential failure logged:\n%s", code, fw.proc.Output())
	}
	if len(nfqfwRules(t, l.host)) == 0 {
		t.Fatalf("the ruleset is gone after a queue reader failed")
	}
	expectDial(t, l.cli, ssh, timedOut, "a new connection to ssh while no daemon listens (dropped by the queue, bypass false)")
	if err := echoes(established); err != nil {
		t.Errorf("the established ssh connection after the failure: %v", err)
	}
	out := runUnitCommands(t, l.host, unit.stopPost, "")
	t.Logf("ExecStopPost: %s", strings.TrimSpace(out))
	runUnitCommands(t, l.host, unit.startPre, "")
	fw.start() // Restart=on-failure
	expectDial(t, l.cli, ssh, connected, "ssh after the restart")
	expectDial(t, l.cli, l.rejected, refused, "the rejected port after the restart")
	probes, leaks, _ := probe.finish()
	t.Logf("queue failure, exit, ExecStopPost, restart: %d of %d probes to the rejected port got through", leaks, probes)
	if leaks > 0 {
		t.Errorf("%d probes got through", leaks)
	}
}

// dialTCPConn connects from ns to dst and returns the connection.
func dialTCPConn(t *testing.T, ns *sandbox.Netns, dst netip.AddrPort) net.Conn {
	t.Helper()
	c, err := ns.DialTimeout("tcp", dst.String(), 2*time.Second)
	if err != nil {
		t.Fatalf("connect to %v: %v", dst, err)
	}
	return c
}

// echoes sends a line on c and reads it back from the echo server.
func echoes(c net.Conn) error {
	if got := roundTripWithin(c, 2*time.Second); got != answered {
		return fmt.Errorf("round trip: %s", got)
	}
	return nil
}

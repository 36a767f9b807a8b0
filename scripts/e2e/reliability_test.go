package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/nfq"
	"github.com/nfqfw/nfqfw/engine/recent"
	"github.com/nfqfw/nfqfw/rules"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// The reliability scenarios: what happens when the daemon is not there,
// stopped, overloaded, reloaded with good and bad configs, asked to roll a
// change back, flooded, or talked to by someone it must not trust.
//
// Covered elsewhere and not repeated here:
//   - a SIGKILLed daemon without queue bypass: NEW dropped, established
//     connections go on, restart installs once (TestLifecycle);
//   - a recovered panic in the decider answered with queue.failure_verdict
//     and counted: engine/nfq TestHookAnswersPanicsWithFailureVerdict (a
//     panic cannot be provoked from outside the process);
//   - banned sources dropped by the kernel set before the queue, and the
//     SSH guard never limiting an allowlisted source (TestBans,
//     TestSSHGuard);
//   - a corrupt state file reported, moved aside and an empty start
//     (TestStatePersistence "corrupt state file"; truncated files in
//     cmd/nfqfw/internal/store TestLoadBadFilesMovedAside).

// relStatus asks the daemon for its status over the control socket.
func relStatus(t *testing.T, fw *firewall) control.StatusResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	var st control.StatusResponse
	if err := control.Call(ctx, fw.socket, "status", nil, &st); err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

// relWriteConfig replaces the daemon's config file with config plus the
// same runtime section startFirewall added, for a reload to read.
func relWriteConfig(t *testing.T, fw *firewall, config string) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(config)
	err := runtimeSection.Execute(&b, map[string]string{
		"Socket": fw.socket, "StateDir": filepath.Join(filepath.Dir(fw.config), "state"), "Metrics": metricsAddr,
	})
	if err != nil {
		t.Fatalf("render config: %v", err)
	}
	if err := os.WriteFile(fw.config, b.Bytes(), 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
}

// relSignal sends sig to the daemon by PID.
func relSignal(t *testing.T, fw *firewall, sig syscall.Signal) {
	t.Helper()
	if err := fw.proc.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to nfqfw: %v", sig, err)
	}
	if sig == syscall.SIGSTOP {
		// Signal delivery is asynchronous: a reader thread may still
		// answer a packet or two. Wait until every thread is stopped.
		pid := fw.proc.Cmd.Process.Pid
		if _, ok := waitFor(2*time.Second, func() bool { return relAllStopped(pid) }); !ok {
			t.Fatalf("nfqfw (pid %d) not stopped 2 s after SIGSTOP", pid)
		}
	}
}

// relAllStopped reports whether every thread of pid is in the stopped
// state (T) according to /proc.
func relAllStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		// pid (comm) S ...: the state follows the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// relExitCode runs an nfqfw client command and returns its exit status
// and combined output.
func relExitCode(t *testing.T, fw *firewall, args ...string) (int, string) {
	t.Helper()
	out, err := fw.cli(args...)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out
	case errors.As(err, &exit):
		return exit.ExitCode(), out
	}
	t.Fatalf("nfqfw %v: %v", args, err)
	return -1, ""
}

// relQueueStats returns the kernel's queue table row of queue 0 in ns.
func relQueueStats(t *testing.T, ns *sandbox.Netns) nfq.QueueProcStats {
	t.Helper()
	var qs []nfq.QueueProcStats
	if err := ns.Do(func() (err error) {
		qs, err = nfq.ReadProcStats("/proc/thread-self/net/netfilter/nfnetlink_queue")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Queue == 0 {
			return q
		}
	}
	t.Fatalf("queue 0 not in %s's nfnetlink_queue table: %+v", ns.Name, qs)
	return nfq.QueueProcStats{}
}

// relCountUDP opens a UDP listener in ns on port that counts what it
// receives and answers nothing.
func relCountUDP(t *testing.T, ns *sandbox.Netns, port uint16) *atomic.Int64 {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) {
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("listen udp %d in %s: %v", port, ns.Name, err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return &n
}

// relBurstUDP sends n datagrams from ns to dst, each from a socket of its
// own: n NEW flows.
func relBurstUDP(t *testing.T, ns *sandbox.Netns, dst netip.AddrPort, n int) {
	t.Helper()
	err := ns.Do(func() error {
		for i := range n {
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c, "burst %d", i)
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("udp burst from %s: %v", ns.Name, err)
	}
}

// relSettle waits until n stops changing for quiet, at most d.
func relSettle(n *atomic.Int64, quiet, d time.Duration) int64 {
	last, since, deadline := n.Load(), time.Now(), time.Now().Add(d)
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if cur := n.Load(); cur != last {
			last, since = cur, time.Now()
		} else if time.Since(since) >= quiet {
			break
		}
	}
	return last
}

// TestFailureModes: with queue bypass, a crashed daemon lets NEW flows in
// (without it they are dropped: TestLifecycle) and established ones go on
// either way; a full queue accepts or drops what overflows as
// queue.fail_open says, and drops are counted by the kernel and exported.
func TestFailureModes(t *testing.T) {
	t.Run("SIGKILL with bypass: NEW accepted by the kernel, established survives", func(t *testing.T) {
		sb, cli, host := newHostLab(t)
		h4 := sb.Addr4(hostRole)
		serveTCP(t, host, 22)
		fw := startFirewall(t, host, exampleConfig(t, sb, "server.yaml")+"\nqueue: {bypass: true}\n")
		talk := converse(t, cli, netip.AddrPortFrom(h4, 22))

		fw.kill()
		runProbes(t, sb, cli, []probe{
			{name: "no daemon: new ssh accepted", kind: tcpConnect, dst: netip.AddrPortFrom(h4, 22), want: connected},
			{name: "no daemon: ping", kind: icmpEcho, dst: netip.AddrPortFrom(h4, 0), want: answered},
		})
		if n := kernelPackets(t, host, "NFQFW-INPUT", "new flows to the engine"); n < 2 {
			t.Errorf("NFQUEUE rule counted %v packets, want the bypassed SYNs", n)
		}
		talk.check(t, "after SIGKILL with bypass")
	})

	// A queue of 4 and a stopped reader (SIGSTOP keeps the queue bound):
	// of a burst of 20 NEW datagrams 4 wait in the queue and 16 overflow.
	const burst, maxLen = 20, 4
	tests := []struct {
		name          string
		failOpen      bool
		wantStopped   int64 // datagrams delivered while the reader is stopped
		wantDropped   uint32
		wantContinued int64 // delivered in all once it reads again
	}{
		// Measured: the kernel counts fail-open accepts nowhere;
		// queue_dropped only counts drops (nfqnl_enqueue_packet).
		{name: "queue full, fail_open: overflow accepted", failOpen: true, wantStopped: burst - maxLen, wantDropped: 0, wantContinued: burst},
		{name: "queue full, fail closed: overflow dropped and counted", failOpen: false, wantStopped: 0, wantDropped: burst - maxLen, wantContinued: maxLen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb, cli, host := newHostLab(t)
			dns := netip.AddrPortFrom(sb.Addr4(hostRole), 53)
			got := relCountUDP(t, host, 53)
			fw := startFirewall(t, host, exampleConfig(t, sb, "server.yaml")+
				fmt.Sprintf("\nqueue: {max_len: %d, fail_open: %v}\n", maxLen, tt.failOpen))
			relBurstUDP(t, cli, dns, 1)
			if n := relSettle(got, 200*time.Millisecond, 2*time.Second); n != 1 {
				t.Fatalf("reader running: %d of 1 datagram delivered", n)
			}
			before := relQueueStats(t, host)

			relSignal(t, fw, syscall.SIGSTOP)
			// Registered after startFirewall, so it runs before the
			// daemon's SIGTERM at cleanup, even when a check fails.
			t.Cleanup(func() { fw.proc.Cmd.Process.Signal(syscall.SIGCONT) })
			relBurstUDP(t, cli, dns, burst)
			stopped := relSettle(got, 300*time.Millisecond, 3*time.Second) - 1
			during := relQueueStats(t, host)
			relSignal(t, fw, syscall.SIGCONT)
			continued := relSettle(got, 300*time.Millisecond, 3*time.Second) - 1
			after := relQueueStats(t, host)
			dropped := after.Dropped - before.Dropped
			t.Logf("fail_open %v: %d sent, %d delivered while stopped (queue_total %d), %d in all after SIGCONT; queue_dropped +%d",
				tt.failOpen, burst, stopped, during.QueueTotal, continued, dropped)

			type outcome struct {
				Stopped, Continued int64
				Waiting            uint32
				Dropped            uint32
			}
			want := outcome{Stopped: tt.wantStopped, Continued: tt.wantContinued, Waiting: maxLen, Dropped: tt.wantDropped}
			if diff := cmp.Diff(want, outcome{stopped, continued, during.QueueTotal, dropped}); diff != "" {
				t.Errorf("burst of %d NEW datagrams into a stopped queue of %d (-want +got):\n%s", burst, maxLen, diff)
			}
			series := `nfqfw_kernel_queue_dropped_total{queue="0"}`
			if got := metricValue(fw.metrics(), series); got != float64(after.Dropped) {
				t.Errorf("%s = %v, want %d as in nfnetlink_queue", series, got, after.Dropped)
			}
		})
	}
}

// relReloadConfig has one of each kind of state a reload must keep: flows,
// a ban set (ssh-guard), a recent list and a knock. WEB is the action of
// port 80, EXTRA room for more rules, TRUSTED the trusted interfaces.
const relReloadConfig = `
zones:
  uplink: [UPLINK]
trusted: [TRUSTED]
recent:
  - name: scanners
guards:
  - name: ssh-guard
    limits: [{count: 100, window: 1m}]
    ban: {duration: 5m}
knocks:
  - name: door
    steps: [tcp/7000, udp/8000, tcp/9000]
    open: [{proto: tcp, ports: [2222]}]
    open_for: 5m
input:
  policy: drop
  rules:
    - {name: knocked, in: uplink, proto: tcp, dport: 2222, knock: door, action: accept}
    - {name: scanner, proto: tcp, recent: {list: scanners, op: check, seconds: 5m}, action: reject}
    - {name: ssh, in: uplink, proto: tcp, dport: 22, guard: ssh-guard, action: accept}
    - {name: web, in: uplink, proto: tcp, dport: 80, action: WEB}
    - {name: trap, proto: tcp, dport: 1, recent: {list: scanners, op: set}, action: reject}
EXTRA
output:
  policy: accept
`

// relSnapshot is the state a reload must keep, as the control socket
// shows it.
type relSnapshot struct {
	Established []string // the conversations' flows: proto src -> dst, state, rule
	Bans        []string // address, until, source
	Recent      []recent.Entry
	Knock       []relWindow
}

type relWindow struct {
	Source, Sequence, Opens string
	Ends                    time.Time
}

// relState snapshots the state a reload must keep; of the flows, those of
// the long-lived conversations (short probes come and go meanwhile).
func relState(t *testing.T, fw *firewall, keep ...*conversation) relSnapshot {
	t.Helper()
	var s relSnapshot
	for _, f := range fw.state().Flows {
		for _, c := range keep {
			if c.conn.LocalAddr().String() == fmt.Sprintf("%s:%d", f.Src, f.SPort) {
				s.Established = append(s.Established, fmt.Sprintf("%s %s:%d -> %s:%d %s rule %s", f.Proto, f.Src, f.SPort, f.Dst, f.DPort, f.State, f.Rule))
			}
		}
	}
	sort.Strings(s.Established)
	for _, b := range bansOf(t, fw).Bans {
		s.Bans = append(s.Bans, fmt.Sprintf("%s until %s (%s)", b.Scope, b.Until.Format(time.RFC3339Nano), b.Source))
	}
	s.Recent = cliJSON[control.RecentListResponse](t, fw, "recent", "--json").Entries
	st := knockStatusOf(t, fw)
	for _, w := range st.Open {
		s.Knock = append(s.Knock, relWindow{w.Source.String(), w.Sequence, w.Opens, st.Now.Add(w.TimeLeft)})
	}
	return s
}

// relSameState fails t unless got holds what want held; knock window ends
// are computed from two clocks and compared to a second.
func relSameState(t *testing.T, when string, want, got relSnapshot) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpopts.EquateApproxTime(time.Second), cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("%s: flows, bans, recent lists and knock windows (-before +after):\n%s", when, diff)
	}
}

// TestReload: SIGHUP and `nfqfw reload` swap a valid config in with every
// flow, ban, recent entry and knock window kept; an invalid one (bad YAML,
// a bad value, a ruleset the kernel refuses) is refused with its error and
// the running policy and kernel rules stay exactly as they were.
func TestReload(t *testing.T) {
	sb := statefulSandbox(t, nil, lan2, lan3)
	cli, host, scanner, knocker := sb.NS(clientRole), sb.NS(hostRole), sb.NS(lan2.Role), sb.NS(lan3.Role)
	h4 := sb.Addr4(hostRole)
	at := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(h4, port) }
	serveTCP(t, host, 22, 80, 2222, 8080)
	render := func(web, extra, trusted string) string {
		return statefulConfig(sb, relReloadConfig, "WEB", web, "EXTRA", extra, "TRUSTED", trusted)
	}
	const alt = "    - {name: alt, in: uplink, proto: tcp, dport: 8080, action: accept}"
	fw := startFirewall(t, host, render("reject", "", "lo"))

	// Build the state: two established flows, a manual ban, a recent
	// entry, a knock window.
	ssh := converse(t, cli, at(22))
	expectDial(t, scanner, at(1), refused, "scanner touches the trap")
	knockWithGo(t, knocker, h4, "tcp/7000", "udp/8000", "tcp/9000")
	knocked := converse(t, knocker, at(2222))
	fw.mustCLI(t, "bans", "add", "192.0.2.99", "--for", "5m")
	before := relState(t, fw, ssh, knocked)
	if len(before.Established) != 2 || len(before.Bans) != 1 || len(before.Recent) != 1 || len(before.Knock) != 1 {
		t.Fatalf("state to keep is incomplete: %+v", before)
	}
	expectDial(t, cli, at(80), refused, "config A: web rejected")
	hashA := relStatus(t, fw).ConfigHash

	t.Run("SIGHUP swaps a valid config in, state kept", func(t *testing.T) {
		relWriteConfig(t, fw, render("accept", "", "lo"))
		relSignal(t, fw, syscall.SIGHUP)
		if _, ok := waitFor(5*time.Second, func() bool { return relStatus(t, fw).ConfigHash != hashA }); !ok {
			t.Fatalf("config hash still %s 5 s after SIGHUP:\n%s", hashA, fw.proc.Output())
		}
		relSameState(t, "after SIGHUP", before, relState(t, fw, ssh, knocked))
		expectDial(t, cli, at(80), connected, "config B: web accepted")
		expectDial(t, scanner, at(22), refused, "the scanner, still on its recent list")
		ssh.check(t, "after SIGHUP")
		knocked.check(t, "after SIGHUP")
	})

	var goodRules []string
	var goodHash string
	t.Run("nfqfw reload swaps a valid config in, state kept", func(t *testing.T) {
		hashB := relStatus(t, fw).ConfigHash
		relWriteConfig(t, fw, render("accept", alt, "lo"))
		code, out := relExitCode(t, fw, "reload")
		goodHash = relStatus(t, fw).ConfigHash
		if code != 0 || !strings.Contains(out, "reloaded (config hash "+goodHash[:12]) || goodHash == hashB {
			t.Fatalf("nfqfw reload: exit %d, %q; hash %s -> %s", code, out, hashB, goodHash)
		}
		relSameState(t, "after nfqfw reload", before, relState(t, fw, ssh, knocked))
		expectDial(t, cli, at(8080), connected, "config C: alt accepted")
		ssh.check(t, "after nfqfw reload")
		goodRules = nfqfwRules(t, host)
	})
	if goodHash == "" {
		t.FailNow()
	}

	refusals := []struct {
		name   string
		config string
		want   []string // in the error of nfqfw reload
	}{
		{
			name:   "bad YAML",
			config: render("accept", alt, "lo") + "\ninput: [unclosed\n",
			want:   []string{"nfqfw reload: ", fw.config},
		},
		{
			name:   "bad value",
			config: render("accept", strings.Replace(alt, "8080", "70000", 1), "lo"),
			want:   []string{"nfqfw reload: ", fw.config, "input.rules[5].dport"},
		},
		{
			// The kernel's dev_valid_name allows '"', but
			// iptables-restore would read it as the start of a quoted
			// word and refuse the ruleset: validation refuses it first.
			// (A ruleset the kernel refuses on Replace is covered by
			// rules/iptables' TestReplace.)
			name:   "interface name iptables-restore cannot take",
			config: render("accept", alt, `lo, 'tr"usted'`),
			want:   []string{"nfqfw reload: ", "trusted[1]", `is neither a zone nor a valid interface name (contains '"')`},
		},
		{
			// A typo of the zone: no interface of the host carries
			// the name, so no packet would ever match the rule.
			name:   "a name that is no zone and no interface of the host",
			config: render("accept", strings.Replace(alt, "in: uplink", "in: uplnk", 1), "lo"),
			want:   []string{"nfqfw reload: ", "input.rules[5].in", `"uplnk" is neither a zone nor an interface present on this host (did you mean zone "uplink"?)`},
		},
	}
	for _, tt := range refusals {
		t.Run("refused: "+tt.name, func(t *testing.T) {
			relWriteConfig(t, fw, tt.config)
			refusedLogs := strings.Count(fw.proc.Output(), "reload refused")
			code, out := relExitCode(t, fw, "reload")
			t.Logf("nfqfw reload: exit %d: %s", code, strings.TrimSpace(out))
			if code != 1 {
				t.Errorf("nfqfw reload exit status %d, want 1", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("nfqfw reload error lacks %q: %s", w, out)
				}
			}
			if _, ok := waitFor(5*time.Second, func() bool { return strings.Count(fw.proc.Output(), "reload refused") > refusedLogs }); !ok {
				t.Errorf("nfqfw reload with a bad config logged no refusal:\n%s", fw.proc.Output())
			}
			refusedLogs = strings.Count(fw.proc.Output(), "reload refused")
			relSignal(t, fw, syscall.SIGHUP)
			if _, ok := waitFor(5*time.Second, func() bool { return strings.Count(fw.proc.Output(), "reload refused") > refusedLogs }); !ok {
				t.Errorf("SIGHUP with a bad config logged no refusal:\n%s", fw.proc.Output())
			}
			// With -c the client reads only control.socket from the
			// broken file: the daemon refuses the reload and counts it.
			failures := metricValue(fw.metrics(), `nfqfw_config_reloads_total{result="failure"}`)
			ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
			outC, err := exec.CommandContext(ctx, nfqfwBin, "reload", "-c", fw.config).CombinedOutput()
			cancel()
			if err == nil || !strings.Contains(string(outC), tt.want[len(tt.want)-1]) {
				t.Errorf("nfqfw reload -c with the bad config: %v: %s", err, outC)
			}
			if got := metricValue(fw.metrics(), `nfqfw_config_reloads_total{result="failure"}`); got != failures+1 {
				t.Errorf("reload failures %v after nfqfw reload -c, want %v", got, failures+1)
			}

			if got := relStatus(t, fw).ConfigHash; got != goodHash {
				t.Errorf("config hash %s after a refused reload, want %s still", got, goodHash)
			}
			if diff := cmp.Diff(goodRules, nfqfwRules(t, host)); diff != "" {
				t.Errorf("NFQFW rules in iptables-save changed by a refused reload (-before +after):\n%s", diff)
			}
			relSameState(t, "after a refused reload", before, relState(t, fw, ssh, knocked))
			expectDial(t, cli, at(80), connected, "web, as before")
			expectDial(t, cli, at(8080), connected, "alt, as before")
			expectDial(t, scanner, at(22), refused, "the scanner, as before")
			ssh.check(t, "after a refused reload")
		})
	}
}

// TestReloadNotAFile: a FIFO with no writer or a symlink to /dev/zero at
// the config path is refused at once by a reload (no hang, no memory
// exhausted); the daemon keeps answering and its config stays in force.
func TestReloadNotAFile(t *testing.T) {
	sb, _, host := newHostLab(t)
	fw := startFirewall(t, host, exampleConfig(t, sb, "server.yaml"))
	hash := relStatus(t, fw).ConfigHash
	for _, tc := range []struct {
		name, want string
		make       func(path string) error
	}{
		{"FIFO", "is a FIFO (named pipe), not a regular file", func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		{"symlink to /dev/zero", "is a character device, not a regular file", func(p string) error { return os.Symlink("/dev/zero", p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved, err := os.ReadFile(fw.config)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(fw.config); err != nil {
				t.Fatal(err)
			}
			if err := tc.make(fw.config); err != nil {
				t.Fatal(err)
			}
			defer func() {
				os.Remove(fw.config)
				if err := os.WriteFile(fw.config, saved, 0o600); err != nil {
					t.Fatal(err)
				}
			}()
			code, out := relExitCode(t, fw, "reload")
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Errorf("nfqfw reload: exit %d: %s; want 1 and %q", code, out, tc.want)
			}
			if out, err := fw.cli("health"); err != nil {
				t.Errorf("nfqfw health after the refused reload: %v: %s", err, out)
			}
			if got := relStatus(t, fw).ConfigHash; got != hash {
				t.Errorf("config hash %s after a refused reload, want %s", got, hash)
			}
		})
	}
}

// relLockoutConfig is server.yaml with SSH closed: a config that would
// lock an operator on SSH out (a new connection gets a reset).
func relLockoutConfig(t *testing.T, server string) string {
	t.Helper()
	c := strings.Replace(server, "      dport: 22\n", "      dport: 2022\n", 1)
	if c == server {
		t.Fatal("server.yaml: no `dport: 22` to close")
	}
	return c
}

// relAllowlistConfig refuses SSH to everyone but a source nobody has, with
// a banning guard; ADMIN is the management allowlist.
const relAllowlistConfig = `
zones:
  uplink: [UPLINK]
trusted: [lo]
allowlist: [ADMIN]
queue: {bypass: false}
guards:
  - name: ssh-guard
    limits: [{count: 1, window: 1m}]
    ban: {duration: 5m}
input:
  policy: drop
  rules:
    - {name: ssh, in: uplink, proto: tcp, dport: 22, src: 192.0.2.0/24, guard: ssh-guard, action: accept}
output:
  policy: accept
`

// TestNoLockout: a change forced past the lockout check and made with
// --confirm is rolled back unless confirmed (reload: the previous config returns; run: the daemon stops and
// removes its ruleset), and a management allowlist source reaches SSH
// whatever the policy, a ban or a dead daemon say.
func TestNoLockout(t *testing.T) {
	t.Run("reload --confirm", func(t *testing.T) {
		sb, cli, host := newHostLab(t)
		ssh := netip.AddrPortFrom(sb.Addr4(hostRole), 22)
		serveTCP(t, host, 22)
		server := exampleConfig(t, sb, "server.yaml")
		fw := startFirewall(t, host, server)
		talk := converse(t, cli, ssh)
		hash := relStatus(t, fw).ConfigHash

		t.Run("unconfirmed: the previous config comes back", func(t *testing.T) {
			relWriteConfig(t, fw, relLockoutConfig(t, server))
			// The lockout check would refuse this config (the client's
			// held session to port 22 would not get in again): --force
			// takes it, and --confirm is the net under that.
			out, err := fw.cli("reload", "--force", "--confirm", "3s")
			reloaded := time.Now()
			if err != nil || !strings.Contains(out, `run "nfqfw confirm" within 3s`) {
				t.Fatalf("nfqfw reload --confirm 3s: %v: %s", err, out)
			}
			if got := dialQuick(cli, ssh, probeTimeout); got != refused {
				t.Fatalf("new ssh under the lockout config: %s, want %s", got, refused)
			}
			var got outcome
			back, ok := waitFor(8*time.Second, func() bool {
				got = dialQuick(cli, ssh, 300*time.Millisecond)
				return got == connected
			})
			back = time.Since(reloaded)
			t.Logf("new ssh connects again %v after reload --confirm 3s", back.Round(10*time.Millisecond))
			if !ok || back < 2900*time.Millisecond || back > 5*time.Second {
				t.Errorf("new ssh: %s %v after reload --confirm 3s, want connected after 3 s", got, back)
			}
			if got := relStatus(t, fw).ConfigHash; got != hash {
				t.Errorf("config hash after the rollback %s, want the previous %s", got, hash)
			}
			if !strings.Contains(fw.proc.Output(), "rolled back") {
				t.Errorf("no log line says the change was rolled back:\n%s", fw.proc.Output())
			}
			talk.check(t, "across the lockout and the rollback")
		})

		t.Run("confirmed: the change stays", func(t *testing.T) {
			fw.mustCLI(t, "reload", "--force", "--confirm", "3s")
			if out, err := fw.cli("confirm"); err != nil || strings.TrimSpace(out) != "confirmed" {
				t.Fatalf("nfqfw confirm: %v: %q", err, out)
			}
			time.Sleep(4 * time.Second)
			if got := dialQuick(cli, ssh, probeTimeout); got != refused {
				t.Errorf("new ssh 4 s after a confirmed lockout: %s, want %s", got, refused)
			}
			if got := relStatus(t, fw).ConfigHash; got == hash {
				t.Errorf("config hash %s: the confirmed change was rolled back", got)
			}
			code, out := relExitCode(t, fw, "confirm")
			if code != 1 || !strings.Contains(out, "no change is waiting for confirmation") {
				t.Errorf("a second nfqfw confirm: exit %d, %q; want 1 and nothing to confirm", code, out)
			}
			talk.check(t, "after the confirmed change")
		})
	})

	t.Run("run --confirm", func(t *testing.T) {
		sb, cli, host := newHostLab(t)
		h4 := sb.Addr4(hostRole)
		serveTCP(t, host, 22)
		fw := startFirewall(t, host, relLockoutConfig(t, exampleConfig(t, sb, "server.yaml")))
		fw.stop()

		t.Run("unconfirmed: stops and removes its ruleset", func(t *testing.T) {
			fw.startWith(t, "--confirm", "3s")
			started := time.Now()
			if got := dialQuick(cli, netip.AddrPortFrom(h4, 22), probeTimeout); got != refused {
				t.Errorf("while unconfirmed: tcp 22 %s, want %s by the lockout config", got, refused)
			}
			err := fw.proc.Wait(8 * time.Second)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("unconfirmed nfqfw run --confirm 3s: %v after %v, want exit status 1\n%s", err, time.Since(started), fw.proc.Output())
			}
			t.Logf("unconfirmed daemon exited %v after start", time.Since(started).Round(10*time.Millisecond))
			if !strings.Contains(fw.proc.Output(), "not confirmed") || !strings.Contains(fw.proc.Output(), "kernel ruleset removed") {
				t.Errorf("output does not say the start was not confirmed and the ruleset removed:\n%s", fw.proc.Output())
			}
			if left := nfqfwRules(t, host); len(left) > 0 {
				t.Errorf("NFQFW rules left by the unconfirmed start:\n%s", strings.Join(left, "\n"))
			}
			expectDial(t, cli, netip.AddrPortFrom(h4, 22), connected, "no firewall any more")
		})

		t.Run("confirmed: keeps running", func(t *testing.T) {
			fw.startWith(t, "--confirm", "3s")
			fw.mustCLI(t, "confirm")
			time.Sleep(4 * time.Second)
			if !fw.running() {
				t.Fatalf("confirmed daemon stopped:\n%s", fw.proc.Output())
			}
			expectDial(t, cli, netip.AddrPortFrom(h4, 22), refused, "the confirmed config")
		})
	})

	t.Run("allowlist", func(t *testing.T) {
		l := newSSHLab(t, lan2)
		sb, cli, host, admin, ssh := l.sb, l.cli, l.host, l.other, l.ssh4
		adminAddr := sb.Addr4(lan2.Role)
		fw := startFirewall(t, host, statefulConfig(sb, relAllowlistConfig, "ADMIN", adminAddr.String()))

		expectDial(t, cli, ssh, timedOut, "the policy refuses ssh to the client")
		expectDial(t, admin, ssh, connected, "the policy would refuse the admin too")
		session := converse(t, admin, ssh)
		out, err := fw.cli("bans", "add", adminAddr.String(), "--for", "5m")
		session.check(t, "after a ban of the allowlisted admin")
		t.Logf("nfqfw bans add %s (allowlisted): %v: %s", adminAddr, err, strings.TrimSpace(out))
		if err == nil || !strings.Contains(out, "management allowlist") {
			t.Errorf("a manual ban of the allowlisted admin was not refused: %v: %s", err, out)
		}
		for i := 1; i <= 3; i++ {
			expectDial(t, admin, ssh, connected, fmt.Sprintf("allowlisted after a ban attempt, connection %d (guard allows 1/min)", i))
		}
		talk := converse(t, admin, ssh)
		fw.kill()
		expectDial(t, cli, ssh, timedOut, "daemon SIGKILLed, no bypass: the client")
		expectDial(t, admin, ssh, connected, "daemon SIGKILLed, no bypass: the allowlisted admin")
		talk.check(t, "after SIGKILL")
	})
}

// relFloodConfig is a small server with a small flow table.
const relFloodConfig = `
zones:
  uplink: [UPLINK]
trusted: [lo]
flows: {max: FLOWSMAX}
input:
  policy: drop
  rules:
    - {name: ssh, in: uplink, proto: tcp, dport: 22, action: accept}
    - {name: web, in: uplink, proto: tcp, dport: 80, action: accept}
    - {name: dns, in: uplink, proto: udp, dport: 53, action: accept}
output:
  policy: accept
`

// relVmHWM returns the peak resident set size of pid in KiB, and its
// current one.
func relVmHWM(t *testing.T, pid int) (hwm, rss int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of %d: %v", pid, err)
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) >= 2 {
			n, _ := strconv.Atoi(f[1])
			switch f[0] {
			case "VmHWM:":
				hwm = n
			case "VmRSS:":
				rss = n
			}
		}
	}
	return hwm, rss
}

// TestFloodResistance: a SYN flood and a UDP flood from random spoofed
// sources fill the flow table; it stays within flows.max by evicting,
// memory stays bounded, and a legitimate client still connects.
func TestFloodResistance(t *testing.T) {
	const (
		flowsMax    = 4096
		floodCount  = 50000
		floodBound  = 60 * time.Second
		legitTries  = 20
		legitWait   = 2 * time.Second
		legitMinPct = 80
	)
	sb := statefulSandbox(t, []string{"hping3", "timeout"}, lan2)
	cli, gw, host, legit := sb.NS(clientRole), sb.NS(sandbox.Gateway), sb.NS(hostRole), sb.NS(lan2.Role)
	// Spoofed sources must be routed: no reverse path filter on the
	// gateway (whose only routes are the LANs) nor on the host.
	for _, ns := range []*sandbox.Netns{gw, host} {
		ns.MustExec("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
		for _, l := range []string{sb.GatewayLink(clientRole), sb.GatewayLink(hostRole), sb.GatewayLink(lan2.Role), sb.Link(hostRole)} {
			ns.Exec("sysctl", "-qw", "net.ipv4.conf."+l+".rp_filter=0") // the link is in one of the two
		}
	}
	h4 := sb.Addr4(hostRole)
	// The legitimate client uses another port than the SYN flood: the
	// flood's own listener has its SYN queue full (the kernel's problem,
	// syncookies), the engine's queue and flow table are shared.
	legitDst := netip.AddrPortFrom(h4, 22)
	serveTCP(t, host, 22, 80)
	fw := startFirewall(t, host, statefulConfig(sb, relFloodConfig, "FLOWSMAX", strconv.Itoa(flowsMax)))
	pid := fw.proc.PID()
	expectDial(t, legit, legitDst, connected, "before the flood")
	hwmBefore, rssBefore := relVmHWM(t, pid)
	qBefore := relQueueStats(t, host)

	ctx, cancel := context.WithTimeout(context.Background(), floodBound)
	defer cancel()
	var floods sync.WaitGroup
	var running atomic.Int32
	for _, args := range [][]string{
		{"-S", "--rand-source", "-p", "80"},
		{"--udp", "--rand-source", "-p", "53"},
	} {
		argv := append([]string{"netns", "exec", cli.Name, "timeout", "-s", "KILL", strconv.Itoa(int(floodBound.Seconds())),
			"hping3", "-q", "-c", strconv.Itoa(floodCount), "--faster"}, append(args, h4.String())...)
		cmd := exec.CommandContext(ctx, "ip", argv...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("hping3 %v: %v", args, err)
		}
		running.Add(1)
		floods.Add(1)
		go func() {
			defer floods.Done()
			defer running.Add(-1)
			start := time.Now()
			err := cmd.Wait()
			t.Logf("hping3 %s: %v in %v: %s", strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out.String()))
		}()
	}

	// While it floods: a legitimate client connects, and the table size
	// is watched.
	var maxTracked atomic.Int64
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for running.Load() > 0 && ctx.Err() == nil {
			ctx, cancel := context.WithTimeout(ctx, cliTimeout)
			var st control.StateResponse
			if err := control.Call(ctx, fw.socket, "state", control.StateRequest{Limit: 1}, &st); err == nil {
				for cur := maxTracked.Load(); int64(st.Total) > cur && !maxTracked.CompareAndSwap(cur, int64(st.Total)); cur = maxTracked.Load() {
				}
			}
			cancel()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	time.Sleep(200 * time.Millisecond) // let the floods get going
	ok, during := 0, 0
	var fails []string
	for i := range legitTries {
		flooding := running.Load() > 0
		got := dialQuick(legit, legitDst, legitWait)
		if flooding {
			during++
		}
		if got == connected {
			ok++
		} else {
			fails = append(fails, fmt.Sprintf("attempt %d: %s", i+1, got))
		}
		time.Sleep(100 * time.Millisecond)
	}
	floods.Wait()
	<-watchDone
	cancel()

	hwmAfter, rssAfter := relVmHWM(t, pid)
	qAfter := relQueueStats(t, host)
	queued, qDropped := qAfter.IDSequence-qBefore.IDSequence, qAfter.Dropped-qBefore.Dropped
	t.Logf("flood: queue 0 took %d packets; the full queue dropped %d more (%.1f%%), user_dropped +%d",
		queued, qDropped, 100*float64(qDropped)/float64(queued+qDropped), qAfter.UserDropped-qBefore.UserDropped)
	st := fw.state()
	m := fw.metrics()
	evictions := metricValue(m, "nfqfw_flow_evictions_total")
	full := metricValue(m, "nfqfw_flow_table_full_total")
	t.Logf("flood: legitimate client %d/%d connected (%d attempts while flooding) %v", ok, legitTries, during, fails)
	t.Logf("flood: VmHWM %d -> %d KiB, VmRSS %d -> %d KiB; table %d now, at most %d seen (max %d); evictions %v, table full %v",
		hwmBefore, hwmAfter, rssBefore, rssAfter, st.Total, maxTracked.Load(), st.Max, evictions, full)
	if ok*100 < legitMinPct*legitTries {
		t.Errorf("legitimate client connected %d of %d times during the flood, want at least %d%%", ok, legitTries, legitMinPct)
	}
	if during < legitTries/2 {
		t.Errorf("only %d of %d legitimate attempts overlapped the flood: it was too short to prove anything", during, legitTries)
	}
	if st.Max != flowsMax || maxTracked.Load() > flowsMax || st.Total > flowsMax {
		t.Errorf("flow table: max %d, largest seen %d, now %d; want never above flows.max %d", st.Max, maxTracked.Load(), st.Total, flowsMax)
	}
	if maxTracked.Load() < flowsMax/2 {
		t.Errorf("flow table never grew past %d: the flood did not reach the engine", maxTracked.Load())
	}
	if evictions < floodCount/2 {
		t.Errorf("nfqfw_flow_evictions_total = %v, want most of the %d spoofed flows evicted", evictions, 2*floodCount)
	}
	// Bounded: the table is 4096 flows; allow the runtime its slack.
	if grow := hwmAfter - hwmBefore; grow > 64<<10 {
		t.Errorf("VmHWM grew by %d KiB during the flood, want under 64 MiB", grow)
	}
	if !fw.running() {
		t.Fatalf("daemon died during the flood:\n%s", fw.proc.Output())
	}
}

// TestHostileInput: the control socket admits root only (mode 0600, and
// SO_PEERCRED behind it), answers garbage with an error and keeps serving,
// and the metrics exporter listens on loopback unless told otherwise.
func TestHostileInput(t *testing.T) {
	sb, _, host := newHostLab(t)
	fw := startFirewall(t, host, exampleConfig(t, sb, "server.yaml"))

	t.Run("socket is 0600", func(t *testing.T) {
		fi, err := os.Stat(fw.socket)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != os.ModeSocket|0o600 {
			t.Errorf("control socket mode %v, want %v", got, os.ModeSocket|0o600)
		}
	})

	t.Run("non-root peers refused", func(t *testing.T) {
		// nobody needs a copy of the binary it may execute.
		bin := filepath.Join(tempDir(t), "nfqfw")
		b, err := os.ReadFile(nfqfwBin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
			t.Fatal(err)
		}
		asNobody := func() (int, string) {
			ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
			defer cancel()
			out, err := exec.CommandContext(ctx, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
				bin, "state", "-s", fw.socket).CombinedOutput()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatalf("setpriv: %v: %s", err, out)
			}
			if exit == nil {
				return 0, string(out)
			}
			return exit.ExitCode(), string(out)
		}
		if code, out := asNobody(); code != 1 || !strings.Contains(out, "permission denied") {
			t.Errorf("nfqfw state as nobody: exit %d, %q; want 1 and permission denied", code, out)
		}
		// Open the file modes wide: SO_PEERCRED still refuses.
		dir := filepath.Dir(fw.socket)
		for path, mode := range map[string]os.FileMode{dir: 0o711, fw.socket: 0o666} {
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			os.Chmod(fw.socket, 0o600)
			os.Chmod(dir, 0o700)
		})
		code, out := asNobody()
		switch {
		case code != 1:
			t.Errorf("nfqfw state as nobody on a 0666 socket: exit %d, %q; want 1", code, out)
		case strings.Contains(out, "peer not allowed: uid 65534"):
		case strings.Contains(out, "broken pipe"), strings.Contains(out, "connection reset"):
			// The server answers a refused peer and closes before
			// reading its request; when the client writes after
			// that close, its write fails and the answer is lost.
			t.Logf("known issue: the refusal did not reach the client: %s", strings.TrimSpace(out))
		default:
			t.Errorf("nfqfw state as nobody on a 0666 socket: %q, want peer not allowed", out)
		}
		if !strings.Contains(fw.proc.Output(), "refused peer") || !strings.Contains(fw.proc.Output(), "peer not allowed: uid 65534") {
			t.Errorf("the refused peer is not logged:\n%s", fw.proc.Output())
		}
	})

	t.Run("malformed requests get an error, the daemon goes on", func(t *testing.T) {
		// A client that connects and says nothing must not hold up others.
		idle, err := net.Dial("unix", fw.socket)
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
		tests := []struct {
			name, line string
			want       string // in the error
		}{
			{"not JSON", "not json at all\n", "bad request"},
			{"empty line", "\n", "bad request"},
			{"binary", "\x00\xff\xfe{\x01\n", "bad request"},
			{"truncated JSON", `{"cmd":"status"` + "\n", "bad request"},
			{"command of the wrong type", `{"cmd":5}` + "\n", "bad request"},
			{"unknown command", `{"cmd":"format-disk"}` + "\n", `unknown command "format-disk"`},
			{"reload args of the wrong type", `{"cmd":"reload","args":"now"}` + "\n", "reload: json"},
			{"reload with a negative confirm", `{"cmd":"reload","args":{"confirm":"-3s"}}` + "\n", "want a positive duration"},
			{"state with a bad address", `{"cmd":"state","args":{"addr":"999.1.1.1"}}` + "\n", `addr "999.1.1.1"`},
			{"bans.add without arguments", `{"cmd":"bans.add"}` + "\n", "missing arguments"},
			{"bans.add of garbage", `{"cmd":"bans.add","args":{"addr":"x","for_seconds":-1}}` + "\n", "bans.add"},
			{"longer than MaxRequest", strings.Repeat("x", control.MaxRequest+100) + "\n", fmt.Sprintf("longer than %d bytes", control.MaxRequest)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c, err := net.Dial("unix", fw.socket)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				go func() {
					io.WriteString(c, tt.line)
					c.(*net.UnixConn).CloseWrite()
				}()
				line, err := bufio.NewReader(c).ReadBytes('\n')
				if err != nil {
					t.Fatalf("no response line: %v (%q)", err, line)
				}
				var resp control.Response
				if err := json.Unmarshal(line, &resp); err != nil {
					t.Fatalf("response is not JSON: %v: %q", err, line)
				}
				if resp.OK || !strings.Contains(resp.Error, tt.want) {
					t.Errorf("response %+v, want ok false and an error containing %q", resp, tt.want)
				}
			})
		}
		if st := relStatus(t, fw); st.PID != fw.proc.PID() || !fw.running() {
			t.Errorf("after the garbage: status %+v, running %v", st, fw.running())
		}
	})

	t.Run("metrics listen on loopback by default", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "minimal.yaml")
		if err := os.WriteFile(file, []byte("input: {policy: drop}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := rules.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		ap, err := netip.ParseAddrPort(cfg.Metrics.Listen)
		if err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("default metrics.listen %q (%v), want a loopback address", cfg.Metrics.Listen, err)
		}
	})
}

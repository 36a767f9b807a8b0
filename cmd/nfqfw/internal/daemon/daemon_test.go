package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/nfqfw/nfqfw/cmd/nfqfw/internal/store"
	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/engine/knock"
	"github.com/nfqfw/nfqfw/engine/nfq"
	"github.com/nfqfw/nfqfw/rules"
	"github.com/nfqfw/nfqfw/rules/iptables"
)

// The daemon's logic without root: Run drives a Daemon against
// fakeKernel, the only fake (iptables-restore, the queues, ipset and
// conntrack). Everything above the kernel boundary is the real code.

// syncBuffer is a bytes.Buffer for a logger written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testDaemon is Run in a goroutine against a fake kernel.
type testDaemon struct {
	t      *testing.T
	k      *fakeKernel
	dir    string
	path   string // config file
	d      *Daemon
	logs   *syncBuffer
	sigs   chan os.Signal
	cancel context.CancelFunc
	done   chan error // Run's result
}

// daemonConfig is config with this test's control socket, state
// directory and no metrics listener.
func daemonConfig(dir, config string) string {
	return config + fmt.Sprintf("\ncontrol: {socket: %q}\nstate: {dir: %q}\nmetrics: {listen: \"\"}\n",
		filepath.Join(dir, "nfqfw.sock"), filepath.Join(dir, "state"))
}

// startDaemon runs the daemon with config (daemonConfig is added) and
// waits until it runs. opts may set Options fields first.
func startDaemon(t *testing.T, config string, opts ...func(*Options)) *testDaemon {
	t.Helper()
	td, err := runDaemon(t, config, opts...)
	if err != nil {
		t.Fatalf("daemon did not start: %v\n%s", err, td.logs)
	}
	return td
}

// runDaemon starts the daemon and returns once it runs (nil) or Run
// returned (its error).
func runDaemon(t *testing.T, config string, opts ...func(*Options)) (*testDaemon, error) {
	t.Helper()
	dir := t.TempDir()
	td := &testDaemon{t: t, k: newFakeKernel(dir), dir: dir, path: filepath.Join(dir, "nfqfw.yaml"),
		logs: &syncBuffer{}, sigs: make(chan os.Signal, 4), done: make(chan error, 1)}
	td.write(config)
	running := make(chan *Daemon, 1)
	o := Options{ConfigPath: td.path, Logger: NewLogger(rules.Log{}, td.logs), Signals: td.sigs,
		Notifier: &Notifier{}, kernel: td.k, running: func(d *Daemon) { running <- d }, Force: true}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td.cancel = cancel
	go func() { td.done <- Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-td.done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return 10 s after the stop")
		}
	})
	select {
	case td.d = <-running:
		return td, nil
	case err := <-td.done:
		td.done <- err // for Cleanup
		return td, err
	case <-time.After(10 * time.Second):
		return td, errors.New("not running after 10 s")
	}
}

// write replaces the config file.
func (td *testDaemon) write(config string) {
	td.t.Helper()
	if err := os.WriteFile(td.path, []byte(daemonConfig(td.dir, config)), 0o600); err != nil {
		td.t.Fatal(err)
	}
}

// wait returns Run's result, failing the test after 10 s.
func (td *testDaemon) wait() error {
	td.t.Helper()
	select {
	case err := <-td.done:
		td.done <- err
		return err
	case <-time.After(10 * time.Second):
		td.t.Fatalf("Run still running 10 s later\n%s", td.logs)
		return nil
	}
}

// packet builds an IPv4 packet from src to dst:dport: a TCP segment with
// the given flags ("S" SYN, "A" ACK), or a UDP datagram when flags is "".
func packet(t testing.TB, src, dst string, dport uint16, flags string) []byte {
	t.Helper()
	return packetFrom(t, src, 40000, dst, dport, flags)
}

// packetFrom is packet from source port sport.
func packetFrom(t testing.TB, src string, sport uint16, dst string, dport uint16, flags string) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: netip.MustParseAddr(src).AsSlice(), DstIP: netip.MustParseAddr(dst).AsSlice()}
	var l4 gopacket.SerializableLayer
	if flags == "" {
		u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		u.SetNetworkLayerForChecksum(ip)
		l4 = u
	} else {
		ip.Protocol = layers.IPProtocolTCP
		tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1, Window: 1024,
			SYN: strings.Contains(flags, "S"), ACK: strings.Contains(flags, "A")}
		tc.SetNetworkLayerForChecksum(ip)
		l4 = tc
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, l4); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// input is a packet arriving on loopback (INPUT).
var input = nfq.Meta{Hook: nfq.HookInput, InDev: 1}

// verdictName names a verdict: accept, drop or reject.
func verdictName(v nfq.Verdict) string {
	switch {
	case v.Accept:
		return "accept"
	case v.Repeat:
		return "reject"
	}
	return "drop"
}

// baseConfig admits DNS and web on INPUT, drops the rest.
const baseConfig = `
input:
  policy: drop
  rules:
    - {name: dns, proto: udp, dport: 53, action: accept}
    - {name: web, proto: tcp, dport: 80, action: accept}
`

// TestReloadAppliesEveryReloadField: for every field rules.FieldClasses
// says a reload applies, a reload to a config that changes only that
// field puts it in force: in the running policy, in the kernel ruleset,
// and in each part of the daemon that keeps its own copy (the queue
// readers' failure verdict, the flow table's timeouts, the logger, the
// packet log's and the FTP helper's rate, the stateful matchers), checked
// by what the daemon then does where it can be.
func TestReloadAppliesEveryReloadField(t *testing.T) {
	tests := []struct {
		path   string // rules.FieldClasses path
		config string // the whole new config
		check  func(t *testing.T, td *testDaemon)
	}{
		{path: "IPv6", config: baseConfig + "ipv6: false\n"},
		{path: "Queue.Bypass", config: baseConfig + "queue: {bypass: true}\n"},
		{path: "Queue.FailureVerdict", config: baseConfig + "queue: {failure_verdict: accept}\n", check: func(t *testing.T, td *testDaemon) {
			if !td.k.queue(0).failAccept.Load() {
				t.Errorf("the queue reader's failure verdict is still drop")
			}
		}},
		{path: "Queue.MarkMask", config: baseConfig + "queue: {mark_mask: 983040}\n"},
		{path: "Flows.Timeouts", config: baseConfig + "flows: {timeouts: {udp: 7s}}\n", check: func(t *testing.T, td *testDaemon) {
			td.k.queue(0).decide(packet(t, "192.0.2.9", "127.0.0.1", 53, ""), input)
			var left []int64
			td.d.eng.Flows().Walk(func(fi engine.FlowInfo) bool { left = append(left, fi.Timeout); return true })
			if len(left) != 1 || left[0] > 7 {
				t.Errorf("a new UDP flow after the reload has %v s left, want one with at most 7", left)
			}
		}},
		{path: "Flows.KernelEvents", config: baseConfig + "flows: {kernel_events: minimal}\n"},
		{path: "Flows.TCPPickup", config: baseConfig + "flows: {tcp_pickup: drop}\n", check: func(t *testing.T, td *testDaemon) {
			if v := verdictName(td.k.queue(0).decide(packet(t, "192.0.2.9", "127.0.0.1", 80, "A"), input)); v != "drop" {
				t.Errorf("an ACK without a flow to the web port: %s, want drop (tcp_pickup: drop)", v)
			}
		}},
		{path: "Zones", config: baseConfig + "zones: {local: [lo]}\n"},
		{path: "Trusted", config: baseConfig + "trusted: []\n"},
		{path: "Interfaces", config: baseConfig + "interfaces: {dynamic: [ppp0]}\n"},
		{path: "RPFilter", config: baseConfig + "rpfilter: true\n"},
		{path: "Input", config: strings.Replace(baseConfig, "policy: drop", "policy: reject", 1), check: func(t *testing.T, td *testDaemon) {
			if v := verdictName(td.k.queue(0).decide(packet(t, "192.0.2.9", "127.0.0.1", 9, "S"), input)); v != "reject" {
				t.Errorf("a SYN to a closed port: %s, want reject", v)
			}
		}},
		{path: "Forward", config: baseConfig + "forward: {policy: accept}\n"},
		{path: "Output", config: baseConfig + "output: {policy: drop}\n"},
		{path: "NAT", config: baseConfig + "nat: {masquerade: [{out: lo}]}\n"},
		{path: "Recent", config: baseConfig + "recent: [{name: scan, size: 10}]\n", check: func(t *testing.T, td *testDaemon) {
			if td.d.currentState().recent.Index("scan") < 0 {
				t.Errorf("the recent list is not there")
			}
		}},
		{path: "Guards", config: baseConfig + "guards: [{name: g, limits: [{count: 3, window: 10s}]}]\n", check: func(t *testing.T, td *testDaemon) {
			if len(td.d.currentState().guards.Snapshot()) != 0 || len(td.d.currentState().cfg.Guards) != 1 {
				t.Errorf("the guard is not in force")
			}
		}},
		{path: "Knocks", config: baseConfig + "knocks: [{name: k, steps: [tcp/7000, udp/8000], step_window: 5s, open: [{proto: tcp, ports: [22]}], open_for: 30s}]\n", check: func(t *testing.T, td *testDaemon) {
			if td.d.currentState().knock.Index("k") < 0 {
				t.Errorf("the knock sequence is not there")
			}
		}},
		{path: "FTP", config: baseConfig + "ftp: {enabled: true}\n", check: func(t *testing.T, td *testDaemon) {
			if td.d.currentState().ftp == nil {
				t.Errorf("the FTP helper is not in force")
			}
		}},
		{path: "Allowlist", config: baseConfig + "allowlist: [192.0.2.0/24]\n"}, // the kernel ruleset accepts it
		{path: "Log.Format", config: baseConfig + "log: {format: json}\n", check: func(t *testing.T, td *testDaemon) {
			lines := strings.Split(strings.TrimSpace(td.logs.String()), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "{") || !strings.Contains(last, `"config reloaded"`) {
				t.Errorf("the line after the reload is not JSON: %s", last)
			}
		}},
		{path: "Log.Level", config: baseConfig + "log: {level: warn}\n", check: func(t *testing.T, td *testDaemon) {
			if strings.Contains(td.logs.String(), "config reloaded") {
				t.Errorf("an info line was logged at level warn")
			}
		}},
		{path: "Log.Rate", config: baseConfig + "log: {rate: 3}\n", check: func(t *testing.T, td *testDaemon) {
			if r, f := td.d.eng.LogRate(), td.d.currentState().shared.ftp.LogRate(); r != 3 || f != 3 {
				t.Errorf("log rate: packet log %d, FTP helper %d; want 3 and 3", r, f)
			}
		}},
	}

	covered := map[string]bool{"File": true} // where the config came from
	for _, tt := range tests {
		covered[tt.path] = true
	}
	for _, f := range rules.FieldClasses {
		if f.Class == rules.AppliedOnReload && !covered[f.Path] {
			t.Errorf("%s is applied on reload but has no case here", f.Path)
		}
	}

	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			td := startDaemon(t, baseConfig)
			td.write(tt.config)
			if err := td.d.Reload(context.Background(), 0); err != nil {
				t.Fatalf("reload: %v\n%s", err, td.logs)
			}
			want, err := rules.LoadOnHost(td.path)
			if err != nil {
				t.Fatal(err)
			}
			base, err := rules.Parse("base.yaml", []byte(daemonConfig(td.dir, baseConfig)))
			if err != nil {
				t.Fatal(err)
			}
			if reflect.DeepEqual(field(want, tt.path), field(base, tt.path)) {
				t.Fatalf("the case does not change %s", tt.path)
			}
			installed, _, _, _ := td.k.state()
			for what, got := range map[string]*rules.Config{"running policy": td.d.eng.Policy().Config(), "kernel ruleset": installed} {
				if !reflect.DeepEqual(field(got, tt.path), field(want, tt.path)) {
					t.Errorf("%s: %s = %v, want %v", what, tt.path, field(got, tt.path), field(want, tt.path))
				}
			}
			if tt.check != nil {
				tt.check(t, td)
			}
		})
	}
}

// field returns the value at the dotted Go field path of c.
func field(c *rules.Config, path string) any {
	v := reflect.ValueOf(c).Elem()
	for _, name := range strings.Split(path, ".") {
		v = v.FieldByName(name)
	}
	return v.Interface()
}

// TestReloadRefusalsLeaveEverythingAsItWas: a restart-only field, a
// config that does not parse and a ruleset iptables-restore refuses each
// refuse the reload loudly and change nothing: the policy, the kernel
// ruleset; the file on disk is reported as differing.
func TestReloadRefusalsLeaveEverythingAsItWas(t *testing.T) {
	tests := []struct {
		name       string
		config     string
		replaceErr error
		wantErr    string
	}{
		{name: "a restart-only field", config: baseConfig + "queue: {batch: 8}\n", wantErr: "queue.batch changed and needs a restart"},
		{name: "a config that does not parse", config: baseConfig + "input: {policy: maybe}\n", wantErr: "input"},
		{name: "a ruleset iptables-restore refuses", config: baseConfig + "forward: {policy: accept}\n",
			replaceErr: errors.New("iptables-restore: line 3 failed"), wantErr: "line 3 failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			td := startDaemon(t, baseConfig)
			hash := td.d.eng.Policy().Hash()
			installed, _, _, _ := td.k.state()
			td.k.mu.Lock()
			td.k.replaceErr = tt.replaceErr
			td.k.mu.Unlock()
			td.write(tt.config)
			err := td.d.Reload(context.Background(), 0)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("reload = %v, want an error containing %q", err, tt.wantErr)
			}
			if got := td.d.eng.Policy().Hash(); got != hash {
				t.Errorf("the running policy changed")
			}
			if now, _, _, _ := td.k.state(); now != installed {
				t.Errorf("the kernel ruleset changed")
			}
			if w := td.d.health.warnings(); len(w) == 0 || !strings.Contains(strings.Join(w, "\n"), "is not the running config") {
				t.Errorf("health warnings after a refused reload: %q, want one saying the file on disk is not the running config", w)
			}
			if !strings.Contains(td.logs.String(), "level=WARN msg=\"reload refused") {
				t.Errorf("no warning logged:\n%s", td.logs)
			}
		})
	}
}

// TestConfirmAndRollback: a reload with --confirm stays once confirmed;
// one not confirmed in time is rolled back, policy and kernel ruleset, to
// the config before it; a start not confirmed in time stops and removes
// the ruleset.
func TestConfirmAndRollback(t *testing.T) {
	changed := strings.Replace(baseConfig, "policy: drop", "policy: reject", 1)
	t.Run("confirmed", func(t *testing.T) {
		td := startDaemon(t, baseConfig)
		td.write(changed)
		if err := td.d.Reload(context.Background(), time.Hour); err != nil {
			t.Fatal(err)
		}
		hash := td.d.eng.Policy().Hash()
		if !td.d.Confirm() {
			t.Fatal("Confirm found nothing pending")
		}
		if td.d.Confirm() {
			t.Error("a second Confirm found something pending")
		}
		if td.d.eng.Policy().Hash() != hash {
			t.Error("the confirmed policy changed")
		}
	})
	t.Run("not confirmed in time", func(t *testing.T) {
		td := startDaemon(t, baseConfig)
		hash := td.d.eng.Policy().Hash()
		td.write(changed)
		if err := td.d.Reload(context.Background(), time.Millisecond); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 500 && td.d.eng.Policy().Hash() != hash; i++ { // at most 5 s
			time.Sleep(10 * time.Millisecond)
		}
		if td.d.eng.Policy().Hash() != hash {
			t.Fatalf("not rolled back:\n%s", td.logs)
		}
		installed, _, _, _ := td.k.state()
		if installed.Input.Policy != rules.ActionDrop {
			t.Errorf("kernel ruleset after the rollback has input policy %v, want drop", installed.Input.Policy)
		}
		if w := td.d.health.warnings(); len(w) == 0 {
			t.Error("health says nothing about the rolled-back file on disk")
		}
	})
	t.Run("start not confirmed in time", func(t *testing.T) {
		td := startDaemon(t, baseConfig, func(o *Options) { o.Confirm = time.Millisecond })
		if err := td.wait(); !errors.Is(err, errNotConfirmed) {
			t.Fatalf("Run = %v, want errNotConfirmed", err)
		}
		if installed, _, _, removes := td.k.state(); installed != nil || removes != 1 {
			t.Errorf("after an unconfirmed start: ruleset %v, %d removals; want none left, 1", installed != nil, removes)
		}
	})
}

// TestFailurePolicy: only an explicit stop removes the ruleset and the
// ban sets. A queue reader's failure (essential) ends Run with the error,
// the ruleset in force; SIGUSR2 ends it with ErrRestartKeepRules, the
// ruleset in force; an auxiliary subsystem's failure (conntrack) is shown
// by health and the daemon runs on. The state is saved at every exit.
func TestFailurePolicy(t *testing.T) {
	config := baseConfig + "guards: [{name: g, limits: [{count: 3, window: 10s}], ban: {duration: 1h}}]\n"
	exits := []struct {
		name       string
		exit       func(td *testDaemon)
		wantErr    error // nil: Run returns nil
		wantRemove bool
	}{
		{"explicit stop (SIGTERM)", func(td *testDaemon) { td.cancel() }, nil, true},
		{"SIGUSR2 (nfqfw restart, the unit's stop)", func(td *testDaemon) { td.sigs <- syscall.SIGUSR2 }, ErrRestartKeepRules, false},
		{"a queue reader fails", func(td *testDaemon) { td.k.queue(0).failWith(nfq.ErrTooManyErrors) }, nfq.ErrTooManyErrors, false},
	}
	for _, tt := range exits {
		t.Run(tt.name, func(t *testing.T) {
			td := startDaemon(t, config)
			ban := netip.MustParsePrefix("198.51.100.9/32")
			if _, err := td.d.currentState().shared.bans.Add(ban, time.Hour, "test", 0); err != nil {
				t.Fatal(err)
			}
			tt.exit(td)
			err := td.wait()
			if (tt.wantErr == nil && err != nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("Run = %v, want %v", err, tt.wantErr)
			}
			installed, _, _, removes := td.k.state()
			if removed := installed == nil && removes == 1; removed != tt.wantRemove {
				t.Errorf("ruleset removed: %v, want %v", removed, tt.wantRemove)
			}
			if ok, _ := (fakeSets{td.k}).Exists(iptables.BanSet(rules.FamilyIPv4)); ok == tt.wantRemove {
				t.Errorf("the IPv4 ban set exists: %v, want %v", ok, !tt.wantRemove)
			}
			var p persisted
			if err := store.Load(filepath.Join(td.dir, "state", stateFile), &p); err != nil || len(p.Bans) != 1 {
				t.Errorf("state saved at exit: %v, %d bans; want the ban", err, len(p.Bans))
			}
		})
	}

	t.Run("an auxiliary subsystem fails", func(t *testing.T) {
		td := startDaemon(t, baseConfig, func(o *Options) {
			o.kernel.(*fakeKernel).followErr = errors.New("ctnetlink: permission denied")
		})
		found := false
		for i := 0; i < 300 && !found; i++ { // at most 30 s (first backoff 1 s)
			found = strings.Contains(strings.Join(td.d.health.list(), "\n"), "permission denied")
			time.Sleep(100 * time.Millisecond)
		}
		if !found {
			t.Errorf("health does not show the failed conntrack follower: %q", td.d.health.list())
		}
		select {
		case err := <-td.done:
			td.done <- err
			t.Fatalf("Run returned %v after an auxiliary failure", err)
		default:
		}
		if v := verdictName(td.k.queue(0).decide(packet(t, "192.0.2.9", "127.0.0.1", 53, ""), input)); v != "accept" {
			t.Errorf("DNS after the auxiliary failure: %s, want accept (packets are still decided)", v)
		}
	})
}

// TestPolicySwapWhilePacketsAreDecided: two queue readers decide packets
// while reloads swap the policy back and forth; every verdict is one of
// the two policies' answers (run with -race: no data race between the
// swap and the deciders).
func TestPolicySwapWhilePacketsAreDecided(t *testing.T) {
	configs := []string{
		baseConfig + "queue: {count: 2}\n",
		strings.Replace(baseConfig, "dport: 80", "dport: 8080", 1) + "queue: {count: 2}\n",
	}
	td := startDaemon(t, configs[0])
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 2)
	for qi := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := td.k.queue(qi)
			for i := 0; i < 200000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				src := fmt.Sprintf("192.0.%d.%d", 2+qi, 1+i%250)
				// DNS is accepted by both policies; port 9 by neither.
				if v := verdictName(q.decide(packet(t, src, "127.0.0.1", 53, ""), input)); v != "accept" {
					errs <- "DNS: " + v
					return
				}
				if v := verdictName(q.decide(packet(t, src, "127.0.0.1", 9, "S"), input)); v != "drop" {
					errs <- "port 9: " + v
					return
				}
			}
		}()
	}
	for i := range 40 {
		td.write(configs[(i+1)%2])
		if err := td.d.Reload(context.Background(), 0); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a verdict neither policy gives: %s", e)
	}
}

// TestStartLockoutWithRestoredState: the start's lockout check judges the
// management connection with the restored state, as a reload does: ssh
// is open only through a knock, so a start from an SSH session is refused
// with nothing installed, unless the saved state holds that client's open
// knock window.
// savedState is a runDaemon option that writes p as the state file the
// daemon starts from.
func savedState(t *testing.T, p persisted) func(*Options) {
	return func(o *Options) {
		dir := filepath.Join(filepath.Dir(o.ConfigPath), "state")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := store.Save(filepath.Join(dir, stateFile), &p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStartLockoutWithRestoredState(t *testing.T) {
	config := `
trusted: []
input:
  policy: drop
  rules:
    - {name: ssh-knocked, proto: tcp, dport: 22, knock: ssh-knock, action: accept}
knocks:
  - name: ssh-knock
    steps: [tcp/7000, udp/8000]
    step_window: 5s
    open: [{proto: tcp, ports: [22]}]
    open_for: 1h
`
	sshConn := func(o *Options) { o.Force = false; o.SSHConnection = "127.0.0.2 40000 127.0.0.1 22" }
	t.Run("no saved window: refused, nothing installed", func(t *testing.T) {
		td, err := runDaemon(t, config, sshConn)
		if !errors.Is(err, ErrLockout) {
			t.Fatalf("start = %v, want ErrLockout", err)
		}
		if _, installs, _, _ := td.k.state(); installs != 0 {
			t.Errorf("%d installs after a refused start", installs)
		}
	})
	t.Run("the client's window saved: started", func(t *testing.T) {
		_, err := runDaemon(t, config, sshConn, savedState(t, persisted{Knock: knock.Snap{Sequences: []knock.SnapSequence{{Name: "ssh-knock",
			Open: []knock.SnapOpen{{Source: netip.MustParseAddr("127.0.0.2"), Until: time.Now().Add(time.Hour)}}}}}}))
		if err != nil {
			t.Fatalf("start with the client's knock window restored: %v", err)
		}
	})
	t.Run("the client's allow saved: started", func(t *testing.T) {
		_, err := runDaemon(t, config, sshConn, savedState(t, persisted{Allows: []decision.Decision{{Kind: decision.Allow,
			Scope: netip.MustParsePrefix("127.0.0.2/32"), Issued: time.Now(), Expires: time.Now().Add(time.Hour)}}}))
		if err != nil {
			t.Fatalf("start with the client's allow restored: %v", err)
		}
	})
}

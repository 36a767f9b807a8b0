package iptables

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"net/netip"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nfqfw/nfqfw/rules"
)

// requireRoot skips a privileged test when not root, and fails it instead
// when CI=true: CI must run these tests, not skip them.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("privileged test needs root (CI=true: not skipping)")
	}
	t.Skip("privileged test needs root to create network namespaces and run iptables-restore")
}

// newNetns creates a fresh, uniquely named network namespace that is
// deleted when the test ends, and returns the command prefix that runs a
// command inside it. Nothing the test does touches the host's tables.
func newNetns(t *testing.T) []string {
	t.Helper()
	requireRoot(t)
	sweepOnce.Do(func() { sweepDeadNetns(t) })
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("nfqfw-ipt-%d-%s", os.Getpid(), hex.EncodeToString(r[:]))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return []string{"ip", "netns", "exec", name}
}

var sweepOnce sync.Once

// sweepDeadNetns deletes namespaces this test file created in a run that
// was killed before its cleanup ran: nfqfw-ipt-PID-* whose PID is gone
// and that no process uses.
func sweepDeadNetns(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(l, " ")
		rest, ok := strings.CutPrefix(name, "nfqfw-ipt-")
		pidStr, _, ok2 := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || !ok2 || err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its test run is still going
		}
		if pids, _ := exec.Command("ip", "netns", "pids", name).Output(); len(strings.TrimSpace(string(pids))) > 0 {
			continue
		}
		if err := exec.Command("ip", "netns", "del", name).Run(); err == nil {
			t.Logf("deleted namespace %s left by a killed test run", name)
		}
	}
}

// inNetns runs a command inside the namespace.
func inNetns(t *testing.T, ns []string, stdin string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := run(ctx, ns, stdin, argv[0], argv[1:]...)
	if err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	return out
}

// backendsIn returns the backends whose binaries exist, bound to ns.
func backendsIn(t *testing.T, ns []string) []Backend {
	t.Helper()
	var bs []Backend
	for _, k := range []rules.Backend{rules.BackendLegacy, rules.BackendNft} {
		b, err := lookup(k, ns)
		if err != nil {
			t.Logf("backend %s not tested: %v", k, err)
			continue
		}
		if len(ns) == 4 && ns[0] == "ip" && ns[1] == "netns" && ns[2] == "exec" {
			b.netns = "/run/netns/" + ns[3] // Check reads its nf_tables generation
		}
		bs = append(bs, b)
	}
	if len(bs) == 0 {
		t.Skip("no iptables backend installed")
	}
	return bs
}

// eachBackend runs f in a fresh namespace for every installed backend.
func eachBackend(t *testing.T, f func(t *testing.T, ns []string, b Backend)) {
	for _, k := range []rules.Backend{rules.BackendLegacy, rules.BackendNft} {
		t.Run(string(k), func(t *testing.T) {
			ns := newNetns(t)
			var b Backend
			for _, c := range backendsIn(t, ns) {
				if c.Kind == k {
					b = c
				}
			}
			if b.Kind == "" {
				t.Skipf("iptables-%s binaries not installed", k)
			}
			f(t, ns, b)
		})
	}
}

// snapshot returns both families' tables as iptables-save prints them,
// without comments and counters, table by table.
func snapshot(t *testing.T, ns []string, b Backend) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, fam := range families {
		var tbl string
		for _, l := range strings.Split(inNetns(t, ns, "", b.save(fam)), "\n") {
			switch {
			case l == "" || strings.HasPrefix(l, "#"):
				continue
			case strings.HasPrefix(l, "*"):
				tbl = famName(fam) + " " + l[1:]
			case strings.HasPrefix(l, ":"):
				l, _, _ = strings.Cut(l, " [")
			}
			out[tbl] += l + "\n"
		}
	}
	return out
}

// ourRules returns, per "family table chain", the rules of nfqfw's chains
// and the jumps into them, in the order the kernel holds them.
func ourRules(t *testing.T, ns []string, b Backend, fam rules.Family) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var tbl string
	for _, l := range strings.Split(inNetns(t, ns, "", b.save(fam)), "\n") {
		if strings.HasPrefix(l, "*") {
			tbl = l[1:]
		}
		if f := strings.Fields(l); len(f) > 2 && f[0] == "-A" && strings.Contains(l, ChainPrefix) {
			out[tbl+" "+f[1]] = append(out[tbl+" "+f[1]], l)
		}
	}
	return out
}

// expected turns generated restore input into the same shape as ourRules:
// -I hooks become the first -A of their built-in chain.
func expected(t *testing.T, c *rules.Config, fam rules.Family) map[string][]string {
	t.Helper()
	text, err := Generate(c, fam)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var tbl string
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		switch {
		case strings.HasPrefix(l, "*"):
			tbl = l[1:]
		case len(f) > 2 && f[0] == "-A":
			out[tbl+" "+f[1]] = append(out[tbl+" "+f[1]], l)
		case len(f) > 3 && f[0] == "-I":
			out[tbl+" "+f[1]] = append(out[tbl+" "+f[1]], "-A "+f[1]+" "+strings.Join(f[3:], " "))
		}
	}
	return out
}

// foreign is an operator's own ruleset that nfqfw must leave alone.
const foreign = `*filter
:OPERATOR - [0:0]
-A INPUT -p tcp -m tcp --dport 2222 -m comment --comment "operator rule" -j ACCEPT
-A FORWARD -j OPERATOR
-A OPERATOR -j RETURN
COMMIT
*nat
-A POSTROUTING -o docker0 -j MASQUERADE
COMMIT
`

// gateway is a config using filter and nat in both families, with guards.
func gateway() *rules.Config {
	c := base()
	c.Trusted = []string{"lo", "lan0"}
	c.Input.Rules = []rules.Rule{tcp("ssh", 22)}
	c.Guards = []rules.Guard{{Name: "ssh"}}
	c.NAT = rules.NAT{
		Masquerade: []rules.Masquerade{{Out: []string{"wan0"}, Src: prefixes("10.99.1.0/24", "fd00:99:1::/64")}},
		Forwards: []rules.PortForward{
			{Name: "web", In: []string{"wan0"}, Proto: 6, Port: rules.PortRange{First: 8000, Last: 8000}, To: netip.MustParseAddr("10.99.1.2"), ToPort: 80},
			{Name: "web6", In: []string{"wan0"}, Proto: 6, Port: rules.PortRange{First: 8000, Last: 8000}, To: netip.MustParseAddr("fd00:99:1::2"), ToPort: 80},
		},
	}
	return c
}

func createBanSets(t *testing.T, ns []string, fams ...rules.Family) {
	t.Helper()
	for _, fam := range fams {
		family := "inet"
		if fam == rules.FamilyIPv6 {
			family = "inet6"
		}
		inNetns(t, ns, "", "ipset", "create", BanSet(fam), "hash:net", "family", family)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestInstallRemove(t *testing.T) {
	eachBackend(t, func(t *testing.T, ns []string, b Backend) {
		for _, fam := range families {
			inNetns(t, ns, foreign, b.restore(fam), "--noflush")
		}
		createBanSets(t, ns, families...)
		before := snapshot(t, ns, b)

		c := gateway()
		in := NewInstaller(c, b)
		start := time.Now()
		if err := in.Install(ctx(t)); err != nil {
			t.Fatalf("Install: %v", err)
		}
		t.Logf("Install (both families, filter and nat) took %v", time.Since(start))
		for _, fam := range families {
			got := ourRules(t, ns, b, fam)
			if diff := cmp.Diff(expected(t, c, fam), got); diff != "" {
				t.Errorf("%s rules after Install (-want +got):\n%s", famName(fam), diff)
			}
			// The hooks come first, before the operator's rules.
			for _, chain := range []string{"INPUT", "FORWARD", "OUTPUT"} {
				first := firstRule(t, ns, b, fam, "filter", chain)
				if !strings.HasSuffix(first, "-j "+ChainPrefix+chain) {
					t.Errorf("%s first rule of %s = %q, want the jump to %s%s", famName(fam), chain, first, ChainPrefix, chain)
				}
			}
			if first := firstRule(t, ns, b, fam, "nat", "PREROUTING"); !strings.HasSuffix(first, "-j "+ChainPrerouting) {
				t.Errorf("%s first rule of nat PREROUTING = %q", famName(fam), first)
			}
		}

		if err := in.Remove(ctx(t)); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if diff := cmp.Diff(before, snapshot(t, ns, b)); diff != "" {
			t.Errorf("tables after Remove differ from before Install (-want +got):\n%s", diff)
		}
		// Removing again finds nothing to do.
		if err := in.Remove(ctx(t)); err != nil {
			t.Fatalf("second Remove: %v", err)
		}
	})
}

func firstRule(t *testing.T, ns []string, b Backend, fam rules.Family, table, chain string) string {
	t.Helper()
	for _, l := range strings.Split(inNetns(t, ns, "", b.save(fam), "-t", table), "\n") {
		if strings.HasPrefix(l, "-A "+chain+" ") {
			return l
		}
	}
	return ""
}

// TestInstallCleansStale simulates a crash: an earlier run's ruleset is
// still hooked, twice, with a chain the new config no longer has. Install
// leaves exactly one copy of the new ruleset.
func TestInstallCleansStale(t *testing.T) {
	eachBackend(t, func(t *testing.T, ns []string, b Backend) {
		createBanSets(t, ns, families...)
		old := base()
		old.Input.Rules = []rules.Rule{tcp("ssh", 22)}
		old.NAT.Masquerade = []rules.Masquerade{{Out: []string{"wan0"}}}
		for _, fam := range families {
			text, err := Generate(old, fam)
			if err != nil {
				t.Fatal(err)
			}
			inNetns(t, ns, text, b.restore(fam), "--noflush")
			// The second copy of the hooks, and a chain of a newer or
			// older version, as a crash between two runs leaves them.
			inNetns(t, ns, "*filter\n:NFQFW-OBSOLETE - [0:0]\n-A NFQFW-OBSOLETE -j DROP\n-I INPUT 1 -j NFQFW-INPUT\n-A OUTPUT -j NFQFW-OBSOLETE\nCOMMIT\n",
				b.restore(fam), "--noflush")
		}

		c := base() // the desktop: no NAT, nothing queued
		in := NewInstaller(c, b)
		if err := in.Install(ctx(t)); err != nil {
			t.Fatalf("Install: %v", err)
		}
		for _, fam := range families {
			if diff := cmp.Diff(expected(t, c, fam), ourRules(t, ns, b, fam)); diff != "" {
				t.Errorf("%s rules after Install over stale ones (-want +got):\n%s", famName(fam), diff)
			}
			if s := inNetns(t, ns, "", b.save(fam)); strings.Contains(s, "NFQFW-OBSOLETE") || strings.Contains(s, ChainPostrouting) {
				t.Errorf("%s stale chain survived Install:\n%s", famName(fam), s)
			}
		}
	})
}

// TestInstallRefused installs a ruleset that names a ban set which does
// not exist in IPv6 (IPv4 has its set): iptables-restore's message and the
// line come back, and neither family keeps anything of nfqfw's.
func TestInstallRefused(t *testing.T) {
	eachBackend(t, func(t *testing.T, ns []string, b Backend) {
		for _, fam := range families {
			inNetns(t, ns, foreign, b.restore(fam), "--noflush")
		}
		createBanSets(t, ns, rules.FamilyIPv4)
		before := snapshot(t, ns, b)

		in := NewInstaller(gateway(), b)
		err := in.Install(ctx(t))
		var re *RestoreError
		if !errors.As(err, &re) || !errors.Is(err, ErrRestore) {
			t.Fatalf("Install error = %v, want a *RestoreError", err)
		}
		t.Logf("Install: %v", err)
		if !strings.Contains(re.Stderr, BanSet6) || !strings.Contains(re.Text, "--match-set "+BanSet6) || re.Line == 0 {
			t.Errorf("RestoreError = %+v, want the missing set named with its input line", re)
		}
		if diff := cmp.Diff(before, snapshot(t, ns, b)); diff != "" {
			t.Errorf("a refused Install left tables changed (-want +got):\n%s", diff)
		}
	})
}

// TestReplace reloads: a new config swaps in, a refused one leaves the
// running one in force, and IPv6 switched off removes the IPv6 chains.
func TestReplace(t *testing.T) {
	eachBackend(t, func(t *testing.T, ns []string, b Backend) {
		createBanSets(t, ns, families...)
		first := base()
		first.Input.Rules = []rules.Rule{tcp("ssh", 22)}
		in := NewInstaller(first, b)
		if err := in.Install(ctx(t)); err != nil {
			t.Fatalf("Install: %v", err)
		}

		second := base()
		second.Queue = rules.Queue{Number: 3, Count: 2, Bypass: true, MarkMask: 0xff}
		second.Output.Rules = []rules.Rule{tcp("web", 80)}
		second.NAT.Masquerade = []rules.Masquerade{{Out: []string{"wan0"}}}
		if err := in.Replace(ctx(t), second); err != nil {
			t.Fatalf("Replace: %v", err)
		}
		for _, fam := range families {
			if diff := cmp.Diff(expected(t, second, fam), ourRules(t, ns, b, fam)); diff != "" {
				t.Errorf("%s rules after Replace (-want +got):\n%s", famName(fam), diff)
			}
		}

		bad := base()
		bad.Input.Rules = []rules.Rule{tcp("ssh", 22)}
		bad.Trusted = []string{"longer-than-ifnamsiz"} // iptables refuses the name
		if err := in.Replace(ctx(t), bad); !errors.Is(err, ErrRestore) {
			t.Fatalf("Replace(bad) error = %v, want ErrRestore", err)
		}
		for _, fam := range families {
			if diff := cmp.Diff(expected(t, second, fam), ourRules(t, ns, b, fam)); diff != "" {
				t.Errorf("%s rules after a refused Replace (-want +got):\n%s", famName(fam), diff)
			}
		}

		v4only := base()
		v4only.IPv6 = false
		if err := in.Replace(ctx(t), v4only); err != nil {
			t.Fatalf("Replace(ipv4 only): %v", err)
		}
		if got := ourRules(t, ns, b, rules.FamilyIPv6); len(got) != 0 {
			t.Errorf("ipv6 rules after switching IPv6 off: %v", got)
		}
		if diff := cmp.Diff(expected(t, v4only, rules.FamilyIPv4), ourRules(t, ns, b, rules.FamilyIPv4)); diff != "" {
			t.Errorf("ipv4 rules after switching IPv6 off (-want +got):\n%s", diff)
		}
	})
}

// TestDetectBackend checks that auto follows stale chains into the
// flavour that holds them, and that explicit flavours are honoured.
func TestDetectBackend(t *testing.T) {
	ns := newNetns(t)
	bs := backendsIn(t, ns)
	if len(bs) < 2 {
		t.Skip("needs both iptables-legacy and iptables-nft")
	}
	for _, k := range []rules.Backend{rules.BackendLegacy, rules.BackendNft} {
		b, err := detect(ctx(t), k, ns)
		if err != nil || b.Kind != k {
			t.Errorf("detect(%s) = %s, %v", k, b.Kind, err)
		}
	}
	def, err := detect(ctx(t), rules.BackendAuto, ns)
	if err != nil {
		t.Fatalf("detect(auto): %v", err)
	}
	t.Logf("auto picks %s in an empty namespace", def.Kind)
	other := bs[0]
	if other.Kind == def.Kind {
		other = bs[1]
	}
	inNetns(t, ns, "*filter\n:NFQFW-INPUT - [0:0]\nCOMMIT\n", other.Restore4, "--noflush")
	got, err := detect(ctx(t), rules.BackendAuto, ns)
	if err != nil || got.Kind != other.Kind {
		t.Errorf("detect(auto) with stale chains in %s = %s, %v", other.Kind, got.Kind, err)
	}
	if _, err := detect(ctx(t), "bogus", ns); !errors.Is(err, ErrBackend) {
		t.Errorf("detect(bogus) error = %v, want ErrBackend", err)
	}
	if !slices.Equal(got.prefix, ns) {
		t.Errorf("detected backend lost the namespace prefix")
	}
}

func TestRestoreErrorLine(t *testing.T) {
	input := "*filter\n:NFQFW-INPUT - [0:0]\n-A NFQFW-INPUT -j BOGUS\nCOMMIT\n"
	tests := []struct {
		name   string
		stderr string
		want   RestoreError
	}{
		{
			name:   "legacy and nft parse errors",
			stderr: "iptables-restore v1.8.9 (legacy): Couldn't load target `BOGUS'\n\nError occurred at line: 3\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n",
			want: RestoreError{Command: "iptables-legacy-restore", Line: 3, Text: "-A NFQFW-INPUT -j BOGUS",
				Stderr: "iptables-restore v1.8.9 (legacy): Couldn't load target `BOGUS'; Error occurred at line: 3"},
		},
		{
			name:   "legacy commit failure",
			stderr: "ip6tables-restore: line 4 failed\n",
			want:   RestoreError{Command: "iptables-legacy-restore", Line: 4, Text: "COMMIT", Stderr: "ip6tables-restore: line 4 failed"},
		},
		{
			name:   "nft kernel refusal",
			stderr: "ip6tables-nft-restore v1.8.9 (nf_tables): \nline 3: RULE_APPEND failed (Invalid argument): rule in chain NFQFW-INPUT\n",
			want: RestoreError{Command: "iptables-legacy-restore", Line: 3, Text: "-A NFQFW-INPUT -j BOGUS",
				Stderr: "ip6tables-nft-restore v1.8.9 (nf_tables):; line 3: RULE_APPEND failed (Invalid argument): rule in chain NFQFW-INPUT"},
		},
		{
			name:   "no line named",
			stderr: "iptables-restore: unable to initialize table 'filter'\n",
			want:   RestoreError{Command: "iptables-legacy-restore", Stderr: "iptables-restore: unable to initialize table 'filter'"},
		},
	}
	exit := errors.New("exit status 1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := restoreError("iptables-legacy-restore", input, &cmdError{cmd: "x", stderr: strings.TrimSpace(tt.stderr), err: exit})
			var got *RestoreError
			if !errors.As(err, &got) || !errors.Is(err, ErrRestore) || !errors.Is(err, exit) {
				t.Fatalf("restoreError = %v, want a *RestoreError wrapping the exit error", err)
			}
			tt.want.Err = exit
			if diff := cmp.Diff(tt.want, *got, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("RestoreError mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInstallExamples installs every shipped example config with both
// backends: the kernel accepts each generated ruleset as written, and
// removing it restores the tables.
func TestInstallExamples(t *testing.T) {
	configs := exampleConfigs(t)
	for _, g := range goldenCases { // the golden setups too: every line the kernel must take
		configs["golden "+g.name] = g.cfg()
	}
	eachBackend(t, func(t *testing.T, ns []string, b Backend) {
		createBanSets(t, ns, families...)
		// A table and its built-in chains appear when a rule first uses
		// them (iptables-nft creates them and never deletes them); make
		// them exist before the snapshot.
		touch := "*filter\n-A INPUT -j ACCEPT\n-D INPUT -j ACCEPT\nCOMMIT\n*nat\n-A PREROUTING -j ACCEPT\n-D PREROUTING -j ACCEPT\nCOMMIT\n" +
			"*raw\n-A PREROUTING -j ACCEPT\n-D PREROUTING -j ACCEPT\nCOMMIT\n" // rpfilter
		for _, fam := range families {
			inNetns(t, ns, touch, b.restore(fam), "--noflush")
		}
		before := snapshot(t, ns, b)
		for name, c := range configs {
			in := NewInstaller(c, b)
			if err := in.Install(ctx(t)); err != nil {
				t.Errorf("%s: Install: %v", name, err)
				continue
			}
			for _, fam := range families {
				if fam == rules.FamilyIPv6 && !c.IPv6 {
					continue
				}
				if diff := cmp.Diff(expected(t, c, fam), ourRules(t, ns, b, fam)); diff != "" {
					t.Errorf("%s: %s rules (-want +got):\n%s", name, famName(fam), diff)
				}
			}
			if err := in.Remove(ctx(t)); err != nil {
				t.Errorf("%s: Remove: %v", name, err)
			}
			if diff := cmp.Diff(before, snapshot(t, ns, b)); diff != "" {
				t.Errorf("%s: tables after Remove (-want +got):\n%s", name, diff)
			}
		}
	})
}

// connect opens a TCP connection to 127.0.0.1:port inside the namespace
// and reports how it went: "connected", "refused" or "timeout".
func connect(t *testing.T, ns []string, port int) string {
	t.Helper()
	argv := append(append([]string(nil), ns...), "timeout", "2", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d", port))
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "connected"
	case strings.Contains(string(out), "refused"):
		return "refused"
	case errors.As(err, &ee) && ee.ExitCode() == 124:
		return "timeout"
	}
	t.Fatalf("connect to port %d: %v: %s", port, err, out)
	return ""
}

// TestKernelContract runs real loopback TCP through an installed ruleset
// with no daemon reading the queue: --queue-bypass accepts NEW, its
// absence drops it, and a SYN carrying the engine's tcp-reset mark is
// answered with a RST by NFQFW-REJECT even though a listener is there.
// The mark is set in mangle OUTPUT, as the engine's NF_REPEAT would.
func TestKernelContract(t *testing.T) {
	eachBackend(t, func(t *testing.T, ns []string, b Backend) {
		inNetns(t, ns, "", "ip", "link", "set", "lo", "up")
		argv := append(append([]string(nil), ns...), "nc", "-lk", "127.0.0.1", "9001")
		nc := exec.Command(argv[0], argv[1:]...)
		if err := nc.Start(); err != nil {
			t.Skipf("nc -l: %v", err)
		}
		t.Cleanup(func() { _ = nc.Process.Kill(); _ = nc.Wait() })
		for i := 0; i < 40 && connect(t, ns, 9001) != "connected"; i++ {
			time.Sleep(50 * time.Millisecond)
		}

		createBanSets(t, ns, rules.FamilyIPv4)
		c := base()
		c.IPv6 = false
		c.Trusted = nil // loopback goes through the chains
		c.Input.Rules = []rules.Rule{tcp("anything", 1)}
		c.Queue.Bypass = true
		in := NewInstaller(c, b)
		if err := in.Install(ctx(t)); err != nil {
			t.Fatalf("Install: %v", err)
		}
		if got := connect(t, ns, 9001); got != "connected" {
			t.Errorf("with --queue-bypass and no reader: %s, want connected", got)
		}

		mark := fmt.Sprintf("%#x/%#x", c.Queue.RejectMark(rules.RejectTCPReset), c.Queue.MarkBits())
		inNetns(t, ns, "*mangle\n-A OUTPUT -p tcp -m tcp --dport 9001 --tcp-flags SYN,ACK SYN -j MARK --set-xmark "+mark+"\nCOMMIT\n", b.Restore4, "--noflush")
		if got := connect(t, ns, 9001); got != "refused" {
			t.Errorf("SYN marked tcp-reset: %s, want refused", got)
		}
		inNetns(t, ns, "*mangle\n-F OUTPUT\nCOMMIT\n", b.Restore4, "--noflush")
		if got := connect(t, ns, 9001); got != "connected" {
			t.Errorf("listener gone after the marked SYN: %s", got)
		}

		c.Queue.Bypass = false
		if err := in.Replace(ctx(t), c); err != nil {
			t.Fatalf("Replace: %v", err)
		}
		if got := connect(t, ns, 9001); got != "timeout" {
			t.Errorf("without --queue-bypass and no reader: %s, want timeout (dropped)", got)
		}
	})
}

package e2e

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// TestCheckNamesFileLineField: `nfqfw check` of a broken config exits 1
// and its error starts with file:line: field, so an editor can jump to it.
func TestCheckNamesFileLineField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		config string
		line   string // of the error
		field  string
	}{
		{
			name: "port out of range",
			config: `trusted: [lo]
input:
  policy: drop
  rules:
    - name: ssh
      proto: tcp
      dport: 70000
      action: accept
`,
			line: "7", field: "input.rules[0].dport",
		},
		{
			name:   "unknown key",
			config: "input:\n  polcy: drop\n",
			line:   "2", field: "input",
		},
	}
	errLine := regexp.MustCompile(`(?m)^nfqfw check: (\S+):(\d+): ([^:]+):`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "broken.yaml")
			if err := os.WriteFile(file, []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
			defer cancel()
			out, err := exec.CommandContext(ctx, nfqfwBin, "check", "-c", file).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("nfqfw check = %v, want exit status 1; output:\n%s", err, out)
			}
			m := errLine.FindStringSubmatch(string(out))
			if m == nil {
				t.Fatalf("nfqfw check output has no file:line: field: error:\n%s", out)
			}
			want := []string{file, tt.line, tt.field}
			if diff := cmp.Diff(want, m[1:]); diff != "" {
				t.Errorf("nfqfw check error location (-want +got):\n%s\n%s", diff, out)
			}
		})
	}
}

// installedOnce is what the kernel holds while one daemon with an
// IPv4+IPv6 config is installed: one jump from each built-in chain to its
// NFQFW chain, per family.
var installedOnce = map[string]int{
	"IPv4 INPUT -> NFQFW-INPUT": 1, "IPv4 FORWARD -> NFQFW-FORWARD": 1, "IPv4 OUTPUT -> NFQFW-OUTPUT": 1,
	"IPv6 INPUT -> NFQFW-INPUT": 1, "IPv6 FORWARD -> NFQFW-FORWARD": 1, "IPv6 OUTPUT -> NFQFW-OUTPUT": 1,
}

// nfqfwJumps counts the jumps from the filter table's built-in chains to
// NFQFW chains in ns, over both backends, by family. (The raw and nat
// tables have NFQFW chains of the same names for their own hooks.)
func nfqfwJumps(t *testing.T, ns *sandbox.Netns) map[string]int {
	t.Helper()
	jump := regexp.MustCompile(`^-A (INPUT|FORWARD|OUTPUT) .*-j (NFQFW-\S+)`)
	got := map[string]int{}
	for _, l := range nfqfwRules(t, ns) {
		cmd, rule, _ := strings.Cut(l, ": ")
		if !strings.HasSuffix(cmd, " filter") {
			continue
		}
		fam := "IPv4"
		if strings.HasPrefix(cmd, "ip6") {
			fam = "IPv6"
		}
		if m := jump.FindStringSubmatch(rule); m != nil {
			got[fam+" "+m[1]+" -> "+m[2]]++
		}
	}
	return got
}

// checkInstalledOnce fails t unless ns holds each of nfqfw's jumps once
// (installedOnce); when says at which point of the test.
func checkInstalledOnce(t *testing.T, ns *sandbox.Netns, when string) {
	t.Helper()
	if diff := cmp.Diff(installedOnce, nfqfwJumps(t, ns)); diff != "" {
		t.Errorf("jumps to NFQFW chains %s (-want +got):\n%s", when, diff)
	}
}

// TestLifecycle: the daemon installs its chains once, removes them all on
// SIGTERM; a crash (SIGKILL) leaves them, and without queue bypass the
// kernel then drops every NEW flow while established connections go on;
// the next start removes the stale chains and installs exactly once.
func TestLifecycle(t *testing.T) {
	t.Run("SIGTERM removes every chain", func(t *testing.T) {
		sb, _, host := newHostLab(t)
		fw := startFirewall(t, host, exampleConfig(t, sb, "server.yaml"))
		checkInstalledOnce(t, host, "while running")
		fw.stop()
		if left := nfqfwRules(t, host); len(left) > 0 {
			t.Errorf("after SIGTERM, want no NFQFW rule in iptables-save or ip6tables-save, got:\n%s", strings.Join(left, "\n"))
		}
	})

	t.Run("after a crash NEW is dropped, established survives, restart installs once", func(t *testing.T) {
		sb, cli, host := newHostLab(t)
		h4, h6 := sb.Addr4(hostRole), sb.Addr6(hostRole)
		at := netip.AddrPortFrom
		serveTCP(t, host, 22)
		fw := startFirewall(t, host, exampleConfig(t, sb, "server.yaml")+"\nqueue: {bypass: false}\n")
		talk := converse(t, cli, at(h4, 22))

		fw.kill()
		checkInstalledOnce(t, host, "left by the crashed daemon")
		runProbes(t, sb, cli, []probe{
			{name: "no daemon: new ssh is dropped", kind: tcpConnect, dst: at(h4, 22), want: timedOut},
			{name: "no daemon: new ssh over IPv6 is dropped", kind: tcpConnect, dst: at(h6, 22), want: timedOut},
			{name: "no daemon: ping is dropped", kind: icmpEcho, dst: at(h4, 0), want: timedOut},
		})
		talk.check(t, "with no daemon running")

		fw.start()
		checkInstalledOnce(t, host, "after the restart")
		runProbes(t, sb, cli, []probe{
			{name: "restarted: new ssh", kind: tcpConnect, dst: at(h4, 22), want: connected},
			{name: "restarted: ping", kind: icmpEcho, dst: at(h4, 0), want: answered},
		})
		talk.check(t, "after the restart")
		fw.stop()
	})
}

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs scripts/demo.sh (make demo without its install and build)
// with the binary under test and holds it to what it says: each probe's
// outcome as the client saw it, the logged drop, and the INVALID packet
// the kernel dropped itself apart from the refusals nfqfw counted.
func TestDemo(t *testing.T) {
	requireSandbox(t, "bash", "hping3", "socat", "nc", "curl", "ping", "timeout")
	t.Parallel()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "demo.sh"))
	cmd.Env = append(os.Environ(), "NFQFW_BIN="+nfqfwBin)
	cmd.WaitDelay = 5 * time.Second
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("scripts/demo.sh: %v\n%s", err, out)
	}

	// "  DESCRIPTION    -> RESULT": what the client saw, per probe.
	seen := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^  (\S.*?)\s+-> (.*)$`).FindAllStringSubmatch(out, -1) {
		seen[m[1]] = m[2]
	}
	for probe, want := range map[string]string{
		"tcp 22 (ssh, allowed)":                   "connected",
		"tcp 80 (web, allowed)":                   "connected",
		"udp 53 (dns, allowed)":                   "answered",
		"ping (echo request, allowed)":            "reply",
		"tcp 8080 (listening, not in the policy)": "connection refused",
		"udp 5353 (listening, not in the policy)": "ICMP Port Unreachable",
		"GRE (a protocol no rule names)":          "ICMP Protocol Unreachable",
		"tcp 23 (telnet, dropped and logged)":     "no answer (dropped)",
		"a TCP XMAS probe to port 23 (INVALID)":   "no answer (dropped)",
		"tcp 8080 again, without nfqfw":           "connected",
	} {
		if got, ok := seen[probe]; !ok || !strings.HasPrefix(got, want) {
			t.Errorf("%s: the demo says %q, want %q", probe, got, want)
		}
	}
	for _, want := range []string{
		"The kernel itself: 1 packet(s) dropped as INVALID",
		"nfqfw: 4 refusal(s) decided in the queue and counted",
		`msg=packet prefix="DEMO-DROP " action=drop rule=telnet reason=rule chain=input in=veth-gc`,
		`nfqfw_packets_total{action="drop",chain="input",rule="telnet"} 1`,
		"before, 0 after",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo does not say %q", want)
		}
	}
	if t.Failed() {
		t.Logf("scripts/demo.sh:\n%s", out)
	}
}

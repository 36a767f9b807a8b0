package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Require skips t when the sandbox cannot be built here: not root, or one of
// the tools (iproute2's ip plus the extra ones named) missing. When the
// environment variable CI is "true" it fails instead, so CI never passes by
// skipping.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	if reason := missing(tools); reason != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("privileged test cannot run in CI: %s", reason)
		}
		t.Skipf("skipping privileged test: %s", reason)
	}
}

// missing returns why the sandbox cannot run, or "" when it can.
func missing(tools []string) string {
	if os.Geteuid() != 0 {
		return "needs root (network namespaces, iptables)"
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			return "tool " + tool + " not found in PATH"
		}
	}
	return ""
}

// NATSServerBin returns the nats-server that scripts/install-deps.sh
// installs: on PATH, or in $(go env GOPATH)/bin. It needs no root: the
// fleet's unit tests run it on loopback. Missing, the test fails when
// CI=true and skips elsewhere, saying how to install it.
func NATSServerBin(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "nats-server")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nats-server not found: run scripts/install-deps.sh (make deps)")
	}
	t.Skip("nats-server not found: run scripts/install-deps.sh (make deps)")
	return ""
}

package sandbox

import (
	"os"
	"os/exec"
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

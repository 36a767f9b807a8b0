package packaging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is the module root: this package lives in scripts/packaging.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found above %s: %v", root, err)
	}
	return root
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// TestMain removes the binary nfqfwBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// nfqfwBinary builds cmd/nfqfw from the working tree once per test run and
// returns its path.
func nfqfwBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "nfqfw-packaging-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "nfqfw")
		var out []byte
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/nfqfw")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, binErr = cmd.CombinedOutput()
		if binErr != nil {
			binErr = fmt.Errorf("go build ./cmd/nfqfw: %v\n%s", binErr, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// result is what one command did.
type result struct {
	stdout, stderr string
	code           int
}

// run runs argv in dir with env added to this process's environment,
// bounded by timeout. A failure to start is fatal; a non-zero exit is
// returned in code.
func run(t testing.TB, dir string, env []string, timeout time.Duration, argv ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("%s: no exit within %s\nstdout:\n%s\nstderr:\n%s", strings.Join(argv, " "), timeout, r.stdout, r.stderr)
	}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s: %v", strings.Join(argv, " "), err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// skipOrFail skips with reason, except in CI (CI=true), where what is
// missing must be there: it fails.
func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: cannot skip: %s", reason)
	}
	t.Skip(reason)
}

// requireRoot skips (fails in CI) when not root.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root (network namespaces, capabilities)")
	}
}

// requireTool skips (fails in CI) when name is not in PATH.
func requireTool(t testing.TB, name, why string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, name+" not installed: "+why)
	}
	return p
}

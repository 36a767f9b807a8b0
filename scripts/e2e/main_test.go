package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// nfqfwBin is the nfqfw binary under test, built once by TestMain.
var nfqfwBin string

// buildTimeout bounds the build of the binary.
const buildTimeout = 3 * time.Minute

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nfqfw-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(1)
	}
	nfqfwBin = filepath.Join(dir, "nfqfw")
	if err := build(nfqfwBin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles cmd/nfqfw to out, the way `make build` does.
func build(out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	// go test puts its own toolchain first in PATH.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "github.com/nfqfw/nfqfw/cmd/nfqfw")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build nfqfw: %v: %s", err, b)
	}
	return nil
}

package iptables

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/nfqfw/nfqfw/rules"
)

// detectTimeout bounds the commands DetectBackend runs.
const detectTimeout = 10 * time.Second

// commandTimeout bounds every iptables command, whatever its caller's
// context: a restore waiting for the xtables lock another tool holds, or a
// hung binary, is killed and reported instead of stalling a reload.
const commandTimeout = 30 * time.Second

// DetectBackend returns the iptables backend to install with.
//
// For rules.BackendLegacy and rules.BackendNft it looks the binaries up in
// PATH. For rules.BackendAuto it takes the flavour `iptables -V` reports
// ("(nf_tables)" or "(legacy)"), unless only the other flavour already holds
// NFQFW chains (left by an earlier run): then it takes that one, so that
// Install cleans them up instead of leaving two rulesets hooked. The error
// names the first missing binary.
func DetectBackend(want rules.Backend) (Backend, error) {
	ctx, cancel := context.WithTimeout(context.Background(), detectTimeout)
	defer cancel()
	return detect(ctx, want, nil)
}

func detect(ctx context.Context, want rules.Backend, prefix []string) (Backend, error) {
	switch want {
	case rules.BackendLegacy, rules.BackendNft:
		return lookup(want, prefix)
	case rules.BackendAuto, "":
	default:
		return Backend{}, fmt.Errorf("detect iptables backend %q: unknown: %w", want, ErrBackend)
	}
	def, other := rules.BackendNft, rules.BackendLegacy
	if v, err := run(ctx, nil, "", "iptables", "-V"); err == nil && strings.Contains(v, "(legacy)") {
		def, other = rules.BackendLegacy, rules.BackendNft
	}
	b, err := lookup(def, prefix)
	if err != nil {
		return Backend{}, err
	}
	o, err := lookup(other, prefix)
	if err != nil {
		return b, nil // the other flavour is not installed: it holds nothing
	}
	if !holdsOurs(ctx, b) && holdsOurs(ctx, o) {
		return o, nil
	}
	return b, nil
}

// lookup finds kind's four binaries.
func lookup(kind rules.Backend, prefix []string) (Backend, error) {
	var paths [4]string
	for i, name := range binaries(kind) {
		p, err := exec.LookPath(name)
		if err != nil {
			return Backend{}, fmt.Errorf("detect iptables backend %s: %s not found: %w", kind, name, ErrBackend)
		}
		paths[i] = p
	}
	return Backend{Kind: kind, Restore4: paths[0], Restore6: paths[1], Save4: paths[2], Save6: paths[3], prefix: prefix}, nil
}

// holdsOurs reports whether b's tables hold an NFQFW chain, in either
// family. A save that fails counts as holding nothing.
func holdsOurs(ctx context.Context, b Backend) bool {
	for _, fam := range families {
		out, err := run(ctx, b.prefix, "", b.save(fam))
		if err == nil && strings.Contains(out, "\n:"+ChainPrefix) {
			return true
		}
	}
	return false
}

// run runs name with args (through prefix, when set), stdin as its input,
// and returns its standard output, killing it after commandTimeout. A
// failure returns an *exec.ExitError wrapped with the command and its
// trimmed standard error.
func run(ctx context.Context, prefix []string, stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	argv := append(append(append([]string(nil), prefix...), name), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &cmdError{cmd: name, stderr: strings.TrimSpace(stderr.String()), err: err}
	}
	return stdout.String(), nil
}

// cmdError is a failed command with its standard error.
type cmdError struct {
	cmd    string
	stderr string
	err    error
}

func (e *cmdError) Error() string {
	if e.stderr == "" {
		return e.cmd + ": " + e.err.Error()
	}
	return e.cmd + ": " + e.err.Error() + ": " + e.stderr
}

func (e *cmdError) Unwrap() error { return e.err }

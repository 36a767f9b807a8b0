package main

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
	"golang.org/x/sys/unix"
)

// TestCommandLineErrors: every wrong command line says what is wrong, and
// run refuses a bad flag before it reads the config (the config path does
// not exist, so an error about it would mean the flags came too late).
func TestCommandLineErrors(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none.yaml")
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // stderr prefix
	}{
		{"stray argument to run", []string{"run", "-c", none, "now"}, 2, "nfqfw run: unexpected argument \"now\" (this command takes flags only)\n\nUsage: nfqfw run"},
		{"stray argument to check", []string{"check", "-c", none, "x.yaml"}, 2, "nfqfw check: unexpected argument \"x.yaml\""},
		{"stray argument to state", []string{"state", "-s", sock, "tcp"}, 2, "nfqfw state: unexpected argument \"tcp\""},
		{"unknown backend", []string{"run", "-c", none, "--backend", "bogus"}, 2, "nfqfw run: --backend \"bogus\": want auto, legacy or nft\n"},
		{"pprof on every address", []string{"run", "-c", none, "--pprof", "0.0.0.0:6060"}, 2,
			"nfqfw run: --pprof \"0.0.0.0:6060\": only loopback addresses are allowed (127.0.0.1, [::1] or localhost)\n"},
		{"pprof without a port", []string{"run", "-c", none, "--pprof", "127.0.0.1"}, 2, "nfqfw run: --pprof \"127.0.0.1\": want a loopback HOST:PORT"},
		{"negative confirm", []string{"run", "-c", none, "--confirm", "-1m"}, 2, "nfqfw run: --confirm -1m0s: want a positive duration"},
		{"unknown state", []string{"state", "-s", sock, "--state", "bogus"}, 1,
			"nfqfw state: --state \"bogus\": want one of UNREPLIED, ASSURED, RELATED, SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2\n"},
		{"unknown protocol", []string{"state", "-s", sock, "--proto", "bogus"}, 1,
			"nfqfw state: --proto \"bogus\": want icmp, tcp, udp, dccp, gre, icmpv6, sctp, udplite or a number 0-255\n"},
		{"protocol number out of range", []string{"state", "-s", sock, "--proto", "300"}, 1, "nfqfw state: --proto \"300\": want icmp"},
		{"bad address", []string{"state", "-s", sock, "--addr", "10.1.1"}, 1, "nfqfw state: --addr \"10.1.1\": not an IPv4 or IPv6 address\n"},
		{"unknown family", []string{"rules", "-c", none, "-family", "ipx"}, 2, "nfqfw rules: -family \"ipx\": want ipv4 or ipv6\n"},
		{"knock-sequence without a name", []string{"knock-sequence", "-c", none}, 2, "nfqfw knock-sequence: want the name of one knock sequence, got 0 arguments"},
		{"ha without an action", []string{"ha", "-s", sock}, 2, "nfqfw ha: want one action: promote, demote or status\n\nUsage: nfqfw ha"},
		{"ha with an unknown action", []string{"ha", "-s", sock, "takeover"}, 2, "nfqfw ha: action \"takeover\": want promote, demote or status"},
		{"recent with two lists", []string{"recent", "-s", sock, "a", "b"}, 2, "nfqfw recent: at most one LIST, got \"a b\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tc.args...)
			if code != tc.code || !strings.HasPrefix(errOut, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stderr starting %q", code, out, errOut, tc.code, tc.want)
			}
		})
	}
}

// TestStateFilterValuesKnown: every protocol and state the error offers is
// accepted.
func TestStateFilterValuesKnown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{
		{"--proto", "TCP"}, {"--proto", "icmpv6"}, {"--proto", "47"},
		{"--state", "established"}, {"--state", "UNREPLIED"}, {"--state", "SYN_SENT2"},
	} {
		_, errOut, code := runCLI(t, append([]string{"state", "-s", sock}, args...)...)
		if code != 1 || !strings.Contains(errOut, "daemon is not running") {
			t.Errorf("state %v: exit %d, stderr %q; want only the daemon missing", args, code, errOut)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		out, errOut, code := runCLI(t, arg)
		if code != 0 || !strings.HasPrefix(out, "nfqfw ") || errOut != "" {
			t.Errorf("nfqfw %s: exit %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
	}
}

// TestRunNeedsNetAdmin runs "nfqfw run" on a thread without CAP_NET_ADMIN:
// it says so before anything else, not "queue already bound".
func TestRunNeedsNetAdmin(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none.yaml")
	type result struct {
		stderr string
		code   int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		// Capabilities belong to a thread: drop CAP_NET_ADMIN on this
		// one, which is never unlocked, so it ends with the goroutine.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- result{err: err}
			return
		}
		data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- result{err: err}
			return
		}
		_, errOut, code := runCLI(t, "run", "-c", none)
		done <- result{stderr: errOut, code: code}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("drop CAP_NET_ADMIN: %v", r.err)
	}
	if want := "nfqfw run: needs root (CAP_NET_ADMIN)\n"; r.code != 1 || r.stderr != want {
		t.Errorf("exit %d, stderr %q; want 1, %q", r.code, r.stderr, want)
	}
	if os.Geteuid() == 0 {
		// This thread kept its capability: the check passes and the
		// missing config is what fails.
		if _, errOut, _ := runCLI(t, "run", "-c", none); !strings.Contains(errOut, "no such file") {
			t.Errorf("as root: stderr %q, want the missing config", errOut)
		}
	}
}

// TestCheckHostInterfaces: check warns about a name no interface of this
// host carries and exits 0 (it may run on another machine than the
// firewall); with --strict-host that is an error.
func TestCheckHostInterfaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.yaml")
	yaml := "zones: {uplink: [lo]}\ninput:\n  rules:\n    - {in: uplnk, proto: tcp, dport: 22, action: accept}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	const unknown = `:4: input.rules[0].in: "uplnk" is neither a zone nor an interface present on this host (did you mean zone "uplink"?); present: `
	out, errOut, code := runCLI(t, "check", "-c", path)
	if code != 0 || !strings.HasPrefix(out, "warning: "+path+unknown) ||
		!strings.Contains(out, path+": ok (1 rules, hash ") || !strings.HasSuffix(out, "; warnings: 1, names absent from this host, which run and reload refuse here (--strict-host makes them errors)\n") {
		t.Errorf("check: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = runCLI(t, "check", "--strict-host", "-c", path)
	if code != 1 || out != "" || !strings.HasPrefix(errOut, "nfqfw check: "+path+unknown) {
		t.Errorf("check --strict-host: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestWaitInterfaces: run --wait-interfaces polls until the config's
// interfaces are present, and gives up when its time has passed.
func TestWaitInterfaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.yaml")
	if err := os.WriteFile(path, []byte("zones: {uplink: [eth7]}\ninput:\n  rules:\n    - {in: uplink, action: accept}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	polls := 0
	appearing := func() ([]string, error) { // eth7 comes with the third poll
		polls++
		if polls < 3 {
			return []string{"lo"}, nil
		}
		return []string{"eth7", "lo"}, nil
	}
	var log strings.Builder
	waitInterfaces(t.Context(), path, time.Minute, appearing, &log)
	if polls != 3 || !strings.HasPrefix(log.String(), "nfqfw run: waiting up to 1m0s for 1 absent interfaces; the first: "+path+":1: zones.uplink[0]: interface \"eth7\"") {
		t.Errorf("%d polls, log %q; want 3 polls and the wait announced", polls, log.String())
	}
	polls = 0
	never := func() ([]string, error) { polls++; return []string{"lo"}, nil }
	waitInterfaces(t.Context(), path, 400*time.Millisecond, never, io.Discard)
	if polls != 3 {
		t.Errorf("%d polls in 400ms at one per 200ms, want 3", polls)
	}
}

// TestMain runs the tests on the identity clock: they compare times built from fixed dates exactly.
func TestMain(m *testing.M) {
	clock.Set(clock.Identity{})
	os.Exit(m.Run())
}

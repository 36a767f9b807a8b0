package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/knock"
	"github.com/nfqfw/nfqfw/rules"
)

func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// knockT0 is when the scenario of the knock-status tests starts.
var knockT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// knockConfig is the configuration the knock CLI tests use. A rotating
// sequence gives only protocols.
const knockConfig = `
knocks:
  - name: ssh
    steps: [tcp/7000, udp/8000, tcp/9000]
    step_window: 5s
    window: 15s
    open:
      - {proto: tcp, ports: [22]}
    open_for: 30s
  - name: vpn
    steps: [tcp, udp, tcp]
    secret: JBSWY3DPEHPK3PXP
    period: 30s
    open:
      - {proto: udp, ports: [1194], dst: [10.9.0.0/24]}
control:
  socket: SOCKET
`

// startKnockDaemon serves the knock handlers of a Knocker that has seen a
// few sources knock, on a socket under a temp directory, with its clock
// stopped at knockT0+10s. It returns the socket, the config file naming it
// and the Knocker.
func startKnockDaemon(t *testing.T) (string, string, *knock.Knocker, int64) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "nfqfw.sock")
	file := filepath.Join(dir, "nfqfw.yaml")
	if err := os.WriteFile(file, []byte(strings.Replace(knockConfig, "SOCKET", sock, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := rules.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	now := knockT0.Add(10 * time.Second)
	k := knock.New(cfg.Knocks, knock.WithClock(func() time.Time { return now }))
	a := func(s string) [16]byte { return netip.MustParseAddr(s).As16() }
	server := a("10.9.0.1")
	vpn := knock.Sequence(cfg.Knocks[1], knockT0)
	for _, p := range []struct {
		at    time.Duration
		src   string
		proto uint8
		port  uint16
	}{
		{1 * time.Second, "192.0.2.10", 6, 7000},
		{2 * time.Second, "192.0.2.10", 17, 8000},
		{3 * time.Second, "192.0.2.10", 6, 9000}, // ssh open until 33 s
		{4 * time.Second, "198.51.100.7", 6, 7000},
		{5 * time.Second, "198.51.100.7", 6, 9000}, // a step out of order
		{6 * time.Second, "2001:db8::42", 6, 7000},
		{7 * time.Second, "2001:db8::42", 17, 8000}, // 2/3 until 12 s
		{8 * time.Second, "2001:db8::42", vpn[0].Proto, vpn[0].Port},
		{9 * time.Second, "2001:db8::42", vpn[1].Proto, vpn[1].Port},
		{9 * time.Second, "2001:db8::42", vpn[2].Proto, vpn[2].Port}, // vpn open until 39 s
	} {
		k.Observe(a(p.src), server, true, p.proto, p.port, knockT0.Add(p.at).UnixNano())
	}
	srv := control.NewServer(sock, nil)
	for cmd, h := range control.KnockHandlers(k) {
		srv.Handle(cmd, h)
	}
	serveControl(t, srv)
	return sock, file, k, now.UnixNano()
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = runMain(args, &o, &e)
	return o.String(), e.String(), code
}

func TestKnockStatusTable(t *testing.T) {
	sock, file, _, _ := startKnockDaemon(t)
	golden := filepath.Join("testdata", "knock-status.golden")
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"socket flag", []string{"knock-status", "-s", sock}},
		{"socket from config", []string{"knock-status", "-c", file}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if updateGolden() {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), out); diff != "" {
				t.Errorf("knock-status output (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKnockStatusJSON(t *testing.T) {
	sock, _, k, now := startKnockDaemon(t)
	out, errOut, code := runCLI(t, "knock-status", "-s", sock, "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got knock.Status
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if diff := cmp.Diff(k.Status(now), got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("knock-status --json (-want +got):\n%s", diff)
	}
}

func TestKnockStatusWatch(t *testing.T) {
	sock, _, _, _ := startKnockDaemon(t)
	c := commands["knock-status"]
	fs := newFlagSet(c, new(bytes.Buffer))
	if err := fs.Parse([]string{"-s", sock, "--watch"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	if err := c.run(ctx, fs.Args(), &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	if n := strings.Count(out.String(), clearScreen); n < 2 || n > 4 {
		t.Errorf("%d screens in 2.5 s, want 2 to 4:\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "In progress") {
		t.Errorf("watch output has no table:\n%s", out.String())
	}
}

func TestKnockStatusNotRunning(t *testing.T) {
	_, errOut, code := runCLI(t, "knock-status", "-s", filepath.Join(t.TempDir(), "none.sock"))
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{"daemon is not running", "nfqfw run"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q does not say %q", errOut, want)
		}
	}
}

func TestKnockSequence(t *testing.T) {
	_, file, _, _ := startKnockDaemon(t)
	tests := []struct {
		name     string
		args     []string
		want     string
		wantCode int
	}{
		{
			name: "static sequence prints its ports",
			args: []string{"knock-sequence", "-c", file, "ssh"},
			want: "7000:tcp 8000:udp 9000:tcp\n",
		},
		{
			// Pins the derivation: clients computing it elsewhere rely on it.
			name: "rotating sequence at a given time",
			args: []string{"knock-sequence", "-c", file, "--at", "2026-03-01T12:00:10Z", "vpn"},
			want: "30642:tcp 24760:udp 28249:tcp\n", // checked with Python hmac/hashlib
		},
		{
			name:     "unknown sequence",
			args:     []string{"knock-sequence", "-c", file, "nosuch"},
			wantCode: 1,
		},
		{
			name:     "no name",
			args:     []string{"knock-sequence", "-c", file},
			wantCode: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
			if diff := cmp.Diff(tt.want, out); tt.wantCode == 0 && diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

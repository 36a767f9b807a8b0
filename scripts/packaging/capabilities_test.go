package packaging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// TestDaemonRunsWithNetworkCapabilitiesOnly starts "nfqfw run" the way the
// systemd unit and the container image do — root, but with only
// CAP_NET_ADMIN and CAP_NET_RAW in the bounding set and no new privileges —
// inside a fresh network namespace, and checks it installs its chains,
// answers "nfqfw health", and removes its chains on SIGTERM, with each
// iptables backend (legacy needs CAP_NET_RAW for its raw socket).
// Privileged.
func TestDaemonRunsWithNetworkCapabilitiesOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon in a network namespace; not in -short")
	}
	sandbox.Require(t, "setpriv", "iptables-nft-save", "iptables-legacy-save")
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) { testDaemonCapabilities(t, backend) })
	}
}

func testDaemonCapabilities(t *testing.T, backend string) {
	bin := nfqfwBinary(t)
	ns := sandbox.NewNetns(t, "caps")

	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "nfqfw.sock")
	desktop, err := os.ReadFile(filepath.Join(repoRoot(t), "rules", "examples", "desktop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "nfqfw.yaml")
	extra := "\ncontrol:\n  socket: " + sock + "\nstate:\n  dir: " + filepath.Join(dir, "state") + "\n"
	if err := os.WriteFile(cfg, append(desktop, extra...), 0o600); err != nil {
		t.Fatal(err)
	}

	chains := func() string {
		var out strings.Builder
		for _, save := range []string{"iptables-nft-save", "iptables-legacy-save", "ip6tables-nft-save", "ip6tables-legacy-save"} {
			s, _ := ns.Exec(save)
			for _, line := range strings.Split(s, "\n") {
				if strings.HasPrefix(line, ":NFQFW") {
					out.WriteString(save + " " + line + "\n")
				}
			}
		}
		return out.String()
	}

	p := ns.Start("setpriv", "--no-new-privs",
		"--bounding-set=-all,+net_admin,+net_raw",
		"--inh-caps=-all,+net_admin,+net_raw",
		"--ambient-caps=-all,+net_admin,+net_raw",
		bin, "run", "-c", cfg, "--backend", backend)
	t.Cleanup(func() { p.Stop() })

	// Bounded wait for the control socket to answer.
	var h result
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 100 && time.Now().Before(deadline); i++ {
		h = run(t, "", nil, 5*time.Second, bin, "health", "-s", sock, "--timeout", "1s")
		if h.code == 0 {
			break
		}
		if p.Wait(200*time.Millisecond) != sandbox.ErrStillRunning {
			t.Fatalf("daemon exited with only CAP_NET_ADMIN and CAP_NET_RAW:\n%s", p.Output())
		}
	}
	if h.code != 0 {
		t.Fatalf("nfqfw health never answered: %s\ndaemon output:\n%s", h.stderr, p.Output())
	}
	if !strings.HasPrefix(h.stdout, "ok: nfqfw ") {
		t.Errorf("nfqfw health = %q, want \"ok: nfqfw ...\"", h.stdout)
	}
	if c := chains(); c == "" {
		t.Errorf("no NFQFW chain installed in the namespace\ndaemon output:\n%s", p.Output())
	}

	if err := p.Stop(); err != nil {
		t.Errorf("daemon exit after SIGTERM: %v\n%s", err, p.Output())
	}
	if c := chains(); c != "" {
		t.Errorf("chains left after SIGTERM:\n%s", c)
	}
	if h := run(t, "", nil, 5*time.Second, bin, "health", "-s", sock, "--timeout", "1s"); h.code != 1 || !strings.Contains(h.stderr, "not running") {
		t.Errorf("nfqfw health after stop: exit %d, stderr %q: want 1 and \"not running\"", h.code, h.stderr)
	}
}

package packaging

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// lockoutWarning is the line install.sh must always print.
const lockoutWarning = "*** Remote lockout warning ***"

// installed lists the files and symlinks under root with their modes
// (symlinks with their targets), relative to root.
func installed(t *testing.T, root string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			got[rel] = "-> " + target
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		got[rel] = info.Mode().Perm().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// baseInstall is what every successful install leaves under its root.
func baseInstall(t *testing.T) map[string]string {
	t.Helper()
	want := map[string]string{
		"usr/local/sbin/nfqfw":             "-rwxr-xr-x",
		"etc/systemd/system/nfqfw.service": "-rw-r--r--",
		"etc/nfqfw/nfqfw.yaml.example":     "-rw-------",
	}
	examples, err := filepath.Glob(filepath.Join(repoRoot(t), "rules", "examples", "*.yaml"))
	if err != nil || len(examples) == 0 {
		t.Fatalf("no example configs: %v", err)
	}
	for _, e := range examples {
		want["usr/local/share/doc/nfqfw/examples/"+filepath.Base(e)] = "-rw-r--r--"
	}
	return want
}

func TestInstallScript(t *testing.T) {
	bin := nfqfwBinary(t)
	script := filepath.Join(repoRoot(t), "scripts", "install.sh")
	unedited := filepath.Join(repoRoot(t), "rules", "examples", "server.yaml")
	// The server example with its sandbox interface changed to one every
	// host has, as the example's first line asks.
	example := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(example, []byte(strings.ReplaceAll(mustRead(t, unedited), "veth-sg", "lo")), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("input:\n  policy: maybe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, haveSystemctl := exec.LookPath("systemctl")
	enabledLink := "etc/systemd/system/multi-user.target.wants/nfqfw.service"

	with := func(base map[string]string, extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	base := baseInstall(t)

	tests := []struct {
		name         string
		preexisting  string // config content already at /etc/nfqfw/nfqfw.yaml
		args         []string
		sshFrom      string
		needSystemd  bool
		wantCode     int
		wantFiles    map[string]string
		wantOutput   []string // substrings of stdout+stderr
		wantConfigIs string   // file whose content the installed config must have
	}{
		{
			name:       "install without config: files, warning, next steps",
			wantFiles:  base,
			wantOutput: []string{lockoutWarning, "next: cp /etc/nfqfw/nfqfw.yaml.example /etc/nfqfw/nfqfw.yaml"},
		},
		{
			name:       "enable without config is refused before anything is installed",
			args:       []string{"--enable"},
			wantCode:   1,
			wantFiles:  map[string]string{},
			wantOutput: []string{lockoutWarning, "refusing to enable nfqfw.service: no config at /etc/nfqfw/nfqfw.yaml", "nothing installed"},
		},
		{
			name:       "start without config is refused too",
			args:       []string{"--start"},
			wantCode:   1,
			wantFiles:  map[string]string{},
			wantOutput: []string{"refusing to enable"},
		},
		{
			name:       "a config nfqfw check rejects is not installed",
			args:       []string{"--config", bad, "--enable"},
			wantCode:   1,
			wantFiles:  map[string]string{},
			wantOutput: []string{"rejected by nfqfw check (nothing installed)"},
		},
		{
			name:       "an example with interfaces this host lacks is not enabled",
			args:       []string{"--config", unedited, "--enable"},
			wantCode:   1,
			wantFiles:  map[string]string{},
			wantOutput: []string{`zones.uplink[0]: interface "veth-sg" is not present on this host`, "rejected by nfqfw check (nothing installed)"},
		},
		{
			name:         "a config for another host is enabled with --any-host",
			args:         []string{"--config", unedited, "--enable", "--any-host"},
			needSystemd:  true,
			wantFiles:    with(base, map[string]string{"etc/nfqfw/nfqfw.yaml": "-rw-------", enabledLink: "-> /etc/systemd/system/nfqfw.service"}),
			wantOutput:   []string{`warning: ` + unedited + `:11: zones.uplink[0]: interface "veth-sg" is not present on this host`, "enabled nfqfw.service"},
			wantConfigIs: unedited,
		},
		{
			name:         "config and enable: installed 0600, checked, enabled",
			args:         []string{"--config", example, "--enable"},
			sshFrom:      "192.0.2.10 51234 192.0.2.1 22",
			needSystemd:  true,
			wantFiles:    with(base, map[string]string{"etc/nfqfw/nfqfw.yaml": "-rw-------", enabledLink: "-> /etc/systemd/system/nfqfw.service"}),
			wantOutput:   []string{lockoutWarning, "connected over SSH from 192.0.2.10", "nfqfw.yaml: ok", "enabled nfqfw.service"},
			wantConfigIs: example,
		},
		{
			name:         "an existing config is never replaced",
			preexisting:  mustRead(t, filepath.Join(repoRoot(t), "rules", "examples", "desktop.yaml")),
			args:         []string{"--config", example, "--enable"},
			needSystemd:  true,
			wantFiles:    with(base, map[string]string{"etc/nfqfw/nfqfw.yaml": "-rw-------", enabledLink: "-> /etc/systemd/system/nfqfw.service"}),
			wantOutput:   []string{"kept the existing", "enabled nfqfw.service"},
			wantConfigIs: filepath.Join(repoRoot(t), "rules", "examples", "desktop.yaml"),
		},
		{
			name:        "an existing config that check rejects blocks enabling",
			preexisting: "input:\n  policy: maybe\n",
			args:        []string{"--enable"},
			wantCode:    1,
			wantFiles:   with(base, map[string]string{"etc/nfqfw/nfqfw.yaml": "-rw-------"}),
			wantOutput:  []string{"refusing to enable nfqfw.service: nfqfw check rejects"},
		},
		{
			name:       "a missing binary is named",
			args:       []string{"--binary", "/nonexistent/nfqfw"},
			wantCode:   1,
			wantFiles:  map[string]string{},
			wantOutput: []string{`no binary at /nonexistent/nfqfw: run "make build" first`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needSystemd && haveSystemctl != nil {
				t.Skip("systemctl not installed: enabling under --root needs systemctl --root")
			}
			root := t.TempDir()
			if tt.preexisting != "" {
				if err := os.MkdirAll(filepath.Join(root, "etc", "nfqfw"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, "etc", "nfqfw", "nfqfw.yaml"), []byte(tt.preexisting), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{"bash", script, "--root", root, "--binary", bin}, tt.args...)
			r := run(t, root, []string{"SSH_CONNECTION=" + tt.sshFrom}, 2*time.Minute, args...)
			out := r.stdout + r.stderr
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\n%s", r.code, tt.wantCode, out)
			}
			for _, w := range tt.wantOutput {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			got := installed(t, root)
			if tt.preexisting != "" && tt.wantFiles["etc/nfqfw/nfqfw.yaml"] == "" {
				delete(got, "etc/nfqfw/nfqfw.yaml")
			}
			if diff := cmp.Diff(tt.wantFiles, got); diff != "" {
				t.Errorf("files under --root (-want +got):\n%s", diff)
			}
			if tt.wantConfigIs != "" {
				if g, w := mustRead(t, filepath.Join(root, "etc", "nfqfw", "nfqfw.yaml")), mustRead(t, tt.wantConfigIs); g != w {
					t.Errorf("installed config is not %s", tt.wantConfigIs)
				}
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestInstallScriptNeedsRoot: without --root, an unprivileged user is told
// to use root before anything happens.
func TestInstallScriptNeedsRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: the refusal is for unprivileged users")
	}
	r := run(t, "", nil, time.Minute, "bash", filepath.Join(repoRoot(t), "scripts", "install.sh"), "--binary", nfqfwBinary(t))
	if r.code != 1 || !strings.Contains(r.stderr, "run as root") {
		t.Errorf("exit %d, stderr %q: want 1 and \"run as root\"", r.code, r.stderr)
	}
}

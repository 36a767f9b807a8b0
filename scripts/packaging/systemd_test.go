package packaging

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/rules"
)

// installedBinary is where the unit (and scripts/install.sh) put nfqfw.
const installedBinary = "/usr/local/sbin/nfqfw"

// maxExposure is the highest "systemd-analyze security" exposure the unit
// may have (measured 3.8 with systemd 252: root with CAP_NET_ADMIN on the
// host's network is what a firewall is). A change that loosens the sandbox
// raises it.
const maxExposure = 4.0

// unitFile is a parsed systemd unit: section -> key -> values in order
// (a key may repeat; an empty assignment is kept, it resets the list).
type unitFile map[string]map[string][]string

// parseUnit reads a unit or drop-in file.
func parseUnit(path string) (unitFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := unitFile{}
	var section string
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("%s:%d: not key=value in a section: %q", path, n, line)
			}
			if strings.HasSuffix(v, `\`) {
				return nil, fmt.Errorf("%s:%d: continuation lines are not used in nfqfw's units", path, n)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u, sc.Err()
}

// get returns the last value of key (what systemd uses for a single-valued
// setting), "" if unset.
func (u unitFile) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// words returns every space-separated word of key's values.
func (u unitFile) words(section, key string) []string {
	var out []string
	for _, v := range u[section][key] {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// unitPaths returns the unit and its drop-ins in scripts/systemd.
func unitPaths(t testing.TB) (unit string, dropins []string) {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "scripts", "systemd")
	dropins, err := filepath.Glob(filepath.Join(dir, "nfqfw.service.d", "*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "nfqfw.service"), dropins
}

func TestSystemdUnitSettings(t *testing.T) {
	unit, _ := unitPaths(t)
	u, err := parseUnit(unit)
	if err != nil {
		t.Fatal(err)
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	tests := []struct {
		section, key string
		want         []string // every one of these among the key's words
		exact        bool     // and nothing else
	}{
		{"Unit", "DefaultDependencies", []string{"no"}, true},
		{"Unit", "Wants", []string{"network-pre.target"}, false},
		{"Unit", "Before", []string{"network-pre.target", "shutdown.target"}, false},
		{"Unit", "After", []string{"local-fs.target"}, false},
		{"Unit", "Conflicts", []string{"shutdown.target"}, false},
		{"Service", "Type", []string{"notify"}, true},
		{"Service", "NotifyAccess", []string{"main"}, true},
		{"Service", "WatchdogSec", []string{"30s"}, true},
		{"Service", "SuccessExitStatus", []string{"75"}, true},
		{"Service", "RestartForceExitStatus", []string{"75"}, true},
		{"Service", "Restart", []string{"on-failure"}, true},
		{"Service", "KillMode", []string{"mixed"}, true},
		{"Service", "KillSignal", []string{"SIGUSR2"}, true},
		{"Service", "ExecStopPost", []string{"/usr/local/sbin/nfqfw", "remove", "--systemd-unit", "%n"}, false},
		{"Service", "StandardOutput", []string{"journal"}, true},
		{"Service", "SyslogIdentifier", []string{"nfqfw"}, true},
		{"Service", "StateDirectory", []string{"nfqfw"}, true},
		{"Service", "RuntimeDirectory", []string{"nfqfw"}, true},
		{"Service", "CapabilityBoundingSet", []string{"CAP_NET_ADMIN", "CAP_NET_RAW"}, true},
		{"Service", "AmbientCapabilities", []string{"CAP_NET_ADMIN", "CAP_NET_RAW"}, true},
		{"Service", "NoNewPrivileges", []string{"yes"}, true},
		{"Service", "ProtectSystem", []string{"strict"}, true},
		{"Service", "ReadWritePaths", []string{"/run"}, true},
		{"Service", "ProtectHome", []string{"yes"}, true},
		{"Service", "PrivateTmp", []string{"yes"}, true},
		{"Service", "ProtectKernelModules", []string{"yes"}, true},
		{"Service", "RestrictAddressFamilies", []string{"AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"}, true},
		{"Service", "SystemCallArchitectures", []string{"native"}, true},
		{"Service", "LockPersonality", []string{"yes"}, true},
		{"Service", "MemoryDenyWriteExecute", []string{"yes"}, true},
		{"Install", "WantedBy", []string{"multi-user.target"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.section+"."+tt.key, func(t *testing.T) {
			got := u.words(tt.section, tt.key)
			if tt.exact {
				if diff := cmp.Diff(sorted(tt.want), sorted(got)); diff != "" {
					t.Errorf("[%s] %s (-want +got):\n%s", tt.section, tt.key, diff)
				}
				return
			}
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("[%s] %s = %v, want it to include %s", tt.section, tt.key, got, w)
				}
			}
		})
	}

	// The directories systemd creates are the daemon's defaults, with the
	// example config install.sh installs.
	t.Run("directories match the daemon's defaults", func(t *testing.T) {
		c, err := rules.Load(filepath.Join(repoRoot(t), "rules", "examples", "server.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if want := "/run/" + u.get("Service", "RuntimeDirectory"); filepath.Dir(c.Control.Socket) != want {
			t.Errorf("control socket %s is not in RuntimeDirectory %s", c.Control.Socket, want)
		}
		if want := "/var/lib/" + u.get("Service", "StateDirectory"); c.State.Dir != want {
			t.Errorf("state dir %s is not StateDirectory %s", c.State.Dir, want)
		}
	})
}

// execLine is one Exec*= command of the unit or a drop-in.
type execLine struct {
	where, key string
	argv       []string // ${VAR} expanded from Environment=
}

// execLines lists the Exec*= commands of the unit and its drop-ins, with
// Environment= expanded: the unit's, and a drop-in's own on top for its
// lines (each drop-in is an example on its own).
func execLines(t testing.TB) []execLine {
	t.Helper()
	unit, dropins := unitPaths(t)
	base := map[string]string{}
	var out []execLine
	for _, p := range append([]string{unit}, dropins...) {
		u, err := parseUnit(p)
		if err != nil {
			t.Fatal(err)
		}
		env := maps.Clone(base)
		for _, e := range u.words("Service", "Environment") {
			k, v, _ := strings.Cut(e, "=")
			env[k] = v
		}
		if p == unit {
			base = env
		}
		first := len(out)
		for _, key := range []string{"ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPost"} {
			for _, v := range u["Service"][key] {
				if v == "" {
					continue // resets the list
				}
				argv := strings.Fields(strings.TrimLeft(v, "-+@!:"))
				out = append(out, execLine{where: filepath.Base(p), key: key, argv: argv})
			}
		}
		for _, l := range out[first:] {
			for j, a := range l.argv {
				l.argv[j] = os.Expand(a, func(k string) string { return env[k] })
			}
		}
	}
	return out
}

// TestSystemdExecLines checks every Exec*= command of the unit and its
// drop-ins against the binary: the subcommand exists and every flag it
// passes is one of that subcommand's flags. The start check runs for real
// against the example config.
func TestSystemdExecLines(t *testing.T) {
	bin := nfqfwBinary(t)
	lines := execLines(t)
	if len(lines) == 0 {
		t.Fatal("the unit has no Exec lines")
	}
	for _, l := range lines {
		t.Run(l.where+"/"+l.key+"/"+strings.Join(l.argv[1:], "_"), func(t *testing.T) {
			if l.argv[0] != installedBinary {
				t.Fatalf("%s runs %s, want %s (where install.sh puts it)", l.key, l.argv[0], installedBinary)
			}
			if len(l.argv) < 2 {
				t.Fatalf("%s: no subcommand", l.key)
			}
			sub := l.argv[1]
			help := run(t, "", nil, 10*time.Second, bin, "help", sub)
			if !strings.HasPrefix(help.stdout, "Usage: nfqfw "+sub+" ") {
				t.Fatalf("nfqfw help %s: %q: not a subcommand", sub, help.stdout)
			}
			flags := helpFlags(help.stdout)
			for _, a := range l.argv[2:] {
				if !strings.HasPrefix(a, "-") {
					continue
				}
				name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				if _, ok := flags[name]; !ok {
					t.Errorf("%s passes %s, not a flag of nfqfw %s (flags: %v)", l.key, a, sub, slices.Sorted(mapKeys(flags)))
				}
			}
		})
	}

	t.Run("the start check accepts the example config", func(t *testing.T) {
		for _, l := range lines {
			if l.key != "ExecStartPre" {
				continue
			}
			argv := slices.Clone(l.argv)
			argv[0] = bin
			for i, a := range argv {
				if a == "/etc/nfqfw/nfqfw.yaml" {
					argv[i] = filepath.Join(repoRoot(t), "rules", "examples", "server.yaml")
				}
			}
			if r := run(t, "", nil, 30*time.Second, argv...); r.code != 0 {
				t.Errorf("%s: exit %d: %s%s", strings.Join(argv, " "), r.code, r.stdout, r.stderr)
			}
		}
	})
	t.Run("the start check fails without a config", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nfqfw.yaml")
		r := run(t, "", nil, 30*time.Second, bin, "check", "-c", missing)
		if r.code == 0 || !strings.Contains(r.stderr, missing) {
			t.Errorf("check -c %s: exit %d, stderr %q: want a failure naming the file", missing, r.code, r.stderr)
		}
	})
}

func mapKeys[M ~map[K]V, K comparable, V any](m M) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// helpFlagRe matches a flag line of flag.PrintDefaults: "  -name" or
// "  -name type", optionally with the description on the same line.
var helpFlagRe = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9-]*)(?:\s+(.*))?$`)

// helpFlags returns the flags a command's help lists, with their
// descriptions (flag.PrintDefaults puts them on the next line, indented by
// a tab, for all but one-letter boolean flags).
func helpFlags(help string) map[string]string {
	flags := map[string]string{}
	_, section, ok := strings.Cut(help, "\nFlags:\n")
	if !ok {
		return flags
	}
	var last string
	for _, line := range strings.Split(section, "\n") {
		if m := helpFlagRe.FindStringSubmatch(line); m != nil {
			last = m[1]
			flags[last] = ""
			// a one-letter bool: "  -x\tdescription"
			if _, desc, ok := strings.Cut(line, "\t"); ok {
				flags[last] = strings.TrimSpace(desc)
			}
			continue
		}
		if strings.HasPrefix(line, "    \t") && last != "" {
			flags[last] = strings.TrimSpace(flags[last] + " " + strings.TrimSpace(line))
		}
	}
	return flags
}

// TestSystemdAnalyzeVerify has systemd load the unit with every drop-in:
// any warning (unknown key, bad value, missing binary) fails.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd); TestSystemdUnitSettings and TestSystemdExecLines still check the unit")
	}
	bin := nfqfwBinary(t)
	unit, dropins := unitPaths(t)
	dir := t.TempDir()
	// The Exec paths must exist for verify: point them at the test binary.
	rewrite := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte(strings.ReplaceAll(string(b), installedBinary, bin)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rewrite(unit, filepath.Join(dir, "nfqfw.service"))
	for _, d := range dropins {
		rewrite(d, filepath.Join(dir, "nfqfw.service.d", filepath.Base(d)))
	}
	target := filepath.Join(dir, "nfqfw.service")

	r := run(t, dir, nil, time.Minute, analyze, "verify", "--man=no", target)
	if r.code != 0 || strings.TrimSpace(r.stderr+r.stdout) != "" {
		t.Errorf("systemd-analyze verify (unit + %d drop-ins): exit %d\n%s%s", len(dropins), r.code, r.stdout, r.stderr)
	}

	t.Run("exposure", func(t *testing.T) {
		r := run(t, dir, nil, time.Minute, analyze, "security", "--offline=yes", "--no-pager", target)
		m := regexp.MustCompile(`Overall exposure level for nfqfw.service: ([0-9.]+)`).FindStringSubmatch(r.stdout + r.stderr)
		if m == nil {
			t.Skipf("systemd-analyze security --offline is not supported here (systemd >= 252): exit %d %s", r.code, strings.TrimSpace(r.stderr))
		}
		got, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("systemd-analyze security: exposure %.1f", got)
		if got > maxExposure {
			t.Errorf("exposure %.1f > %.1f: the sandbox got looser\n%s", got, maxExposure, r.stdout)
		}
	})
}

package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// The package tools install-deps.sh drives, played by shell scripts on
// PATH: dpkg-query reports the packages of $FAKE_MISSING missing; apt-get
// logs its arguments, refuses the lock while $FAKE_LOCKED counts down, and
// on install records what policy-rc.d answers and enables a service the
// way a daemon's package does (a systemd .wants link and SysV S links).
const (
	fakeDpkgQuery = `#!/bin/sh
pkg=$(eval echo "\${$#}")
case " $FAKE_MISSING " in *" $pkg "*) exit 1 ;; esac
printf 'install ok installed'
`
	fakeAptGet = `#!/bin/sh
echo "apt-get $*" >>"$FAKE_LOG"
n=$(cat "$FAKE_LOCKED" 2>/dev/null || echo 0)
if [ "$n" -gt 0 ]; then
	echo $((n - 1)) >"$FAKE_LOCKED"
	echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2
	echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
	exit 100
fi
case " $* " in *" install "*)
	"$DEPS_ROOT/usr/sbin/policy-rc.d" vsftpd start
	echo "policy-rc.d answered $?" >>"$FAKE_LOG"
	mkdir -p "$DEPS_ROOT/etc/systemd/system/multi-user.target.wants" "$DEPS_ROOT/etc/rc2.d" "$DEPS_ROOT/etc/rc3.d"
	ln -s /lib/systemd/system/vsftpd.service "$DEPS_ROOT/etc/systemd/system/multi-user.target.wants/vsftpd.service"
	ln -s ../init.d/vsftpd "$DEPS_ROOT/etc/rc2.d/S01vsftpd"
	ln -s ../init.d/vsftpd "$DEPS_ROOT/etc/rc3.d/S01vsftpd"
	;;
esac
`
	fakeSleep = "#!/bin/sh\nexit 0\n"
)

// depsHost is a fake host for install-deps.sh: a root with one service the
// administrator enabled and a policy-rc.d of their own, and the fake tools.
type depsHost struct {
	root, log, locked string
	env               []string
}

func newDepsHost(t *testing.T, missing string) depsHost {
	t.Helper()
	dir := t.TempDir()
	h := depsHost{root: filepath.Join(dir, "root"), log: filepath.Join(dir, "apt.log"), locked: filepath.Join(dir, "locked")}
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{bin, h.root + "/usr/sbin", h.root + "/etc/systemd/system/multi-user.target.wants", h.root + "/etc/rc2.d"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		bin + "/dpkg-query":              fakeDpkgQuery,
		bin + "/apt-get":                 fakeAptGet,
		bin + "/sleep":                   fakeSleep,
		h.root + "/usr/sbin/policy-rc.d": "#!/bin/sh\n# the administrator's own\nexit 0\n",
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"/etc/systemd/system/multi-user.target.wants/ssh.service": "/lib/systemd/system/ssh.service",
		"/etc/rc2.d/S01ssh": "../init.d/ssh",
	} {
		if err := os.Symlink(target, h.root+link); err != nil {
			t.Fatal(err)
		}
	}
	h.env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "DEPS_ROOT=" + h.root, "FAKE_LOG=" + h.log,
		"FAKE_LOCKED=" + h.locked, "FAKE_MISSING=" + missing}
	return h
}

func (h depsHost) run(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, repoRoot(t), h.env, time.Minute, append([]string{"bash", "scripts/install-deps.sh"}, args...)...)
}

// links lists the symlinks under the fake root.
func (h depsHost) links(t *testing.T) []string {
	t.Helper()
	var got []string
	for path, mode := range installed(t, h.root) {
		if strings.HasPrefix(mode, "-> ") {
			got = append(got, path)
		}
	}
	sort.Strings(got)
	return got
}

// TestInstallDepsStartsNoService installs a daemon's package through
// install-deps.sh on the fake host, with apt's lock held by another
// process for its first two tries: it waits for the lock, installs only the
// missing package without recommendations while policy-rc.d forbids every
// start, puts the administrator's policy-rc.d back, and disables the
// service the package enabled, leaving the administrator's own alone.
func TestInstallDepsStartsNoService(t *testing.T) {
	requireRoot(t)
	h := newDepsHost(t, "vsftpd")
	if err := os.WriteFile(h.locked, []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := h.run(t, "tour")
	if r.code != 0 {
		t.Fatalf("install-deps.sh tour: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "waiting for the package lock (held by process 4242 (apt-get)), at most 600 s") {
		t.Errorf("no word of the held lock:\n%s", r.stderr)
	}
	log := mustRead(t, h.log)
	for _, want := range []string{
		"apt-get update -q\napt-get update -q\napt-get update -q\n",
		"apt-get install -y -q --no-install-recommends vsftpd\n",
		"policy-rc.d answered 101\n",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("apt-get log lacks %q:\n%s", want, log)
		}
	}
	if got := mustRead(t, h.root+"/usr/sbin/policy-rc.d"); !strings.Contains(got, "the administrator's own") {
		t.Errorf("policy-rc.d after the install is not the administrator's:\n%s", got)
	}
	got := strings.Join(h.links(t), " ")
	if want := "etc/rc2.d/S01ssh etc/systemd/system/multi-user.target.wants/ssh.service"; got != want {
		t.Errorf("service links after the install: %s, want %s", got, want)
	}
	for _, want := range []string{"vsftpd.service: enabled by its package, disabled again", "vsftpd (SysV init script): enabled by its package, disabled again"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestInstallDepsLockTimeout: a lock held longer than LOCK_WAIT fails
// with what to do, installing nothing, and leaves no policy-rc.d of its own.
func TestInstallDepsLockTimeout(t *testing.T) {
	requireRoot(t)
	h := newDepsHost(t, "vsftpd")
	if err := os.Remove(h.root + "/usr/sbin/policy-rc.d"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.locked, []byte("1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.env = append(h.env, "LOCK_WAIT=0")
	r := h.run(t, "tour")
	if r.code == 0 || !strings.Contains(r.stderr, "the package lock is still held after 0 s") {
		t.Errorf("exit %d, want a failure naming the held lock:\n%s", r.code, r.stderr)
	}
	if strings.Contains(mustRead(t, h.log), " install ") {
		t.Errorf("installed although the lock was never free:\n%s", mustRead(t, h.log))
	}
	if _, err := os.Lstat(h.root + "/usr/sbin/policy-rc.d"); !os.IsNotExist(err) {
		t.Errorf("a policy-rc.d is left behind (%v)", err)
	}
}

// TestInstallDepsProfiles: the demo needs no daemon's package; the tour
// only the FTP server and the knock client it runs in its sandbox; the
// tests everything (the gateway pair's keepalived and conntrackd too),
// prometheus without its recommended node exporter.
func TestInstallDepsProfiles(t *testing.T) {
	requireRoot(t)
	all := "iptables iproute2 iputils-ping procps hping3 socat netcat-openbsd curl nmap knockd vsftpd conntrack ipset lftp prometheus iperf3 gcc pkg-config libnetfilter-queue-dev keepalived conntrackd prometheus-node-exporter tshark"
	h := newDepsHost(t, all)
	daemons := regexp.MustCompile(`\b(vsftpd|knockd|prometheus[a-z-]*|keepalived|conntrackd|tshark)\b`)
	for _, tc := range []struct{ profile, daemons string }{
		{"demo", ""},
		{"tour", "knockd vsftpd"},
		{"test", "knockd vsftpd prometheus keepalived conntrackd"},
	} {
		r := h.run(t, "--check", tc.profile)
		line := regexp.MustCompile(`packages missing \(` + tc.profile + `\): (.*)`).FindStringSubmatch(r.stderr)
		if r.code != 1 || line == nil {
			t.Fatalf("--check %s: exit %d, no list of missing packages:\n%s", tc.profile, r.code, r.stderr)
		}
		if got := strings.Join(daemons.FindAllString(line[1], -1), " "); got != tc.daemons {
			t.Errorf("%s installs the daemons' packages %q, want %q", tc.profile, got, tc.daemons)
		}
	}
}

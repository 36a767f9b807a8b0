package packaging

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
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
	"github.com/nfqfw/nfqfw/rules/iptables"
)

// dockerDefaultPath is the PATH the debian images set: ENTRYPOINT
// ["nfqfw"] is looked up in it.
const dockerDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// buildStage is the stage the final one copies the binary from.
func buildStage(t testing.TB, df *dockerfile) *stage {
	t.Helper()
	final := df.stages[len(df.stages)-1]
	for _, in := range final.find("COPY") {
		for _, f := range strings.Fields(in.args) {
			if name, ok := strings.CutPrefix(f, "--from="); ok {
				for _, s := range df.stages {
					if s.name == name {
						return s
					}
				}
				t.Fatalf("Dockerfile:%d: COPY --from=%s names no stage", in.line, name)
			}
		}
	}
	t.Fatal("Dockerfile: the final stage copies nothing from a build stage")
	return nil
}

// TestDockerfileLint holds the Dockerfile to the rules a reproducible,
// small, safe image needs. Each case names the rule.
func TestDockerfileLint(t *testing.T) {
	df := readDockerfile(t)
	if len(df.stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final stage", len(df.stages))
	}
	final := df.stages[len(df.stages)-1]
	build := buildStage(t, df)
	all := func(cmd string) []instruction {
		var out []instruction
		for _, s := range df.stages {
			out = append(out, s.find(cmd)...)
		}
		return out
	}
	finalRuns := strings.Join(func() []string {
		var s []string
		for _, in := range final.find("RUN") {
			s = append(s, in.args)
		}
		return s
	}(), "\n")
	buildRuns := func() []instruction { return build.find("RUN") }()

	tagged := regexp.MustCompile(`^[a-z0-9./_-]+:([A-Za-z0-9_.-]+)(@sha256:[0-9a-f]{64})?$`)
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"every base image is pinned by a tag, never latest", func(t *testing.T) {
			for _, s := range df.stages {
				m := tagged.FindStringSubmatch(s.image)
				if m == nil || m[1] == "latest" {
					t.Errorf("Dockerfile:%d: FROM %s: want image:tag (optionally @sha256:digest), not latest or untagged", s.line, s.image)
				}
			}
		}},
		{"the build stage uses the Go of go.mod's go line", func(t *testing.T) {
			goLine := goModGo(t)
			if !strings.HasPrefix(build.image, "golang:"+goLine+"-") && !strings.HasPrefix(build.image, "golang:"+goLine+"@") && build.image != "golang:"+goLine {
				t.Errorf("build stage FROM %s: want golang:%s (go.mod's go line; GOTOOLCHAIN=local downloads nothing)", build.image, goLine)
			}
		}},
		{"the final stage is Debian slim", func(t *testing.T) {
			if !regexp.MustCompile(`^debian:[0-9.]+-slim(@|$)`).MatchString(final.image) {
				t.Errorf("final FROM %s: want debian:<release>-slim", final.image)
			}
		}},
		{"no ADD (COPY only: no URLs, no archive magic)", func(t *testing.T) {
			for _, in := range all("ADD") {
				t.Errorf("Dockerfile:%d: ADD %s: use COPY", in.line, in.args)
			}
		}},
		{"go mod download has its own layer before the sources are copied", func(t *testing.T) {
			var sawMod, sawDownload bool
			for _, in := range build.instr {
				switch {
				case in.cmd == "COPY" && strings.Fields(in.args)[0] == "go.mod":
					sawMod = true
				case in.cmd == "RUN" && strings.Contains(in.args, "go mod download"):
					if !sawMod {
						t.Errorf("Dockerfile:%d: go mod download before go.mod is copied", in.line)
					}
					sawDownload = true
				case in.cmd == "COPY" && strings.HasPrefix(in.args, ". "):
					if !sawDownload {
						t.Errorf("Dockerfile:%d: sources copied before go mod download: every change re-downloads the modules", in.line)
					}
				}
			}
			if !sawDownload {
				t.Error("build stage: no RUN go mod download")
			}
		}},
		{"the binary is static, trimmed, stripped and stamped", func(t *testing.T) {
			var line string
			for _, in := range buildRuns {
				if strings.Contains(in.args, "go build") {
					line = in.args
				}
			}
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=${VERSION}", "./cmd/nfqfw"} {
				if !strings.Contains(line, want) {
					t.Errorf("go build line %q lacks %q", line, want)
				}
			}
		}},
		{"apt installs no recommends, pins versions and leaves no lists", func(t *testing.T) {
			if !strings.Contains(finalRuns, "apt-get update") || !strings.Contains(finalRuns, "--no-install-recommends") || !strings.Contains(finalRuns, "rm -rf /var/lib/apt/lists/*") {
				t.Errorf("final stage RUN %q: want apt-get update && apt-get install --no-install-recommends ... && rm -rf /var/lib/apt/lists/* in one layer", finalRuns)
			}
			for _, p := range aptPackages(t, df) {
				if p.version == "" {
					t.Errorf("apt package %s: not pinned (want %s=VERSION)", p.name, p.name)
				}
			}
		}},
		{"runs as root, explicitly", func(t *testing.T) {
			users := final.find("USER")
			if len(users) == 0 || users[len(users)-1].args != "root" {
				t.Errorf("final stage USER = %v, want root (CAP_NET_ADMIN, the root-only control socket)", users)
			}
		}},
		{"config and state are volumes", func(t *testing.T) {
			var vols []string
			for _, in := range final.find("VOLUME") {
				if v := in.exec(); v != nil {
					vols = append(vols, v...)
				} else {
					vols = append(vols, strings.Fields(in.args)...)
				}
			}
			for _, want := range []string{"/etc/nfqfw", "/var/lib/nfqfw"} {
				if !slices.Contains(vols, want) {
					t.Errorf("VOLUME %v lacks %s", vols, want)
				}
			}
		}},
		{"entrypoint, command and health check in exec form", func(t *testing.T) {
			want := map[string][]string{
				"ENTRYPOINT":  {"nfqfw"},
				"CMD":         {"run", "-c", "/etc/nfqfw/nfqfw.yaml"},
				"HEALTHCHECK": {"nfqfw", "health", "--timeout", "3s"},
			}
			for cmd, w := range want {
				ins := final.find(cmd)
				if len(ins) != 1 {
					t.Errorf("final stage has %d %s, want 1", len(ins), cmd)
					continue
				}
				if diff := cmp.Diff(w, ins[0].exec()); diff != "" {
					t.Errorf("Dockerfile:%d: %s (-want +got):\n%s", ins[0].line, cmd, diff)
				}
			}
		}},
		{"the binary lands in the image's PATH", func(t *testing.T) {
			for _, in := range final.find("COPY") {
				f := strings.Fields(in.args)
				if !strings.HasPrefix(f[0], "--from=") {
					continue
				}
				dst := f[len(f)-1]
				if filepath.Base(dst) != "nfqfw" || !slices.Contains(strings.Split(dockerDefaultPath, ":"), filepath.Dir(dst)) {
					t.Errorf("Dockerfile:%d: COPY to %s: want <dir in %s>/nfqfw (ENTRYPOINT [\"nfqfw\"])", in.line, dst, dockerDefaultPath)
				}
			}
		}},
		{"OCI labels", func(t *testing.T) {
			labels := map[string]string{}
			for _, in := range final.find("LABEL") {
				kv, err := keyValues(in.args)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range kv {
					labels[k] = v
				}
			}
			for _, k := range []string{"title", "description", "version", "source"} {
				if labels["org.opencontainers.image."+k] == "" {
					t.Errorf("LABEL org.opencontainers.image.%s missing", k)
				}
			}
			if v := labels["org.opencontainers.image.version"]; v != "${VERSION}" {
				t.Errorf("LABEL org.opencontainers.image.version = %q, want ${VERSION}", v)
			}
		}},
		{"files the final stage copies from the context exist", func(t *testing.T) {
			for _, in := range final.find("COPY") {
				f := strings.Fields(in.args)
				if strings.HasPrefix(f[0], "--") {
					continue
				}
				for _, src := range f[:len(f)-1] {
					if _, err := os.Stat(filepath.Join(repoRoot(t), src)); err != nil {
						t.Errorf("Dockerfile:%d: COPY %s: %v", in.line, src, err)
					}
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// goModGo is go.mod's go line.
func goModGo(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go ([0-9.]+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1])
}

func TestDockerfileHadolint(t *testing.T) {
	hadolint, err := exec.LookPath("hadolint")
	if err != nil {
		// Not skipOrFail: CI installs Debian packages only.
		t.Skip("hadolint is not installed (Debian does not package it; it is a single binary from its GitHub releases); the own rules in TestDockerfileLint still run")
	}
	r := run(t, repoRoot(t), nil, time.Minute, hadolint, "Dockerfile")
	if r.code != 0 {
		t.Errorf("hadolint Dockerfile: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// stamped is the VERSION build argument the build-stage test passes.
const stamped = "v9.8.7-packaging-test"

// runBuildStage runs the build stage's COPY, WORKDIR, ENV, ARG and RUN
// instructions in a shell: ctxDir is the build context (see buildContext),
// WORKDIR becomes a directory under dir, and /out under dir. It returns the
// path of the binary the stage left in /out.
func runBuildStage(t *testing.T, df *dockerfile, ctxDir, dir string) string {
	t.Helper()
	st := buildStage(t, df)
	work, out := filepath.Join(dir, "src"), filepath.Join(dir, "out")
	for _, d := range []string{work, out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"VERSION=" + stamped}
	for _, in := range st.instr {
		switch in.cmd {
		case "WORKDIR":
			// work stands for it; the stage uses one WORKDIR.
		case "ENV", "ARG":
			kv, err := keyValues(in.args)
			if err != nil {
				t.Fatalf("Dockerfile:%d: %v", in.line, err)
			}
			for k, v := range kv {
				if in.cmd == "ARG" && slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") }) {
					continue // a build argument overrides the default
				}
				env = append(env, k+"="+v)
			}
		case "COPY":
			f := strings.Fields(in.args)
			srcs, dst := f[:len(f)-1], filepath.Join(work, f[len(f)-1])
			for _, src := range srcs {
				to := dst
				if strings.HasSuffix(f[len(f)-1], "/") || len(srcs) > 1 {
					to = filepath.Join(dst, filepath.Base(src))
				}
				if src == "." {
					to = dst
				}
				if err := copyTree(filepath.Join(ctxDir, src), to); err != nil {
					t.Fatalf("Dockerfile:%d: COPY %s: %v", in.line, in.args, err)
				}
			}
		case "RUN":
			script := strings.ReplaceAll(in.args, "/out/", out+"/")
			r := run(t, work, env, 8*time.Minute, "sh", "-c", script)
			if r.code != 0 {
				t.Fatalf("Dockerfile:%d: RUN %s: exit %d\n%s%s", in.line, in.args, r.code, r.stdout, r.stderr)
			}
		default:
			t.Fatalf("Dockerfile:%d: %s in the build stage: this test does not know how to run it", in.line, in.cmd)
		}
	}
	return filepath.Join(out, "nfqfw")
}

// TestDockerfileBuildStage runs the build stage's commands as docker would
// (without docker) and checks the binary: static, stripped, no build paths,
// the stamped version, and bit-for-bit the same when built again elsewhere.
func TestDockerfileBuildStage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary twice from a copy of the build context; not in -short")
	}
	df := readDockerfile(t)
	// One snapshot of the context for both builds: the working tree may
	// change meanwhile.
	ctxDir := t.TempDir()
	buildContext(t, ctxDir)
	dirA, dirB := t.TempDir(), t.TempDir()
	bin := runBuildStage(t, df, ctxDir, dirA)

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			t.Error("binary has PT_INTERP: dynamically linked (CGO_ENABLED=0 missing?)")
		case elf.PT_DYNAMIC:
			t.Error("binary has PT_DYNAMIC: dynamically linked")
		}
	}
	for _, s := range []string{".symtab", ".debug_info"} {
		if f.Section(s) != nil {
			t.Errorf("binary has %s: not stripped (-ldflags -s -w missing?)", s)
		}
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(dirA)) {
		t.Errorf("binary contains the build directory %s: -trimpath missing", dirA)
	}

	r := run(t, dirA, nil, 10*time.Second, bin, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "nfqfw "+stamped+" ") {
		t.Errorf("nfqfw version = %q (exit %d, stderr %q), want it to start with %q", r.stdout, r.code, r.stderr, "nfqfw "+stamped+" ")
	}

	again := runBuildStage(t, df, ctxDir, dirB)
	if a, b := fileSHA(t, bin), fileSHA(t, again); a != b {
		t.Errorf("two builds of the same sources differ: %s in %s, %s in %s (not reproducible)", a, dirA, b, dirB)
	}
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// aptPackage is one package the final stage installs.
type aptPackage struct{ name, version string }

// aptPackages lists what the final stage's apt-get install lines install,
// with ARG defaults expanded in pinned versions.
func aptPackages(t testing.TB, df *dockerfile) []aptPackage {
	t.Helper()
	final := df.stages[len(df.stages)-1]
	args := map[string]string{}
	for _, in := range final.find("ARG") {
		kv, err := keyValues(in.args)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range kv {
			args[k] = v
		}
	}
	var pkgs []aptPackage
	for _, in := range final.find("RUN") {
		for _, cmd := range strings.Split(in.args, "&&") {
			_, rest, ok := strings.Cut(cmd, "apt-get install")
			if !ok {
				continue
			}
			words, err := shellWords(rest)
			if err != nil {
				t.Fatalf("Dockerfile:%d: %v", in.line, err)
			}
			for _, w := range words {
				if strings.HasPrefix(w, "-") {
					continue
				}
				name, ver, _ := strings.Cut(os.Expand(w, func(k string) string { return args[k] }), "=")
				pkgs = append(pkgs, aptPackage{name: name, version: ver})
			}
		}
	}
	if len(pkgs) == 0 {
		t.Fatal("final stage installs no apt package")
	}
	return pkgs
}

// alternative is one update-alternatives link a package's postinst
// registers: link (e.g. /usr/sbin/iptables) to path, with the group's
// priority.
type alternative struct {
	link, path string
	priority   int
}

var altRe = regexp.MustCompile(`--(install|slave)\s+(\S+)\s+\S+\s+(\S+)(?:\s+(\d+))?`)

// postinstAlternatives parses the update-alternatives calls of pkg's
// maintainer script.
func postinstAlternatives(t testing.TB, pkg string) []alternative {
	t.Helper()
	b, err := os.ReadFile("/var/lib/dpkg/info/" + pkg + ".postinst")
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var out []alternative
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		prio := 0
		for _, m := range altRe.FindAllStringSubmatch(sc.Text(), -1) {
			if m[1] == "install" {
				prio, _ = strconv.Atoi(m[4])
			}
			out = append(out, alternative{link: m[2], path: m[3], priority: prio})
		}
	}
	return out
}

// TestFinalStageProvidesDaemonBinaries builds a PATH from exactly what the
// final stage's Debian packages install (their files and the alternatives
// their postinst registers, as dpkg knows them on this Debian machine) and
// has the daemon's own backend lookup find every binary it runs in it.
func TestFinalStageProvidesDaemonBinaries(t *testing.T) {
	requireTool(t, "dpkg-query", "the final stage's packages are inspected with dpkg")
	df := readDockerfile(t)
	pkgs := aptPackages(t, df)
	binDir := t.TempDir()
	provides := map[string]string{} // binary name -> package
	for _, p := range pkgs {
		r := run(t, "", nil, 30*time.Second, "dpkg-query", "-W", "-f", "${Version}", p.name)
		if r.code != 0 {
			skipOrFail(t, "package "+p.name+" is not installed on this machine: run scripts/install-deps.sh")
		}
		if r.stdout != p.version {
			t.Errorf("Dockerfile pins %s=%s, this Debian has %s: bump the pin (the archive keeps only the current version)", p.name, p.version, r.stdout)
		}
		files := run(t, "", nil, 30*time.Second, "dpkg-query", "-L", p.name)
		real := map[string]bool{}
		for _, f := range strings.Fields(files.stdout) {
			if d := filepath.Dir(f); d == "/usr/sbin" || d == "/usr/bin" || d == "/sbin" || d == "/bin" {
				real[f] = true
				if err := os.Symlink(f, filepath.Join(binDir, filepath.Base(f))); err != nil && !os.IsExist(err) {
					t.Fatal(err)
				}
				provides[filepath.Base(f)] = p.name
			}
		}
		for _, a := range postinstAlternatives(t, p.name) {
			if !real[a.path] {
				continue
			}
			if err := os.Symlink(a.path, filepath.Join(binDir, filepath.Base(a.link))); err != nil && !os.IsExist(err) {
				t.Fatal(err)
			}
			provides[filepath.Base(a.link)] = p.name
		}
	}
	t.Setenv("PATH", binDir)

	// The binaries the daemon runs: DetectBackend's lookups for each
	// explicit backend, and "iptables" for -V in auto detection.
	used := map[string]bool{"iptables": true}
	for _, kind := range []rules.Backend{rules.BackendLegacy, rules.BackendNft} {
		b, err := iptables.DetectBackend(kind)
		if err != nil {
			t.Errorf("backend %s in the image: %v", kind, err)
			continue
		}
		for _, p := range []string{b.Restore4, b.Restore6, b.Save4, b.Save6} {
			if filepath.Dir(p) != binDir {
				t.Errorf("backend %s: %s found outside the packages' files", kind, p)
			}
			used[filepath.Base(p)] = true
		}
	}
	if _, ok := provides["iptables"]; !ok {
		t.Error(`no package provides "iptables" (auto detection runs "iptables -V")`)
	}

	// "iptables" defaults to the flavour with the highest priority: the
	// Dockerfile's comment says the image's is nft.
	best := alternative{}
	for _, p := range pkgs {
		for _, a := range postinstAlternatives(t, p.name) {
			if a.link == "/usr/sbin/iptables" && a.priority > best.priority {
				best = a
			}
		}
	}
	if best.path != "/usr/sbin/iptables-nft" {
		t.Errorf(`the image's default "iptables" is %q, the Dockerfile says iptables-nft`, best.path)
	}

	// No dead weight: every package provides something the daemon runs.
	for _, p := range pkgs {
		useful := false
		for name := range used {
			useful = useful || provides[name] == p.name
		}
		if !useful {
			t.Errorf("apt package %s provides no binary the daemon runs", p.name)
		}
	}
}

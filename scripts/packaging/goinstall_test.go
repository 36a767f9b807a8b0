package packaging

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// module is this repository's module path.
const module = "github.com/nfqfw/nfqfw"

// cloneHead clones the repository's committed HEAD into a temp directory:
// what a user who clones it gets, without the working tree's edits.
func cloneHead(t *testing.T) string {
	t.Helper()
	requireTool(t, "git", "the clone tests clone the repository")
	dir := filepath.Join(t.TempDir(), "nfqfw")
	if r := run(t, "", nil, 2*time.Minute, "git", "clone", "--quiet", repoRoot(t), dir); r.code != 0 {
		t.Fatalf("git clone: exit %d: %s", r.code, r.stderr)
	}
	return dir
}

// goEnv returns `go env NAME`.
func goEnv(t *testing.T, name string) string {
	t.Helper()
	r := run(t, "", nil, time.Minute, "go", "env", name)
	if r.code != 0 {
		t.Fatalf("go env %s: %s", name, r.stderr)
	}
	return strings.TrimSpace(r.stdout)
}

// platform is the tail of every version line.
var platform = " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"

// TestBuildFromClone builds cmd/nfqfw in a fresh clone with only the Go
// toolchain (no make, no ldflags), as a contributor would, with and without
// VCS stamping, and checks what "nfqfw version" says.
func TestBuildFromClone(t *testing.T) {
	if testing.Short() {
		t.Skip("clones the repository and builds it; not in -short")
	}
	// want builds the expected version field from the clone's HEAD (the
	// repository's may move on while the test runs).
	tests := []struct {
		name    string
		goflags string
		want    func(head string) *regexp.Regexp
	}{
		{
			name:    "no VCS stamping: dev",
			goflags: "-mod=mod -buildvcs=false",
			want:    func(string) *regexp.Regexp { return regexp.MustCompile(`^dev$`) },
		},
		{
			// Go >= 1.24 derives a pseudo-version from the checkout's
			// commit (or its tag); a clean clone is not +dirty. -mod=mod
			// would make it dirty while go.mod marks direct requirements
			// "// indirect" (it rewrites go.mod); readonly is go build's
			// default.
			name:    "VCS stamping: pseudo-version naming HEAD",
			goflags: "-mod=readonly -buildvcs=true",
			want: func(head string) *regexp.Regexp {
				return regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9.]*[0-9]{14}-` + head[:12] + `)?$`)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clone := cloneHead(t)
			want := tt.want(strings.TrimSpace(run(t, clone, nil, time.Minute, "git", "rev-parse", "HEAD").stdout))
			bin := filepath.Join(t.TempDir(), "nfqfw")
			env := []string{"GOFLAGS=" + tt.goflags, "GOTOOLCHAIN=local", "CGO_ENABLED=0"}
			if r := run(t, clone, env, 8*time.Minute, "go", "build", "-o", bin, "./cmd/nfqfw"); r.code != 0 {
				t.Fatalf("go build ./cmd/nfqfw in a fresh clone: exit %d\n%s", r.code, r.stderr)
			}
			r := run(t, clone, nil, 10*time.Second, bin, "version")
			v, ok := strings.CutPrefix(r.stdout, "nfqfw ")
			v, ok2 := strings.CutSuffix(v, platform)
			if r.code != 0 || !ok || !ok2 || !want.MatchString(v) {
				t.Errorf("nfqfw version = %q (exit %d), want \"nfqfw <version>%s\" with version matching %s", r.stdout, r.code, strings.TrimSuffix(platform, "\n"), want)
			}
		})
	}
}

// TestGoInstallAtVersion runs "go install github.com/nfqfw/nfqfw/cmd/nfqfw@v0.0.1"
// against a file-based module proxy that serves the clone's HEAD as
// v0.0.1, with an empty module cache and the dependencies served from the
// machine's module cache: a user's go install, offline. It proves the
// module builds outside the repository (go install @version refuses a go.mod
// with replace or exclude directives, and needs every requirement to
// resolve), and that "nfqfw version" reports the module version.
func TestGoInstallAtVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds from a module proxy; not in -short")
	}
	const version = "v0.0.1"
	clone := cloneHead(t)
	proxy := t.TempDir()
	writeModuleVersion(t, clone, filepath.Join(proxy, module, "@v"), version)

	depCache := filepath.Join(goEnv(t, "GOMODCACHE"), "cache", "download")
	gobin := t.TempDir()
	env := []string{
		"GOPROXY=file://" + proxy + ",file://" + depCache,
		"GOMODCACHE=" + t.TempDir(),
		"GOFLAGS=-modcacherw -trimpath", // removable module cache; path-independent build cache keys
		// v0.0.1 exists only here, and the dependencies come from the
		// machine's module cache, verified when they were downloaded;
		// a user's install checks them against sum.golang.org.
		"GOSUMDB=off",
		"GOTOOLCHAIN=local",
		"GOBIN=" + gobin,
		"CGO_ENABLED=0",
	}
	r := run(t, t.TempDir(), env, 8*time.Minute, "go", "install", module+"/cmd/nfqfw@"+version)
	if r.code != 0 {
		t.Fatalf("go install %s/cmd/nfqfw@%s: exit %d\n%s", module, version, r.code, r.stderr)
	}
	v := run(t, "", nil, 10*time.Second, filepath.Join(gobin, "nfqfw"), "version")
	if want := "nfqfw " + version + platform; v.stdout != want {
		t.Errorf("nfqfw version = %q, want %q", v.stdout, want)
	}
}

// writeModuleVersion writes version's .info, .mod and .zip for the module
// in src (its tracked files) into dir, a GOPROXY file tree's @v directory.
func writeModuleVersion(t *testing.T, src, dir, version string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	info, _ := json.Marshal(map[string]string{"Version": version, "Time": "2026-01-01T00:00:00Z"})
	gomod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"list": []byte(version + "\n"), version + ".info": info, version + ".mod": gomod} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files := strings.Split(strings.TrimSpace(run(t, src, nil, time.Minute, "git", "ls-files", "-z").stdout), "\x00")
	zf, err := os.Create(filepath.Join(dir, version+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(zf)
	for _, f := range files {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		st, err := os.Lstat(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if !st.Mode().IsRegular() {
			continue // module zips hold regular files only
		}
		w, err := zw.Create(fmt.Sprintf("%s@%s/%s", module, version, f))
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zf.Close(); err != nil {
		t.Fatal(err)
	}
}

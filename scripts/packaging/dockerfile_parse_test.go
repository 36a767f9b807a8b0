package packaging

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string // the rest of the line, trimmed
	line int    // where it starts, 1-based
}

// exec returns the instruction's exec (JSON) form, or nil for shell form.
func (in instruction) exec() []string {
	args := in.args
	// HEALTHCHECK [OPTIONS] CMD [...]: the command follows CMD.
	if in.cmd == "HEALTHCHECK" {
		if i := strings.Index(args, "CMD "); i >= 0 {
			args = strings.TrimSpace(args[i+len("CMD "):])
		}
	}
	var v []string
	if !strings.HasPrefix(args, "[") || json.Unmarshal([]byte(args), &v) != nil {
		return nil
	}
	return v
}

// stage is one FROM and the instructions up to the next.
type stage struct {
	image string // FROM's image reference
	name  string // AS name, "" if none
	line  int
	instr []instruction
}

// find returns the stage's instructions named cmd.
func (s *stage) find(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instr {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// dockerfile is a parsed Dockerfile: instructions before the first FROM
// (global ARGs) and the stages.
type dockerfile struct {
	global []instruction
	stages []*stage
}

// parseDockerfile splits r into instructions the way the Dockerfile
// frontend does for the subset nfqfw uses: '#' comment lines (also inside a
// continuation), '\' line continuations, case-insensitive instruction names.
// Heredocs are not supported and are reported.
func parseDockerfile(r io.Reader) (*dockerfile, error) {
	df := &dockerfile{}
	sc := bufio.NewScanner(r)
	var (
		cur   strings.Builder
		start int
		n     int
	)
	flush := func() error {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if strings.Contains(in.args, "<<") && in.cmd == "RUN" {
			return fmt.Errorf("line %d: heredocs are not supported by this parser", in.line)
		}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := &stage{line: in.line}
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					st.name = f[i+1]
					i++
				case st.image == "":
					st.image = f[i]
				}
			}
			df.stages = append(df.stages, st)
			return nil
		}
		if len(df.stages) == 0 {
			df.global = append(df.global, in)
		} else {
			last := df.stages[len(df.stages)-1]
			last.instr = append(last.instr, in)
		}
		return nil
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "#") {
			continue
		}
		if cur.Len() == 0 {
			if trim == "" {
				continue
			}
			start = n
		}
		if strings.HasSuffix(trim, `\`) {
			cur.WriteString(strings.TrimSuffix(trim, `\`) + " ")
			continue
		}
		cur.WriteString(trim)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("line %d: continuation at end of file", start)
	}
	return df, flush()
}

// readDockerfile parses the repository's Dockerfile.
func readDockerfile(t testing.TB) *dockerfile {
	t.Helper()
	return parseRepoFile(t, "Dockerfile", parseDockerfile)
}

// parseRepoFile parses the repository's file name with parse; an error
// fails the test.
func parseRepoFile[T any](t testing.TB, name string, parse func(io.Reader) (T, error)) T {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// keyValues parses ENV/ARG/LABEL arguments: KEY=VALUE words (values may be
// double-quoted), or a bare KEY (an ARG without default).
func keyValues(args string) (map[string]string, error) {
	words, err := shellWords(args)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, w := range words {
		k, v, _ := strings.Cut(w, "=")
		out[k] = v
	}
	return out, nil
}

// shellWords splits s at spaces outside double quotes and removes the
// quotes; enough for the Dockerfile's ENV, LABEL and apt-get lines.
func shellWords(s string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		quoted bool
		inWord bool
	)
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// dockerignore is a parsed .dockerignore: patterns anchored at the context
// root, "**" for any number of directories, a match on a directory
// excluding everything under it. Exceptions ("!") are not supported and are
// reported, so the matcher never silently disagrees with Docker's.
type dockerignore struct {
	patterns []*regexp.Regexp
}

func parseDockerignore(r io.Reader) (*dockerignore, error) {
	di := &dockerignore{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if strings.HasPrefix(p, "!") {
			return nil, fmt.Errorf("exception %q: not supported by this matcher", p)
		}
		p = strings.TrimPrefix(filepath.Clean(strings.TrimPrefix(p, "/")), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		rx, err := regexp.Compile(re.String())
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %v", p, err)
		}
		di.patterns = append(di.patterns, rx)
	}
	return di, sc.Err()
}

// excluded reports whether rel (slash-separated, relative to the context)
// is left out of the build context: it or one of its parents matches.
func (di *dockerignore) excluded(rel string) bool {
	for p := rel; p != "." && p != "/" && p != ""; p = filepath.Dir(p) {
		for _, rx := range di.patterns {
			if rx.MatchString(p) {
				return true
			}
		}
	}
	return false
}

// buildContext copies the repository into dir as docker build would send
// it: without what .dockerignore excludes. It returns the relative paths
// copied.
func buildContext(t testing.TB, dir string) []string {
	t.Helper()
	root := repoRoot(t)
	di := parseRepoFile(t, ".dockerignore", parseDockerignore)
	var copied []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			return nil
		}
		if di.excluded(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(dir, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type().IsRegular():
			copied = append(copied, filepath.ToSlash(rel))
			return copyFile(path, dst)
		}
		return nil // symlinks, sockets: not in this repository's sources
	})
	if err != nil {
		t.Fatal(err)
	}
	return copied
}

// copyFile copies src to dst with src's permission bits.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copyTree copies the tree at src (a file or a directory) to dst.
func copyTree(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return copyFile(src, dst)
	}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		return copyFile(path, filepath.Join(dst, rel))
	})
}

func TestParseDockerfile(t *testing.T) {
	const src = `# syntax=docker/dockerfile:1
ARG GLOBAL=1
FROM golang:1.26.8-bookworm AS build
# a comment
RUN a \
    # a comment inside a continuation
    && b
from debian:12.11-slim
HEALTHCHECK --interval=30s CMD ["nfqfw", "health"]
`
	df, err := parseDockerfile(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	type flat struct {
		Image, Name string
		Instr       []string
	}
	var got []flat
	for _, s := range df.stages {
		f := flat{Image: s.image, Name: s.name}
		for _, in := range s.instr {
			f.Instr = append(f.Instr, fmt.Sprintf("%d %s %s %q", in.line, in.cmd, in.args, in.exec()))
		}
		got = append(got, f)
	}
	want := []flat{
		{Image: "golang:1.26.8-bookworm", Name: "build", Instr: []string{`5 RUN a  && b []`}},
		{Image: "debian:12.11-slim", Instr: []string{`9 HEALTHCHECK --interval=30s CMD ["nfqfw", "health"] ["nfqfw" "health"]`}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	if len(df.global) != 1 || df.global[0].cmd != "ARG" {
		t.Errorf("global instructions = %+v, want one ARG", df.global)
	}
}

func TestKeyValues(t *testing.T) {
	tests := []struct {
		name string
		args string
		want map[string]string
	}{
		{name: "pairs", args: "CGO_ENABLED=0 GOFLAGS=-buildvcs=false", want: map[string]string{"CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}},
		{name: "quoted", args: `a="x y" b=z`, want: map[string]string{"a": "x y", "b": "z"}},
		{name: "bare arg", args: "VERSION", want: map[string]string{"VERSION": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keyValues(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("keyValues(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestDockerignoreMatcher(t *testing.T) {
	di, err := parseDockerignore(strings.NewReader("# c\n.git\nbin/\n/nfqfw\n*.test\n**/testdata/\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want bool
	}{
		{".git", true},
		{".git/HEAD", true},
		{"bin/nfqfw", true},
		{"nfqfw", true},
		{"cmd/nfqfw", false},         // anchored: only the root binary
		{"cmd/nfqfw/main.go", false}, // ...not the command's sources
		{"engine.test", true},
		{"engine/x.test", false}, // "*.test" is anchored at the root
		{"rules/testdata/a.golden", true},
		{"testdata/x", true}, // "**/" matches zero directories
		{"go.mod", false},
	}
	for _, tt := range tests {
		if got := di.excluded(tt.path); got != tt.want {
			t.Errorf("excluded(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

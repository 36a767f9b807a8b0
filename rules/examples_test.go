package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamples parses and compiles every shipped example configuration,
// and checks that each has Eval cases in policy_test.go.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 9 {
		t.Fatalf("found %d example configs, want at least 9", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Compile(c)
			if err != nil {
				t.Fatal(err)
			}
			if p.Config() != c || len(p.Hash()) != 64 {
				t.Error("policy does not carry its config and hash")
			}
			if _, ok := evalCases[filepath.Base(f)]; !ok {
				t.Error("no Eval cases for this example")
			}
			// The examples use the sandbox's interface names: the
			// first line names each one to change.
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			for _, r := range c.ifaceRefs {
				if r.Name != "lo" && !strings.Contains(first, r.Name) {
					t.Errorf("line %d uses interface %q, which the first line does not name: %s", r.Line, r.Name, first)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join("examples", "README.md")); err != nil {
		t.Error(err)
	}
}

package iptables

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfqfw/nfqfw/rules"
)

// exampleConfigs loads the shipped example configs.
func exampleConfigs(t *testing.T) map[string]*rules.Config {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Skip("no example configs under rules/examples")
	}
	out := map[string]*rules.Config{}
	for _, p := range paths {
		c, err := rules.Load(p)
		if err != nil {
			t.Fatalf("load %s: %v", p, err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".yaml")] = c
	}
	return out
}

// TestGenerateExamples keeps the ruleset of every shipped example config
// under golden files testdata/example-NAME.golden.
func TestGenerateExamples(t *testing.T) {
	for name, c := range exampleConfigs(t) {
		t.Run(name, func(t *testing.T) {
			golden(t, "example-"+name, both(t, c))
		})
	}
}

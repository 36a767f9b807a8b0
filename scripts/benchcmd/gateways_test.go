package main

import (
	"fmt"
	"testing"

	"github.com/nfqfw/nfqfw/rules"
)

// TestNfqfwConfigParses keeps the benchmark's policy a valid config: a
// rule the parser learns to refuse must not surface only when the
// benchmark runs.
func TestNfqfwConfigParses(t *testing.T) {
	for _, q := range []int{1, 2} {
		for _, ev := range []string{"all", "minimal"} {
			src := fmt.Sprintf(nfqfwConfig, q, ev, "/run/nfqfw-bench", "/run/nfqfw-bench")
			if _, err := rules.Parse("bench.yaml", []byte(src)); err != nil {
				t.Errorf("queues %d, kernel_events %s: %v", q, ev, err)
			}
		}
	}
}

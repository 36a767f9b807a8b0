package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	guardAttempts = counter("guard_attempts_total",
		"New connections a rate guard judged, per result (allowed, limited).",
		"guard", "result")
	guardEvictions = counter("guard_evictions_total",
		"Sources a rate guard forgot because it was full (SYN-only sources first).",
		"guard")
)

// guardCollector exports the rate guards' judgements.
type guardCollector struct{ src GuardSource }

func newGuardCollector(src GuardSource) guardCollector { return guardCollector{src} }

func (guardCollector) describe(ch chan<- *prometheus.Desc) {
	describe(ch, guardAttempts, guardEvictions)
}

func (c guardCollector) update(ch chan<- prometheus.Metric) error {
	s := newScrape()
	c.src.GuardAttempts(func(guard, result string, n uint64) {
		s.add(guardAttempts, float64(n), guard, result)
	})
	c.src.GuardEvictions(func(guard string, n uint64) {
		s.add(guardEvictions, float64(n), guard)
	})
	s.emit(ch)
	return nil
}

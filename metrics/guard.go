package metrics

import "github.com/prometheus/client_golang/prometheus"

// guardCollector exports the rate guards' judgements.
type guardCollector struct {
	src       GuardSource
	attempts  *prometheus.Desc
	evictions *prometheus.Desc
}

func newGuardCollector(src GuardSource) *guardCollector {
	return &guardCollector{
		src: src,
		attempts: newDesc("guard_attempts_total",
			"New connections a rate guard judged, per result (allowed, limited).",
			"guard", "result"),
		evictions: newDesc("guard_evictions_total",
			"Sources a rate guard forgot because it was full (SYN-only sources first).",
			"guard"),
	}
}

func (c *guardCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.attempts
	ch <- c.evictions
}

func (c *guardCollector) update(ch chan<- prometheus.Metric) error {
	attempts := newSamples(c.attempts, prometheus.CounterValue)
	c.src.GuardAttempts(func(guard, result string, n uint64) {
		attempts.add(float64(n), guard, result)
	})
	attempts.emit(ch)
	evictions := newSamples(c.evictions, prometheus.CounterValue)
	c.src.GuardEvictions(func(guard string, n uint64) {
		evictions.add(float64(n), guard)
	})
	evictions.emit(ch)
	return nil
}

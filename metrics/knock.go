package metrics

import "github.com/prometheus/client_golang/prometheus"

// knockCollector exports the knock sequences.
type knockCollector struct {
	src        KnockSource
	inProgress *prometheus.Desc
	success    *prometheus.Desc
	failures   *prometheus.Desc
	windows    *prometheus.Desc
}

func newKnockCollector(src KnockSource) *knockCollector {
	return &knockCollector{
		src: src,
		inProgress: newDesc("knock_sources_in_progress",
			"Sources part way through a knock sequence now.",
			"sequence"),
		success: newDesc("knock_success_total",
			"Knock sequences completed.",
			"sequence"),
		failures: newDesc("knock_failures_total",
			"Knock attempts that failed, per reason.",
			"sequence", "reason"),
		windows: newDesc("knock_windows_open",
			"Sources whose completed knock sequence holds the service open now.",
			"sequence"),
	}
}

func (c *knockCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.inProgress
	ch <- c.success
	ch <- c.failures
	ch <- c.windows
}

func (c *knockCollector) update(ch chan<- prometheus.Metric) error {
	inProgress := newSamples(c.inProgress, prometheus.GaugeValue)
	success := newSamples(c.success, prometheus.CounterValue)
	windows := newSamples(c.windows, prometheus.GaugeValue)
	c.src.KnockSequences(func(s KnockSequence) {
		inProgress.add(float64(s.InProgress), s.Sequence)
		success.add(float64(s.Successes), s.Sequence)
		windows.add(float64(s.WindowsOpen), s.Sequence)
	})
	inProgress.emit(ch)
	success.emit(ch)
	windows.emit(ch)

	failures := newSamples(c.failures, prometheus.CounterValue)
	c.src.KnockFailures(func(sequence, reason string, n uint64) {
		failures.add(float64(n), sequence, reason)
	})
	failures.emit(ch)
	return nil
}

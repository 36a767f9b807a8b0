package metrics

import "github.com/prometheus/client_golang/prometheus"

// stateCollector exports the state saver's results.
type stateCollector struct {
	src   StateSource
	saves *prometheus.Desc
}

func newStateCollector(src StateSource) *stateCollector {
	return &stateCollector{
		src: src,
		saves: newDesc("state_saves_total",
			"Saves of the state file (bans, recent lists, knock state, guard counters), per result (ok, failed).",
			"result"),
	}
}

func (c *stateCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.saves
}

func (c *stateCollector) update(ch chan<- prometheus.Metric) error {
	ok, failed := c.src.StateSaves()
	ch <- prometheus.MustNewConstMetric(c.saves, prometheus.CounterValue, float64(ok), "ok")
	ch <- prometheus.MustNewConstMetric(c.saves, prometheus.CounterValue, float64(failed), "failed")
	return nil
}

package metrics

import "github.com/prometheus/client_golang/prometheus"

var stateSaves = counter("state_saves_total",
	"Saves of the state file (bans, recent lists, knock state, guard counters), per result (ok, failed).",
	"result")

// stateCollector exports the state saver's results.
type stateCollector struct{ src StateSource }

func newStateCollector(src StateSource) stateCollector { return stateCollector{src} }

func (stateCollector) describe(ch chan<- *prometheus.Desc) { describe(ch, stateSaves) }

func (c stateCollector) update(ch chan<- prometheus.Metric) error {
	s := newScrape()
	ok, failed := c.src.StateSaves()
	s.add(stateSaves, float64(ok), "ok")
	s.add(stateSaves, float64(failed), "failed")
	s.emit(ch)
	return nil
}

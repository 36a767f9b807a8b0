package metrics

import "github.com/prometheus/client_golang/prometheus"

// recentCollector exports the recent lists.
type recentCollector struct {
	src       RecentSource
	entries   *prometheus.Desc
	hits      *prometheus.Desc
	evictions *prometheus.Desc
}

func newRecentCollector(src RecentSource) *recentCollector {
	return &recentCollector{
		src: src,
		entries: newDesc("recent_entries",
			"Addresses on a recent list now.",
			"list"),
		hits: newDesc("recent_hits_total",
			"Packets whose source matched a recent list.",
			"list"),
		evictions: newDesc("recent_evictions_total",
			"Recent list entries evicted because the list was full.",
			"list"),
	}
}

func (c *recentCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.hits
	ch <- c.evictions
}

func (c *recentCollector) update(ch chan<- prometheus.Metric) error {
	entries := newSamples(c.entries, prometheus.GaugeValue)
	hits := newSamples(c.hits, prometheus.CounterValue)
	evictions := newSamples(c.evictions, prometheus.CounterValue)
	c.src.RecentLists(func(l RecentList) {
		entries.add(float64(l.Entries), l.List)
		hits.add(float64(l.Hits), l.List)
		evictions.add(float64(l.Evictions), l.List)
	})
	entries.emit(ch)
	hits.emit(ch)
	evictions.emit(ch)
	return nil
}

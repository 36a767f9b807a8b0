package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	recentEntries   = gauge("recent_entries", "Addresses on a recent list now.", "list")
	recentHits      = counter("recent_hits_total", "Packets whose source matched a recent list.", "list")
	recentEvictions = counter("recent_evictions_total", "Recent list entries evicted because the list was full.", "list")
)

// recentCollector exports the recent lists.
type recentCollector struct{ src RecentSource }

func newRecentCollector(src RecentSource) recentCollector { return recentCollector{src} }

func (recentCollector) describe(ch chan<- *prometheus.Desc) {
	describe(ch, recentEntries, recentHits, recentEvictions)
}

func (c recentCollector) update(ch chan<- prometheus.Metric) error {
	s := newScrape()
	c.src.RecentLists(func(l RecentList) {
		s.add(recentEntries, float64(l.Entries), l.List)
		s.add(recentHits, float64(l.Hits), l.List)
		s.add(recentEvictions, float64(l.Evictions), l.List)
	})
	s.emit(ch)
	return nil
}

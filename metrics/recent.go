package metrics

var (
	recentEntries   = gauge("recent_entries", "Addresses on a recent list now.", "list")
	recentHits      = counter("recent_hits_total", "Packets whose source matched a recent list.", "list")
	recentEvictions = counter("recent_evictions_total", "Recent list entries evicted because the list was full.", "list")
)

// newRecentCollector exports the recent lists.
func newRecentCollector(src RecentSource) scrapeCollector {
	return scrapeCollector{
		fams: []family{recentEntries, recentHits, recentEvictions},
		read: func(s *scrape) error {
			src.RecentLists(func(l RecentList) {
				s.add(recentEntries, float64(l.Entries), l.List)
				s.add(recentHits, float64(l.Hits), l.List)
				s.add(recentEvictions, float64(l.Evictions), l.List)
			})
			return nil
		},
	}
}

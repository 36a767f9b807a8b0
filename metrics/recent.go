package metrics

var (
	recentEntries   = gauge("recent_entries", "Addresses on a recent list now.", "list")
	recentHits      = counter("recent_hits_total", "Packets whose source matched a recent list.", "list")
	recentEvictions = counter("recent_evictions_total", "Recent list entries evicted because the list was full.", "list")
	recentShared    = counter("recent_shared_total",
		"Sets of a recent list marked shared, by outcome: published (handed to the fleet), coalesced (within a second of the last one published for the address), dropped (the fleet's queue was full).",
		"list", "outcome")
)

// newRecentCollector exports the recent lists.
func newRecentCollector(src RecentSource) scrapeCollector {
	return scrapeCollector{
		fams: []family{recentEntries, recentHits, recentEvictions, recentShared},
		read: func(s *scrape) error {
			src.RecentLists(func(l RecentList) {
				s.add(recentEntries, float64(l.Entries), l.List)
				s.add(recentHits, float64(l.Hits), l.List)
				s.add(recentEvictions, float64(l.Evictions), l.List)
				if l.Shared {
					s.add(recentShared, float64(l.Published), l.List, "published")
					s.add(recentShared, float64(l.Coalesced), l.List, "coalesced")
					s.add(recentShared, float64(l.Dropped), l.List, "dropped")
				}
			})
			return nil
		},
	}
}

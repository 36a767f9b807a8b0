package metrics

var stateSaves = counter("state_saves_total",
	"Saves of the state file (bans, recent lists, knock state, guard counters), per result (ok, failed).",
	"result")

// newStateCollector exports the state saver's results.
func newStateCollector(src StateSource) scrapeCollector {
	return scrapeCollector{
		fams: []family{stateSaves},
		read: func(s *scrape) error {
			ok, failed := src.StateSaves()
			s.add(stateSaves, float64(ok), "ok")
			s.add(stateSaves, float64(failed), "failed")
			return nil
		},
	}
}

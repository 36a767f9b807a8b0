package metrics

var (
	knockInProgress = gauge("knock_sources_in_progress", "Sources part way through a knock sequence now.", "sequence")
	knockSuccess    = counter("knock_success_total", "Knock sequences completed.", "sequence")
	knockFailures   = counter("knock_failures_total", "Knock attempts that failed, per reason.", "sequence", "reason")
	knockWindows    = gauge("knock_windows_open", "Sources whose completed knock sequence holds the service open now.", "sequence")
)

// newKnockCollector exports the knock sequences.
func newKnockCollector(src KnockSource) scrapeCollector {
	return scrapeCollector{
		fams: []family{knockInProgress, knockSuccess, knockFailures, knockWindows},
		read: func(s *scrape) error {
			src.KnockSequences(func(q KnockSequence) {
				s.add(knockInProgress, float64(q.InProgress), q.Sequence)
				s.add(knockSuccess, float64(q.Successes), q.Sequence)
				s.add(knockWindows, float64(q.WindowsOpen), q.Sequence)
			})
			src.KnockFailures(func(sequence, reason string, n uint64) {
				s.add(knockFailures, float64(n), sequence, reason)
			})
			return nil
		},
	}
}

package metrics

var (
	guardAttempts = counter("guard_attempts_total",
		"New connections a rate guard judged, per result (allowed, limited).",
		"guard", "result")
	guardEvictions = counter("guard_evictions_total",
		"Sources a rate guard forgot because it was full (SYN-only sources first).",
		"guard")
)

// newGuardCollector exports the rate guards' judgements.
func newGuardCollector(src GuardSource) scrapeCollector {
	return scrapeCollector{
		fams: []family{guardAttempts, guardEvictions},
		read: func(s *scrape) error {
			src.GuardAttempts(func(guard, result string, n uint64) {
				s.add(guardAttempts, float64(n), guard, result)
			})
			src.GuardEvictions(func(guard string, n uint64) {
				s.add(guardEvictions, float64(n), guard)
			})
			return nil
		},
	}
}

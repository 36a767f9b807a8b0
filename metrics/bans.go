package metrics

var (
	bansActive = gauge("bans_active", "Sources banned now.")
	bansIssued = counter("bans_issued_total",
		"Bans issued, per mechanism that banned (guard, recent, manual).",
		"source")
	banNotificationsDropped = counter("ban_notifications_dropped_total",
		"Ban and unban notifications lost to a full queue: kernel ban set updates and flow deletions that did not happen.")
)

// newBanCollector exports the ban list.
func newBanCollector(src BanSource) scrapeCollector {
	return scrapeCollector{
		fams: []family{bansActive, bansIssued, banNotificationsDropped},
		read: func(s *scrape) error {
			s.add(bansActive, float64(src.BansActive()))
			src.BansIssued(func(source string, n uint64) {
				s.add(bansIssued, float64(n), source)
			})
			s.add(banNotificationsDropped, float64(src.BanNotificationsDropped()))
			return nil
		},
	}
}

package metrics

var (
	bansActive = gauge("bans_active", "Sources banned now.")
	bansIssued = counter("bans_issued_total",
		"Bans issued, per mechanism that banned (guard, recent, manual).",
		"source")
	banNotificationsDropped = counter("ban_notifications_dropped_total",
		"Ban and unban notifications lost to a full queue: kernel ban set updates and flow deletions that did not happen.")
	allowsActive      = gauge("allows_active", "Temporary allows in force (nfqfw allows, and the fleet's with share: [allows]).")
	allowsBansLifted  = counter("allows_bans_lifted_total", "Bans lifted because an allow covers them.")
	allowsBansRefused = counter("allows_bans_refused_total",
		"Bans of this gateway (a guard's, nfqfw bans add) refused because an allow covers them; the other gateways' are nfqfw_fleet_decisions_refused_total.")
)

// newBanCollector exports the ban list.
func newBanCollector(src BanSource) scrapeCollector {
	return scrapeCollector{
		fams: []family{bansActive, bansIssued, banNotificationsDropped, allowsActive, allowsBansLifted, allowsBansRefused},
		read: func(s *scrape) error {
			s.add(bansActive, float64(src.BansActive()))
			src.BansIssued(func(source string, n uint64) {
				s.add(bansIssued, float64(n), source)
			})
			s.add(banNotificationsDropped, float64(src.BanNotificationsDropped()))
			a := src.Allows()
			s.add(allowsActive, float64(a.Active))
			s.add(allowsBansLifted, float64(a.Lifted))
			s.add(allowsBansRefused, float64(a.Refused))
			return nil
		},
	}
}

package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	bansActive = gauge("bans_active", "Sources banned now.")
	bansIssued = counter("bans_issued_total",
		"Bans issued, per mechanism that banned (guard, recent, manual).",
		"source")
	banNotificationsDropped = counter("ban_notifications_dropped_total",
		"Ban and unban notifications lost to a full queue: kernel ban set updates and flow deletions that did not happen.")
)

// banCollector exports the ban list.
type banCollector struct{ src BanSource }

func newBanCollector(src BanSource) banCollector { return banCollector{src} }

func (banCollector) describe(ch chan<- *prometheus.Desc) {
	describe(ch, bansActive, bansIssued, banNotificationsDropped)
}

func (c banCollector) update(ch chan<- prometheus.Metric) error {
	s := newScrape()
	s.add(bansActive, float64(c.src.BansActive()))
	c.src.BansIssued(func(source string, n uint64) {
		s.add(bansIssued, float64(n), source)
	})
	s.add(banNotificationsDropped, float64(c.src.BanNotificationsDropped()))
	s.emit(ch)
	return nil
}

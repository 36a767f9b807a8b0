package metrics

import "github.com/prometheus/client_golang/prometheus"

// banCollector exports the ban list.
type banCollector struct {
	src     BanSource
	active  *prometheus.Desc
	issued  *prometheus.Desc
	dropped *prometheus.Desc
}

func newBanCollector(src BanSource) *banCollector {
	return &banCollector{
		src: src,
		active: newDesc("bans_active",
			"Sources banned now."),
		issued: newDesc("bans_issued_total",
			"Bans issued, per mechanism that banned (guard, recent, manual).",
			"source"),
		dropped: newDesc("ban_notifications_dropped_total",
			"Ban and unban notifications lost to a full queue: kernel ban set updates and flow deletions that did not happen."),
	}
}

func (c *banCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.active
	ch <- c.issued
	ch <- c.dropped
}

func (c *banCollector) update(ch chan<- prometheus.Metric) error {
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(c.src.BansActive()))
	issued := newSamples(c.issued, prometheus.CounterValue)
	c.src.BansIssued(func(source string, n uint64) {
		issued.add(float64(n), source)
	})
	issued.emit(ch)
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(c.src.BanNotificationsDropped()))
	return nil
}

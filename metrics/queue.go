package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Kinds of queue reader errors, the "kind" label of
// nfqfw_queue_reader_errors_total.
const (
	ErrorKindVerdict = "verdict"
	ErrorKindOther   = "other"
)

// queueCollector exports the queue readers' counters.
type queueCollector struct {
	src     QueueSource
	packets *prometheus.Desc
	errors  *prometheus.Desc
	panics  *prometheus.Desc
}

func newQueueCollector(src QueueSource) *queueCollector {
	return &queueCollector{
		src: src,
		packets: newDesc("queue_packets_total",
			"Packets the queue reader received from the kernel.",
			"queue"),
		errors: newDesc("queue_reader_errors_total",
			"Errors the queue reader survived, per kind: verdict (a verdict the kernel did not take), other. Packets the kernel could not hand to a reader are nfqfw_kernel_queue_user_dropped_total (the socket sets NETLINK_NO_ENOBUFS, so no receive error reports them).",
			"queue", "kind"),
		panics: newDesc("queue_panics_total",
			"Panics recovered while deciding a packet; each was answered with the configured failure verdict.",
			"queue"),
	}
}

func (c *queueCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.packets
	ch <- c.errors
	ch <- c.panics
}

func (c *queueCollector) update(ch chan<- prometheus.Metric) error {
	packets := newSamples(c.packets, prometheus.CounterValue)
	errs := newSamples(c.errors, prometheus.CounterValue)
	panics := newSamples(c.panics, prometheus.CounterValue)
	c.src.QueueStats(func(s QueueStats) {
		q := strconv.Itoa(int(s.Queue))
		packets.add(float64(s.Packets), q)
		errs.add(float64(s.VerdictErrors), q, ErrorKindVerdict)
		errs.add(float64(s.OtherErrors), q, ErrorKindOther)
		panics.add(float64(s.Panics), q)
	})
	packets.emit(ch)
	errs.emit(ch)
	panics.emit(ch)
	return nil
}

package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// kernelCollector exports the kernel's per-queue counters from
// /proc/net/netfilter/nfnetlink_queue.
type kernelCollector struct {
	src         ProcSource
	length      *prometheus.Desc
	dropped     *prometheus.Desc
	userDropped *prometheus.Desc
}

func newKernelCollector(src ProcSource) *kernelCollector {
	return &kernelCollector{
		src: src,
		length: newDesc("kernel_queue_length",
			"Packets waiting in the kernel queue for a verdict (queue_total).",
			"queue"),
		dropped: newDesc("kernel_queue_dropped_total",
			"Packets the kernel dropped because the queue was full (queue_dropped; 32 bits, wraps). Packets accepted by fail_open are not counted by the kernel.",
			"queue"),
		userDropped: newDesc("kernel_queue_user_dropped_total",
			"Packets the kernel could not hand to the reader because its socket buffer was full (queue_user_dropped; 32 bits, wraps).",
			"queue"),
	}
}

func (c *kernelCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.length
	ch <- c.dropped
	ch <- c.userDropped
}

func (c *kernelCollector) update(ch chan<- prometheus.Metric) error {
	qs, err := c.src()
	if err != nil {
		return err
	}
	length := newSamples(c.length, prometheus.GaugeValue)
	dropped := newSamples(c.dropped, prometheus.CounterValue)
	user := newSamples(c.userDropped, prometheus.CounterValue)
	for _, q := range qs {
		n := strconv.Itoa(int(q.Queue))
		length.add(float64(q.Length), n)
		dropped.add(float64(q.Dropped), n)
		user.add(float64(q.UserDropped), n)
	}
	length.emit(ch)
	dropped.emit(ch)
	user.emit(ch)
	return nil
}

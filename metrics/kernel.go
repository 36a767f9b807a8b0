package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	kernelQueueLength = gauge("kernel_queue_length",
		"Packets waiting in the kernel queue for a verdict (queue_total).",
		"queue")
	kernelQueueDropped = counter("kernel_queue_dropped_total",
		"Packets the kernel dropped because the queue was full (queue_dropped; 32 bits, wraps). Packets accepted by fail_open are not counted by the kernel.",
		"queue")
	kernelQueueUserDropped = counter("kernel_queue_user_dropped_total",
		"Packets the kernel could not hand to the reader because its socket buffer was full (queue_user_dropped; 32 bits, wraps).",
		"queue")
)

// kernelCollector exports the kernel's per-queue counters from
// /proc/net/netfilter/nfnetlink_queue.
type kernelCollector struct{ src ProcSource }

func newKernelCollector(src ProcSource) kernelCollector { return kernelCollector{src} }

func (kernelCollector) describe(ch chan<- *prometheus.Desc) {
	describe(ch, kernelQueueLength, kernelQueueDropped, kernelQueueUserDropped)
}

func (c kernelCollector) update(ch chan<- prometheus.Metric) error {
	qs, err := c.src()
	if err != nil {
		return err
	}
	s := newScrape()
	for _, q := range qs {
		n := strconv.Itoa(int(q.Queue))
		s.add(kernelQueueLength, float64(q.Length), n)
		s.add(kernelQueueDropped, float64(q.Dropped), n)
		s.add(kernelQueueUserDropped, float64(q.UserDropped), n)
	}
	s.emit(ch)
	return nil
}

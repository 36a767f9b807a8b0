package metrics

import "strconv"

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

// newKernelCollector exports the kernel's per-queue counters from
// /proc/net/netfilter/nfnetlink_queue.
func newKernelCollector(src ProcSource) scrapeCollector {
	return scrapeCollector{
		fams: []family{kernelQueueLength, kernelQueueDropped, kernelQueueUserDropped},
		read: func(s *scrape) error {
			qs, err := src()
			if err != nil {
				return err
			}
			for _, q := range qs {
				n := strconv.Itoa(int(q.Queue))
				s.add(kernelQueueLength, float64(q.Length), n)
				s.add(kernelQueueDropped, float64(q.Dropped), n)
				s.add(kernelQueueUserDropped, float64(q.UserDropped), n)
			}
			return nil
		},
	}
}

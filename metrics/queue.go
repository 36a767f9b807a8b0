package metrics

import "strconv"

// Kinds of queue reader errors, the "kind" label of
// nfqfw_queue_reader_errors_total.
const (
	ErrorKindVerdict = "verdict"
	ErrorKindOther   = "other"
)

var (
	queuePackets = counter("queue_packets_total", "Packets the queue reader received from the kernel.", "queue")
	queueErrors  = counter("queue_reader_errors_total",
		"Errors the queue reader survived, per kind: verdict (a verdict the kernel did not take), other. Packets the kernel could not hand to a reader are nfqfw_kernel_queue_user_dropped_total (the socket sets NETLINK_NO_ENOBUFS, so no receive error reports them).",
		"queue", "kind")
	queuePanics = counter("queue_panics_total",
		"Panics recovered while deciding a packet; each was answered with the configured failure verdict.",
		"queue")
)

// newQueueCollector exports the queue readers' counters.
func newQueueCollector(src QueueSource) scrapeCollector {
	return scrapeCollector{
		fams: []family{queuePackets, queueErrors, queuePanics},
		read: func(s *scrape) error {
			src.QueueStats(func(st QueueStats) {
				q := strconv.Itoa(int(st.Queue))
				s.add(queuePackets, float64(st.Packets), q)
				s.add(queueErrors, float64(st.VerdictErrors), q, ErrorKindVerdict)
				s.add(queueErrors, float64(st.OtherErrors), q, ErrorKindOther)
				s.add(queuePanics, float64(st.Panics), q)
			})
			return nil
		},
	}
}

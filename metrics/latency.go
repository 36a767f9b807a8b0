package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// LatencyBuckets are the upper bounds, in seconds, of the verdict latency
// histogram: 5µs to 50ms. A queued packet costs about 110–170µs end to end
// on the reference machine, the engine's own decision a few microseconds.
var LatencyBuckets = []float64{
	5e-6, 10e-6, 25e-6, 50e-6,
	100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3,
	10e-3, 25e-3, 50e-3,
}

func newLatency() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "verdict_latency_seconds",
		Help:      "Time from receiving a packet from the queue to issuing its verdict.",
		Buckets:   LatencyBuckets,
	}, []string{"queue"})
}

// LatencyObserver returns the verdict latency histogram of queue. A queue
// reader calls it once when it opens its queue and then calls Observe with
// each packet's latency in seconds: Observe is lock-free and does not
// allocate, and may be called from any goroutine.
func (m *Metrics) LatencyObserver(queue uint16) prometheus.Observer {
	return m.latency.WithLabelValues(strconv.Itoa(int(queue)))
}

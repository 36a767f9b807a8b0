package metrics

import "github.com/prometheus/client_golang/prometheus"

// flowCollector exports the flow table's size per state and its totals.
type flowCollector struct {
	src       FlowSource
	flows     *prometheus.Desc
	evictions *prometheus.Desc
	tableFull *prometheus.Desc
	expired   *prometheus.Desc
}

func newFlowCollector(src FlowSource) *flowCollector {
	return &flowCollector{
		src: src,
		flows: newDesc("flows",
			"Flows in the flow table per state.",
			"state"),
		evictions: newDesc("flow_evictions_total",
			"Live flows evicted from the full flow table to make room for a new one."),
		tableFull: newDesc("flow_table_full_total",
			"New flows refused because the flow table was full and nothing could be evicted."),
		expired: newDesc("flows_expired_total",
			"Flows removed from the flow table because their timeout passed."),
	}
}

func (c *flowCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.flows
	ch <- c.evictions
	ch <- c.tableFull
	ch <- c.expired
}

func (c *flowCollector) update(ch chan<- prometheus.Metric) error {
	flows := newSamples(c.flows, prometheus.GaugeValue)
	c.src.FlowCounts(func(state string, n int) {
		flows.add(float64(n), state)
	})
	flows.emit(ch)

	st := c.src.FlowStats()
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(c.tableFull, prometheus.CounterValue, float64(st.TableFull))
	ch <- prometheus.MustNewConstMetric(c.expired, prometheus.CounterValue, float64(st.Expired))
	return nil
}

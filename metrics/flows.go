package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	flowsByState  = gauge("flows", "Flows in the flow table per state.", "state")
	flowEvictions = counter("flow_evictions_total", "Live flows evicted from the full flow table to make room for a new one.")
	flowTableFull = counter("flow_table_full_total", "New flows refused because the flow table was full and nothing could be evicted.")
	flowsExpired  = counter("flows_expired_total", "Flows removed from the flow table because their timeout passed.")
)

// flowCollector exports the flow table's size per state and its totals.
type flowCollector struct{ src FlowSource }

func newFlowCollector(src FlowSource) flowCollector { return flowCollector{src} }

func (flowCollector) describe(ch chan<- *prometheus.Desc) {
	describe(ch, flowsByState, flowEvictions, flowTableFull, flowsExpired)
}

func (c flowCollector) update(ch chan<- prometheus.Metric) error {
	s := newScrape()
	c.src.FlowCounts(func(state string, n int) {
		s.add(flowsByState, float64(n), state)
	})
	st := c.src.FlowStats()
	s.add(flowEvictions, float64(st.Evictions))
	s.add(flowTableFull, float64(st.TableFull))
	s.add(flowsExpired, float64(st.Expired))
	s.emit(ch)
	return nil
}

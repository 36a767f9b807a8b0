package metrics

var (
	flowsByState  = gauge("flows", "Flows in the flow table per state.", "state")
	flowEvictions = counter("flow_evictions_total", "Live flows evicted from the full flow table to make room for a new one.")
	flowTableFull = counter("flow_table_full_total", "New flows refused because the flow table was full and nothing could be evicted.")
	flowsExpired  = counter("flows_expired_total", "Flows removed from the flow table because their timeout passed.")
)

// newFlowCollector exports the flow table's size per state and its totals.
func newFlowCollector(src FlowSource) scrapeCollector {
	return scrapeCollector{
		fams: []family{flowsByState, flowEvictions, flowTableFull, flowsExpired},
		read: func(s *scrape) error {
			src.FlowCounts(func(state string, n int) {
				s.add(flowsByState, float64(n), state)
			})
			st := src.FlowStats()
			s.add(flowEvictions, float64(st.Evictions))
			s.add(flowTableFull, float64(st.TableFull))
			s.add(flowsExpired, float64(st.Expired))
			return nil
		},
	}
}

package metrics

var (
	enginePackets = counter("packets_total",
		`Packets decided per rule and action; rule is "" for the chain's default policy.`,
		"chain", "rule", "action")
	engineVerdicts = counter("verdicts_total", "Packets decided per action and reason.", "action", "reason")
	engineNewFlows = counter("flows_new_total", "Flows admitted into the flow table per protocol.", "proto")
	logLines       = counter("log_lines_total", "Packet log lines written.")
	logSuppressed  = counter("log_suppressed_total", "Packet log lines suppressed by the log rate limit.")
	flowsPickedUp  = counter("flows_picked_up_total",
		"Flows admitted from a TCP segment without SYN that belonged to no known flow (mid-stream pickup).")
	flowsAdopted = counter("flows_adopted_total",
		"Kernel flows adopted at start, after a resync or at an HA promotion because the policy admits their first packet.")
)

// newEngineCollector exports the policy engine's verdict, new-flow and packet
// log counters.
func newEngineCollector(src EngineSource) scrapeCollector {
	return scrapeCollector{
		fams: []family{enginePackets, engineVerdicts, engineNewFlows, logLines, logSuppressed, flowsPickedUp, flowsAdopted},
		read: func(s *scrape) error {
			src.RuleCounts(func(r RuleCount) {
				s.add(enginePackets, float64(r.Packets), r.Chain, r.Rule, r.Action)
			})
			src.ReasonCounts(func(reason, action string, n uint64) {
				s.add(engineVerdicts, float64(n), action, reason)
			})
			src.NewFlowCounts(func(proto string, n uint64) {
				s.add(engineNewFlows, float64(n), proto)
			})
			written, suppressed := src.LogCounts()
			s.add(logLines, float64(written))
			s.add(logSuppressed, float64(suppressed))
			picked, adopted := src.KnownFlowCounts()
			s.add(flowsPickedUp, float64(picked))
			s.add(flowsAdopted, float64(adopted))
			return nil
		},
	}
}

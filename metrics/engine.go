package metrics

import "github.com/prometheus/client_golang/prometheus"

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

// engineCollector exports the policy engine's verdict, new-flow and packet
// log counters.
type engineCollector struct{ src EngineSource }

func newEngineCollector(src EngineSource) engineCollector { return engineCollector{src} }

func (engineCollector) describe(ch chan<- *prometheus.Desc) {
	describe(ch, enginePackets, engineVerdicts, engineNewFlows, logLines, logSuppressed, flowsPickedUp, flowsAdopted)
}

func (c engineCollector) update(ch chan<- prometheus.Metric) error {
	s := newScrape()
	c.src.RuleCounts(func(r RuleCount) {
		s.add(enginePackets, float64(r.Packets), r.Chain, r.Rule, r.Action)
	})
	c.src.ReasonCounts(func(reason, action string, n uint64) {
		s.add(engineVerdicts, float64(n), action, reason)
	})
	c.src.NewFlowCounts(func(proto string, n uint64) {
		s.add(engineNewFlows, float64(n), proto)
	})
	written, suppressed := c.src.LogCounts()
	s.add(logLines, float64(written))
	s.add(logSuppressed, float64(suppressed))
	picked, adopted := c.src.KnownFlowCounts()
	s.add(flowsPickedUp, float64(picked))
	s.add(flowsAdopted, float64(adopted))
	s.emit(ch)
	return nil
}

package metrics

import "github.com/prometheus/client_golang/prometheus"

// engineCollector exports the policy engine's verdict, new-flow and packet
// log counters.
type engineCollector struct {
	src           EngineSource
	packets       *prometheus.Desc
	verdicts      *prometheus.Desc
	newFlows      *prometheus.Desc
	logLines      *prometheus.Desc
	logSuppressed *prometheus.Desc
	pickedUp      *prometheus.Desc
	adopted       *prometheus.Desc
}

func newEngineCollector(src EngineSource) *engineCollector {
	return &engineCollector{
		src: src,
		packets: newDesc("packets_total",
			`Packets decided per rule and action; rule is "" for the chain's default policy.`,
			"chain", "rule", "action"),
		verdicts: newDesc("verdicts_total",
			"Packets decided per action and reason.",
			"action", "reason"),
		newFlows: newDesc("flows_new_total",
			"Flows admitted into the flow table per protocol.",
			"proto"),
		logLines: newDesc("log_lines_total",
			"Packet log lines written."),
		logSuppressed: newDesc("log_suppressed_total",
			"Packet log lines suppressed by the log rate limit."),
		pickedUp: newDesc("flows_picked_up_total",
			"Flows admitted from a TCP segment without SYN that belonged to no known flow (mid-stream pickup)."),
		adopted: newDesc("flows_adopted_total",
			"Kernel flows adopted at start or after a resync because the policy admits their first packet."),
	}
}

func (c *engineCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.packets
	ch <- c.verdicts
	ch <- c.newFlows
	ch <- c.logLines
	ch <- c.logSuppressed
	ch <- c.pickedUp
	ch <- c.adopted
}

func (c *engineCollector) update(ch chan<- prometheus.Metric) error {
	packets := newSamples(c.packets, prometheus.CounterValue)
	c.src.RuleCounts(func(r RuleCount) {
		packets.add(float64(r.Packets), r.Chain, r.Rule, r.Action)
	})
	packets.emit(ch)

	verdicts := newSamples(c.verdicts, prometheus.CounterValue)
	c.src.ReasonCounts(func(reason, action string, n uint64) {
		verdicts.add(float64(n), action, reason)
	})
	verdicts.emit(ch)

	flows := newSamples(c.newFlows, prometheus.CounterValue)
	c.src.NewFlowCounts(func(proto string, n uint64) {
		flows.add(float64(n), proto)
	})
	flows.emit(ch)

	written, suppressed := c.src.LogCounts()
	ch <- prometheus.MustNewConstMetric(c.logLines, prometheus.CounterValue, float64(written))
	ch <- prometheus.MustNewConstMetric(c.logSuppressed, prometheus.CounterValue, float64(suppressed))
	picked, adopted := c.src.KnownFlowCounts()
	ch <- prometheus.MustNewConstMetric(c.pickedUp, prometheus.CounterValue, float64(picked))
	ch <- prometheus.MustNewConstMetric(c.adopted, prometheus.CounterValue, float64(adopted))
	return nil
}

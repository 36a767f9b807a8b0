// Package metrics exports nfqfw's counters to Prometheus.
//
// No other package of nfqfw imports Prometheus on its packet path: the
// engine, the queue readers, the flow table and the stateful matchers keep
// plain atomic counters, and the collectors here read them at scrape time
// through small interfaces (EngineSource, FlowSource, QueueSource,
// ProcSource, RecentSource, GuardSource, BanSource, KnockSource, FTPSource,
// FleetSource, HASource)
// that speak only plain values. The daemon adapts each package to its
// interface in a few lines, for example:
//
//	type engineStats struct{ e *engine.Engine }
//
//	func (s engineStats) RuleCounts(fn func(metrics.RuleCount)) {
//		s.e.RuleCounts(func(c engine.RuleCount) {
//			fn(metrics.RuleCount{Chain: c.Hook.String(), Rule: c.Rule,
//				Action: c.Action.String(), Packets: c.Packets})
//		})
//	}
//
// The one exception is the verdict latency histogram: a queue reader asks
// LatencyObserver for its queue's prometheus.Observer once, and calls its
// Observe per packet (lock-free and allocation-free).
//
// Metrics is built once with New; a nil source leaves its families out.
// Every family carries the nfqfw_ prefix, counters end in _total, values are
// in base units (seconds), and label values come from small fixed sets
// (chain, rule name, action, reason, queue number, state, list or sequence
// name): never an address. Each scrape reports, per collector, how long it
// took and whether it succeeded (nfqfw_scrape_collector_duration_seconds,
// nfqfw_scrape_collector_success), as node_exporter does; a collector that
// fails or panics costs its own families only, never the daemon.
//
// The Grafana dashboard for these families is dashboard/nfqfw.json.
package metrics

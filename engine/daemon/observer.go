package daemon

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/ctnl"
	"github.com/nfqfw/nfqfw/engine/nfq"
	"github.com/nfqfw/nfqfw/metrics"
	"github.com/nfqfw/nfqfw/rules"
)

// observer adapts the daemon's parts to the metrics package's sources.
// Every method runs on the scrape goroutine.
type observer struct {
	d       *Daemon
	metrics *metrics.Metrics
	ct      atomic.Pointer[ctnl.Follower]
}

func newObserver(d *Daemon) *observer {
	o := &observer{d: d}
	o.metrics = metrics.New(metrics.Options{
		Version:      d.opts.Version,
		Engine:       engineSource{d.eng},
		Flows:        flowSource{d.eng.Flows()},
		Queues:       queueSource{d},
		Kernel:       procSource,
		ConfigHash:   d.eng.Policy().Hash(),
		ConfigLoaded: time.Now(),
		Logger:       d.log,
	})
	return o
}

func (o *observer) setConntrack(f *ctnl.Follower) { o.ct.Store(f) }

func (o *observer) reloaded(ok bool, hash string) {
	if o == nil {
		return
	}
	res := metrics.ReloadSuccess
	if !ok {
		res = metrics.ReloadFailure
	}
	o.metrics.ReloadObserved(res, hash, time.Now())
}

func procSource() ([]metrics.ProcQueue, error) {
	qs, err := nfq.ReadProcStats("/proc/net/netfilter/nfnetlink_queue")
	if err != nil {
		return nil, err
	}
	out := make([]metrics.ProcQueue, len(qs))
	for i, q := range qs {
		out[i] = metrics.ProcQueue{Queue: q.Queue, Length: uint64(q.QueueTotal), Dropped: uint64(q.Dropped), UserDropped: uint64(q.UserDropped)}
	}
	return out, nil
}

type engineSource struct{ e *engine.Engine }

func (s engineSource) RuleCounts(fn func(metrics.RuleCount)) {
	s.e.RuleCounts(func(c engine.RuleCount) {
		fn(metrics.RuleCount{Chain: c.Hook.String(), Rule: c.Rule, Action: c.Action.String(), Packets: c.Packets})
	})
}

func (s engineSource) ReasonCounts(fn func(reason, action string, packets uint64)) {
	s.e.ReasonCounts(func(r engine.Reason, a rules.Action, n uint64) { fn(r.String(), a.String(), n) })
}

func (s engineSource) NewFlowCounts(fn func(proto string, flows uint64)) { s.e.NewFlowCounts(fn) }
func (s engineSource) LogCounts() (uint64, uint64)                       { return s.e.LogCounts() }

type flowSource struct{ t *engine.Table }

func (s flowSource) FlowCounts(fn func(state string, flows int)) {
	c := s.t.Counts()
	for st := engine.TCPSynSent; st < engine.NumTCPStates; st++ {
		fn("tcp_"+strings.ToLower(st.String()), c.TCP[st])
	}
	fn("udp", c.UDP)
	fn("icmp", c.ICMP)
	fn("other", c.Other)
}

func (s flowSource) FlowStats() metrics.FlowStats {
	st := s.t.Stats()
	return metrics.FlowStats{Evictions: st.Evicted, TableFull: st.Refused, Expired: st.Expired}
}

type queueSource struct{ d *Daemon }

func (s queueSource) QueueStats(fn func(metrics.QueueStats)) {
	for _, q := range s.d.queues {
		st := q.r.Stats()
		fn(metrics.QueueStats{Queue: q.num, Packets: st.Packets, ENOBUFS: st.ENOBUFS, VerdictErrors: st.VerdictErrors,
			OtherErrors: st.Errors + st.Malformed, Panics: st.Panics})
	}
}

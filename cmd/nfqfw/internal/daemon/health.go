package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nfqfw/nfqfw/engine/ctnl"
	"github.com/prometheus/client_golang/prometheus"
)

// Subsystems, the label values of nfqfw_subsystem_up. The README's failure
// policy table says what a failure of each does.
const (
	subQueue     = "queue"          // the queue readers: essential
	subConntrack = "conntrack"      // the conntrack event follower
	subControl   = "control"        // the control socket
	subMetrics   = "metrics"        // the metrics listener
	subPprof     = "pprof"          // the profiling listener
	subState     = "state_saver"    // state.json persistence
	subBans      = "ban_sync"       // ban sets (ipset) and flow deletion
	subRuleset   = "kernel_ruleset" // nfqfw's chains and jumps as installed
)

// Reasons of nfqfw_ruleset_reinstalls_total.
const (
	reinstallChains = "chains" // chains or jumps flushed, deleted or replaced
	reinstallSets   = "sets"   // ban sets destroyed as well
)

// supervision backs off between restarts of a failed auxiliary subsystem,
// doubling from backoffMin to backoffMax; a run longer than backoffReset
// starts again from backoffMin.
const (
	backoffMin   = time.Second
	backoffMax   = 30 * time.Second
	backoffReset = time.Minute
)

// health is the daemon's view of its own subsystems: exported as metrics,
// listed by "nfqfw health" while anything is wrong.
type health struct {
	log        *slog.Logger
	up         *prometheus.GaugeVec
	failures   *prometheus.CounterVec
	reinstalls *prometheus.CounterVec
	diskDiff   prometheus.Gauge

	mu       sync.Mutex
	problems map[string]string // key: subsystem; value: what is wrong
	config   string            // the config file on disk is not the running one: why ("" when it is)
}

func newHealth(log *slog.Logger, reg prometheus.Registerer) *health {
	h := &health{
		log: log,
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nfqfw_subsystem_up",
			Help: "1 while the subsystem works, 0 while it is failed (and retried with backoff); see the README's failure policy.",
		}, []string{"subsystem"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nfqfw_subsystem_failures_total",
			Help: "Failures of a subsystem; each is logged and, for an auxiliary one, retried with backoff.",
		}, []string{"subsystem"}),
		reinstalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nfqfw_ruleset_reinstalls_total",
			Help: "Times nfqfw found its kernel ruleset changed by another tool and installed it again.",
		}, []string{"reason"}),
		diskDiff: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nfqfw_config_file_differs",
			Help: "1 when the config file on disk is not the config in force (a reload was refused or rolled back).",
		}),
		problems: map[string]string{},
	}
	for _, r := range []string{reinstallChains, reinstallSets} {
		h.reinstalls.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(h.up, h.failures, h.reinstalls, h.diskDiff)
	}
	return h
}

// set records subsystem sub as working (err nil) or failed.
func (h *health) set(sub string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.up.WithLabelValues(sub).Set(1)
		delete(h.problems, sub)
		return
	}
	h.up.WithLabelValues(sub).Set(0)
	h.problems[sub] = err.Error()
}

// failed records a failure of sub: counted, logged at warning level, and
// shown by health until set(sub, nil).
func (h *health) failed(sub string, err error) {
	h.failures.WithLabelValues(sub).Inc()
	h.set(sub, err)
	h.log.Warn("subsystem failed", "subsystem", sub, "err", err)
}

// configDiffers records that the file on disk is not the config in force
// (empty disk hash: the file did not load); ok clears it.
func (h *health) configDiffers(running, disk string, why error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if why == nil {
		h.config = ""
		h.diskDiff.Set(0)
		return
	}
	if disk == "" {
		disk = "unloadable"
	}
	h.config = fmt.Sprintf("config file on disk (hash %.12s) is not the running config (hash %.12s): %v", disk, running, why)
	h.diskDiff.Set(1)
}

// warnings returns what health shows without failing: the config file on
// disk differing from the running config (the firewall runs as before).
func (h *health) warnings() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.config == "" {
		return nil
	}
	return []string{h.config}
}

// list returns what is wrong, one line per subsystem, sorted: a failed
// subsystem, the kernel ruleset changed by another tool.
func (h *health) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.problems))
	for k, v := range h.problems {
		out = append(out, k+": "+v)
	}
	sort.Strings(out)
	return out
}

// supervise runs the auxiliary subsystem fn until ctx ends. When fn
// returns early (an error, or nil before ctx ended) the failure is logged,
// counted and shown by health, and fn runs again after a backoff: an
// auxiliary subsystem never stops the daemon or touches the ruleset.
func (h *health) supervise(ctx context.Context, sub string, fn func(ctx context.Context) error) {
	backoff := backoffMin
	for {
		h.set(sub, nil)
		start := time.Now()
		err := fn(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("stopped")
		}
		if time.Since(start) > backoffReset {
			backoff = backoffMin
		}
		h.failed(sub, fmt.Errorf("%w; retrying in %s", err, backoff))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// registerHealthMetrics exports what the daemon's parts count but no other
// collector shows: conntrack follower overruns and resyncs, queue ids the
// readers never saw, packets from a hook nfqfw does not queue from. Call it
// once the queues are open.
func (d *Daemon) registerHealthMetrics() {
	reg := d.obs.metrics.Registry()
	ct := func(f func(s ctnl.Stats) uint64) func() float64 {
		return func() float64 {
			if c := d.obs.ct.Load(); c != nil {
				return float64(f(c.Stats()))
			}
			return 0
		}
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "nfqfw_conntrack_overruns_total",
			Help: "Conntrack event socket overruns (ENOBUFS): the kernel dropped events, and the follower resynced.",
		}, ct(func(s ctnl.Stats) uint64 { return s.ENOBUFS })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "nfqfw_conntrack_resyncs_total",
			Help: "Conntrack table dumps done after an overrun to put the flow table back in step.",
		}, ct(func(s ctnl.Stats) uint64 { return s.Resyncs })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "nfqfw_conntrack_resync_errors_total",
			Help: "Resync dumps that failed.",
		}, ct(func(s ctnl.Stats) uint64 { return s.ResyncErrors })),
	)
	for _, q := range d.queues {
		q := q
		labels := prometheus.Labels{"queue": fmt.Sprint(q.num)}
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "nfqfw_queue_skipped_ids_total",
				Help:        "Packet ids the queue reader never saw (lost or unparsable messages); answered with the failure verdict.",
				ConstLabels: labels,
			}, func() float64 { return float64(q.r.Stats().Unseen) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "nfqfw_queue_unplaced_total",
				Help:        "Packets queued from a hook nfqfw does not map; answered with the failure verdict.",
				ConstLabels: labels,
			}, func() float64 { return float64(q.dec.Unplaced()) }),
		)
	}
}

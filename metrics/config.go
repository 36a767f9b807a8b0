package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a config reload, the "result" label of
// nfqfw_config_reloads_total.
const (
	ReloadSuccess = "success"
	ReloadFailure = "failure"
)

// configMetrics tracks the running config and its reloads.
type configMetrics struct {
	mu          sync.Mutex // orders reloads: info's hash and the timestamp move together
	reloads     *prometheus.CounterVec
	info        *prometheus.GaugeVec
	lastReload  *prometheus.GaugeVec // no labels: absent until the first load
	lastSuccess *prometheus.GaugeVec
}

func newConfigMetrics() *configMetrics {
	c := &configMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "config_reloads_total",
			Help: "Config reloads attempted, per result (success, failure).",
		}, []string{"result"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_info",
			Help: "Always 1; the hash label names the config in force and changes on each successful reload that changes the config.",
		}, []string{"hash"}),
		lastReload: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_last_reload_timestamp_seconds",
			Help: "Unix time of the last config load or reload attempt.",
		}, nil),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_last_reload_success",
			Help: "Whether the last config load or reload attempt succeeded (1) or left the previous config in force (0).",
		}, nil),
	}
	c.reloads.WithLabelValues(ReloadSuccess)
	c.reloads.WithLabelValues(ReloadFailure)
	return c
}

func (c *configMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.reloads, c.info, c.lastReload, c.lastSuccess}
}

// loaded records the config in force without counting a reload.
func (c *configMetrics) loaded(hash string, ok bool, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		c.info.Reset()
		c.info.WithLabelValues(hash).Set(1)
		c.lastSuccess.WithLabelValues().Set(1)
	} else {
		c.lastSuccess.WithLabelValues().Set(0)
	}
	if at.IsZero() {
		at = time.Now()
	}
	c.lastReload.WithLabelValues().Set(float64(at.UnixNano()) / 1e9)
}

// ReloadObserved records a config reload attempt at time at. result is
// ReloadSuccess or ReloadFailure (any other value counts as a failure, so
// that the label keeps its two values); hash names the config now in force
// and is only read on success: a failed reload leaves the previous config,
// and its hash, in force. Safe for concurrent use.
func (m *Metrics) ReloadObserved(result string, hash string, at time.Time) {
	if result != ReloadSuccess {
		result = ReloadFailure
	}
	m.config.reloads.WithLabelValues(result).Inc()
	m.config.loaded(hash, result == ReloadSuccess, at)
}

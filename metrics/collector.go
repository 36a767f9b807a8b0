package metrics

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "nfqfw"

// collector is one group of families read from one source. Descriptions are
// built once, in the constructor; update is called once per scrape.
type collector interface {
	describe(ch chan<- *prometheus.Desc)
	update(ch chan<- prometheus.Metric) error
}

// namedCollector is a collector with its label value in the scrape meta
// families.
type namedCollector struct {
	name string
	c    collector
}

// scraper runs every collector on each scrape, concurrently, and reports
// per collector how long it took and whether it succeeded.
type scraper struct {
	collectors []namedCollector
	duration   *prometheus.Desc
	success    *prometheus.Desc
	log        *slog.Logger
}

func newScraper(log *slog.Logger, cs []namedCollector) *scraper {
	return &scraper{
		collectors: cs,
		duration: prometheus.NewDesc(namespace+"_scrape_collector_duration_seconds",
			"Time a collector took to read its source during this scrape.",
			[]string{"collector"}, nil),
		success: prometheus.NewDesc(namespace+"_scrape_collector_success",
			"Whether a collector read its source without error during this scrape (1) or not (0).",
			[]string{"collector"}, nil),
		log: log,
	}
}

// Describe implements prometheus.Collector.
func (s *scraper) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.duration
	ch <- s.success
	for _, c := range s.collectors {
		c.c.describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (s *scraper) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for _, c := range s.collectors {
		wg.Go(func() { s.run(c, ch) })
	}
	wg.Wait()
}

func (s *scraper) run(c namedCollector, ch chan<- prometheus.Metric) {
	start := time.Now()
	err := safeUpdate(c.c, ch)
	elapsed := time.Since(start).Seconds()
	ok := 1.0
	if err != nil {
		ok = 0
		if s.log != nil {
			s.log.Warn("metrics collector failed", slog.String("collector", c.name), slog.Any("err", err))
		}
	}
	ch <- prometheus.MustNewConstMetric(s.duration, prometheus.GaugeValue, elapsed, c.name)
	ch <- prometheus.MustNewConstMetric(s.success, prometheus.GaugeValue, ok, c.name)
}

// safeUpdate runs c.update and turns a panic in a source into an error: a
// bug behind a metric must never take the firewall down.
func safeUpdate(c collector, ch chan<- prometheus.Metric) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("collector panicked: %v", r)
		}
	}()
	return c.update(ch)
}

// samples gathers the values a source reports for one family during one
// scrape, summing values reported under equal label values, so that a
// source that reports a label set twice yields one sample instead of a
// duplicate that the registry would reject.
type samples struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	m    map[string]*sample
}

type sample struct {
	labels []string
	v      float64
}

func newSamples(desc *prometheus.Desc, typ prometheus.ValueType) *samples {
	return &samples{desc: desc, typ: typ, m: make(map[string]*sample)}
}

func (s *samples) add(v float64, labels ...string) {
	k := strings.Join(labels, "\xff")
	if e, ok := s.m[k]; ok {
		e.v += v
		return
	}
	s.m[k] = &sample{labels: labels, v: v}
}

// emit sends the samples in label order.
func (s *samples) emit(ch chan<- prometheus.Metric) {
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		e := s.m[k]
		ch <- prometheus.MustNewConstMetric(s.desc, s.typ, e.v, e.labels...)
	}
}

// newDesc builds a description of the family nfqfw_<name>.
func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
}

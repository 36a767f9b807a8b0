package metrics

import (
	"fmt"
	"log/slog"
	"maps"
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

// A family is one exported metric family: its description, built once, and
// the type of its samples.
type family struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
}

// counter and gauge describe the family nfqfw_<name>.
func counter(name, help string, labels ...string) family {
	return family{newDesc(name, help, labels...), prometheus.CounterValue}
}

func gauge(name, help string, labels ...string) family {
	return family{newDesc(name, help, labels...), prometheus.GaugeValue}
}

// newDesc builds a description of the family nfqfw_<name>.
func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
}

// describe sends the descriptions of fams: a collector's describe method.
func describe(ch chan<- *prometheus.Desc, fams ...family) {
	for _, f := range fams {
		ch <- f.desc
	}
}

// scrapeCollector is a collector whose families all come from one scrape:
// read reports their values from the source, and a read that fails sends
// nothing (the scrape meta families count the failure).
type scrapeCollector struct {
	fams []family
	read func(s *scrape) error
}

func (c scrapeCollector) describe(ch chan<- *prometheus.Desc) { describe(ch, c.fams...) }

func (c scrapeCollector) update(ch chan<- prometheus.Metric) error {
	s := newScrape()
	if err := c.read(s); err != nil {
		return err
	}
	s.emit(ch)
	return nil
}

// scrape gathers the values a collector's source reports during one scrape,
// summing values reported under equal label values, so that a source that
// reports a label set twice yields one sample instead of a duplicate that
// the registry would reject.
type scrape struct {
	order []family
	m     map[*prometheus.Desc]map[string]*sample
}

type sample struct {
	labels []string
	v      float64
}

func newScrape() *scrape {
	return &scrape{m: make(map[*prometheus.Desc]map[string]*sample)}
}

// add reports value v of family f under labels.
func (s *scrape) add(f family, v float64, labels ...string) {
	byLabels, ok := s.m[f.desc]
	if !ok {
		byLabels = make(map[string]*sample)
		s.m[f.desc] = byLabels
		s.order = append(s.order, f)
	}
	k := strings.Join(labels, "\xff")
	if e, ok := byLabels[k]; ok {
		e.v += v
		return
	}
	byLabels[k] = &sample{labels: labels, v: v}
}

// emit sends the samples, family by family in the order first reported,
// each family's in label order.
func (s *scrape) emit(ch chan<- prometheus.Metric) {
	for _, f := range s.order {
		byLabels := s.m[f.desc]
		for _, k := range slices.Sorted(maps.Keys(byLabels)) {
			e := byLabels[k]
			ch <- prometheus.MustNewConstMetric(f.desc, f.typ, e.v, e.labels...)
		}
	}
}

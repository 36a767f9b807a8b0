package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddr is the exporter's default listen address: loopback only, so
// that exposing the firewall's counters beyond the host is a choice.
const DefaultAddr = "127.0.0.1:9469"

// MetricsPath is the URL path the exporter serves the exposition on.
const MetricsPath = "/metrics"

// Options are what New builds the exporter from. Each source that is nil
// leaves its families out of the exposition.
type Options struct {
	Version string // nfqfw's version, the version label of nfqfw_build_info

	Engine EngineSource
	Flows  FlowSource
	Queues QueueSource
	Kernel ProcSource // the kernel's queue table
	Recent RecentSource
	Guards GuardSource
	Bans   BanSource
	State  StateSource
	Knock  KnockSource
	FTP    FTPSource
	Fleet  FleetSource // nil without a fleet
	HA     HASource

	// ConfigHash names the config loaded at start; with ConfigLoaded (its
	// load time; zero means now) it sets nfqfw_config_info and the
	// last-reload families without counting a reload. Empty leaves those
	// families out until the first ReloadObserved.
	ConfigHash   string
	ConfigLoaded time.Time

	// NoRuntime leaves out the Go runtime and process collectors.
	NoRuntime bool

	// Logger receives collector failures; nil discards them.
	Logger *slog.Logger
}

// Metrics is nfqfw's Prometheus exporter: a registry holding every
// collector, built once by New. All methods are safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	latency *prometheus.HistogramVec
	config  *configMetrics
	handler http.Handler
}

// New builds the registry from opts. It panics only on a programming error
// (an inconsistent family), which the package's tests rule out.
func New(opts Options) *Metrics {
	m := &Metrics{
		reg:     prometheus.NewPedanticRegistry(),
		latency: newLatency(),
		config:  newConfigMetrics(),
	}

	var cs []namedCollector
	add := func(name string, c collector) { cs = append(cs, namedCollector{name, c}) }
	if opts.Engine != nil {
		add("engine", newEngineCollector(opts.Engine))
	}
	if opts.Flows != nil {
		add("flows", newFlowCollector(opts.Flows))
	}
	if opts.Queues != nil {
		add("queue", newQueueCollector(opts.Queues))
	}
	if opts.Kernel != nil {
		add("kernel", newKernelCollector(opts.Kernel))
	}
	if opts.Recent != nil {
		add("recent", newRecentCollector(opts.Recent))
	}
	if opts.Guards != nil {
		add("guard", newGuardCollector(opts.Guards))
	}
	if opts.Bans != nil {
		add("bans", newBanCollector(opts.Bans))
	}
	if opts.State != nil {
		add("state", newStateCollector(opts.State))
	}
	if opts.Knock != nil {
		add("knock", newKnockCollector(opts.Knock))
	}
	if opts.FTP != nil {
		add("ftp", newFTPCollector(opts.FTP))
	}
	if opts.Fleet != nil {
		add("fleet", newFleetCollector(opts.Fleet))
	}
	if opts.HA != nil {
		add("ha", newHACollector(opts.HA))
	}
	m.reg.MustRegister(newScraper(opts.Logger, cs))
	m.reg.MustRegister(m.latency)
	m.reg.MustRegister(m.config.collectors()...)
	m.reg.MustRegister(newBuildInfo(opts.Version))
	if !opts.NoRuntime {
		m.reg.MustRegister(collectors.NewGoCollector())
		m.reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if opts.ConfigHash != "" {
		m.config.loaded(opts.ConfigHash, true, opts.ConfigLoaded)
	}

	m.handler = promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            slogErrorLog{opts.Logger},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            m.reg,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	return m
}

// Registry returns the pedantic registry holding every collector, for tests
// and for callers that add their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler returns the HTTP handler serving the exposition.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Serve listens on addr and serves the exposition on MetricsPath until ctx
// ends, then shuts the server down and returns nil. An empty addr means the
// exporter is off: Serve returns ErrDisabled without listening.
func (m *Metrics) Serve(ctx context.Context, addr string) error {
	if addr == "" {
		return ErrDisabled
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listen %s: %w", addr, err)
	}
	return m.ServeListener(ctx, ln)
}

// ServeListener is Serve on a listener the caller opened; it closes ln.
func (m *Metrics) ServeListener(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, m.handler)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "nfqfw exporter: metrics at %s\n", MetricsPath)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("metrics: shut down %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// newBuildInfo is nfqfw_build_info: always 1, labelled with the version and
// the Go version that built the binary.
func newBuildInfo(version string) prometheus.Collector {
	if version == "" {
		version = "unknown"
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace:   namespace,
		Name:        "build_info",
		Help:        "Always 1; labelled with nfqfw's version and the Go version that built it.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	}, func() float64 { return 1 })
}

// slogErrorLog adapts a slog.Logger to promhttp's error logger.
type slogErrorLog struct{ l *slog.Logger }

func (s slogErrorLog) Println(v ...any) {
	if s.l != nil {
		s.l.Warn("metrics scrape", slog.String("err", fmt.Sprint(v...)))
	}
}

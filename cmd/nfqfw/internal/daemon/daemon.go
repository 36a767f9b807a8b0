package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/nfq"
	"github.com/nfqfw/nfqfw/rules"
	"github.com/nfqfw/nfqfw/rules/iptables"
)

// Options configure Run.
type Options struct {
	ConfigPath string
	Backend    rules.Backend // overrides the config's backend when not empty
	Version    string        // for the build-info metric
	Logger     *slog.Logger  // nil: built from the config's log section on stderr
	Pprof      string        // loopback address for net/http/pprof; "" disables
	Confirm    time.Duration // > 0: roll back a reload unless confirmed in time
	// SSHConnection is the invoking shell's SSH_CONNECTION: the start is
	// refused when the policy would refuse a new connection of it, or of
	// an established inbound ssh connection, unless Force.
	SSHConnection string
	Force         bool
}

// Daemon is a running nfqfw.
type Daemon struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex // serialises reloads and confirmations
	pending *pendingChange
	fatal   func(error) // stops Run with an error
	cfg     *rules.Config
	eng     *engine.Engine
	inst    *iptables.Installer
	state   *stateful
	obs     *observer
	start   time.Time
	queues  []*queueReader
}

// Run starts the daemon and blocks until ctx ends or a fatal error occurs.
// A config error is returned before anything is installed.
func Run(ctx context.Context, opts Options) error {
	if opts.Pprof != "" {
		if err := CheckPprofAddr(opts.Pprof); err != nil {
			return fmt.Errorf("pprof address %w", err)
		}
	}
	cfg, err := rules.LoadOnHost(opts.ConfigPath)
	if err != nil {
		return err
	}
	if opts.Backend != "" {
		cfg.Backend = opts.Backend
	}
	pol, err := rules.Compile(cfg)
	if err != nil {
		return err
	}
	log := opts.Logger
	if log == nil {
		log = NewLogger(cfg.Log, os.Stderr)
	}
	d := &Daemon{opts: opts, log: log, cfg: cfg, start: time.Now()}
	d.eng = engine.New(pol, engine.Options{Logger: log, LogRate: cfg.Log.Rate})
	if err := d.eng.RefreshInterfaces(); err != nil {
		log.Warn("read interfaces", "err", err)
	}
	d.state, err = newStateful(cfg, pol, log, d.eng.Flows())
	if err != nil {
		return err
	}
	defer func() { d.currentState().close() }()
	d.eng.SetPolicy(pol, d.state.matchers())
	if !opts.Force {
		// Nothing is installed yet: a start that would lock the operator
		// out is refused before it can.
		if err := lockout(ctx, log, pol, d.state.matchers(), opts.SSHConnection); err != nil {
			return err
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 16)
	d.fatal = func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	goRun := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	d.obs = newObserver(d)

	// The kernel's flows, from before this start, admitted as the policy
	// says before any queued packet of theirs is decided.
	d.adoptKernelFlows(ctx)

	// Bind the queues before the rules send packets to them.
	for i := 0; i < int(cfg.Queue.Count); i++ {
		q, err := d.openQueue(cfg.Queue.Number+uint16(i), cfg)
		if err != nil {
			d.closeQueues()
			return err
		}
		d.queues = append(d.queues, q)
	}
	for _, q := range d.queues {
		goRun(fmt.Sprintf("queue %d", q.num), q.r.Run)
	}

	backend, err := iptables.DetectBackend(cfg.Backend)
	if err != nil {
		cancel()
		return err
	}
	if err := d.state.prepareKernel(cfg); err != nil {
		cancel()
		return err
	}
	d.inst = iptables.NewInstaller(cfg, backend)
	if err := d.inst.Install(ctx); err != nil {
		cancel()
		return fmt.Errorf("install kernel ruleset: %w", err)
	}
	log.Info("nfqfw running", "config", cfg.File, "hash", pol.Hash(), "backend", backend.Kind,
		"queues", len(d.queues), "first_queue", cfg.Queue.Number, "bypass", cfg.Queue.Bypass, "fail_open", cfg.Queue.FailOpen)
	defer func() {
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer rcancel()
		if err := d.inst.Remove(rctx); err != nil {
			log.Error("remove kernel ruleset", "err", err)
		} else {
			log.Info("kernel ruleset removed")
			d.currentState().shared.kernel.destroy()
		}
	}()

	goRun("conntrack", d.followConntrack)
	goRun("housekeeping", d.housekeeping)
	if cfg.Metrics.Listen != "" {
		goRun("metrics", func(ctx context.Context) error { return d.obs.metrics.Serve(ctx, cfg.Metrics.Listen) })
	}
	if opts.Pprof != "" {
		goRun("pprof", func(ctx context.Context) error { return servePprof(ctx, opts.Pprof) })
	}
	ctl := control.NewServer(cfg.Control.Socket, log)
	d.registerControl(ctl)
	if err := ctl.Listen(); err != nil {
		cancel()
		return err
	}
	goRun("control", ctl.Serve)
	if opts.Confirm > 0 {
		d.mu.Lock()
		p := &pendingChange{}
		p.timer = time.AfterFunc(opts.Confirm, func() { d.rollback(p) })
		d.pending = p
		d.mu.Unlock()
		log.Warn("start must be confirmed or nfqfw stops and removes its ruleset", "within", opts.Confirm, "confirm_with", "nfqfw confirm")
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			log.Info("nfqfw stopping")
			return nil
		case <-hup:
			d.Reload(ctx, 0) // a refusal is logged and counted by Reload
		case err := <-errc:
			log.Error("nfqfw stopping on error", "err", err)
			cancel()
			return err
		}
	}
}

// Reload reads the config file again. A config that does not parse, compile
// or install leaves the running policy and kernel rules exactly as they were.
// With confirm > 0 the new config is rolled back to the one before it unless
// Confirm is called within confirm (like iptables-apply).
func (d *Daemon) Reload(ctx context.Context, confirm time.Duration) error {
	return d.ReloadWith(ctx, ReloadOptions{Confirm: confirm})
}

// ReloadOptions are the options of a reload.
type ReloadOptions struct {
	Confirm       time.Duration // > 0: roll back unless confirmed in time
	SSHConnection string        // the invoking shell's SSH_CONNECTION, a management connection
	Force         bool          // apply a config that would lock a management connection out
}

// ReloadWith is Reload with options. Unless o.Force, a config whose policy
// would refuse a new connection of a management session (o.SSHConnection,
// established inbound connections to the ssh ports) is refused (lockout).
func (d *Daemon) ReloadWith(ctx context.Context, o ReloadOptions) error {
	confirm := o.Confirm
	d.mu.Lock()
	defer d.mu.Unlock()
	before := d.cfg
	cfg, err := d.load()
	if err == nil && !o.Force {
		if pol, cerr := rules.Compile(cfg); cerr == nil {
			err = lockout(ctx, d.log, pol, d.state.preview(cfg, pol).matchers(), o.SSHConnection)
		}
	}
	if err == nil {
		err = d.applyLocked(ctx, cfg)
	}
	hash := d.eng.Policy().Hash()
	if err != nil {
		d.obs.reloaded(false, hash)
		d.log.Warn("reload refused; the running policy stays", "config", d.opts.ConfigPath, "err", err)
		return err
	}
	d.obs.reloaded(true, hash)
	d.log.Info("config reloaded", "config", d.cfg.File, "hash", hash)
	if confirm > 0 {
		if d.pending == nil {
			d.pending = &pendingChange{prev: before}
		} else {
			d.pending.timer.Stop() // a second change: roll back to the first's predecessor
		}
		p := d.pending
		p.timer = time.AfterFunc(confirm, func() { d.rollback(p) })
		d.log.Warn("config change must be confirmed", "within", confirm, "confirm_with", "nfqfw confirm")
	}
	return nil
}

// pendingChange is a config change not yet confirmed.
type pendingChange struct {
	prev  *rules.Config // nil: the start itself is unconfirmed
	timer *time.Timer
}

// Confirm makes the pending change permanent. It reports whether there was
// one.
func (d *Daemon) Confirm() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending == nil {
		return false
	}
	d.pending.timer.Stop()
	d.pending = nil
	d.log.Info("config change confirmed")
	return true
}

// rollback restores the config in force before an unconfirmed change, or
// stops the daemon when the start itself was not confirmed.
func (d *Daemon) rollback(p *pendingChange) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending != p {
		return // confirmed, or superseded
	}
	d.pending = nil
	if p.prev == nil {
		d.log.Error("start not confirmed in time: stopping and removing the ruleset")
		d.fatal(errNotConfirmed)
		return
	}
	if err := d.applyLocked(context.Background(), p.prev); err != nil {
		d.log.Error("rollback of an unconfirmed change failed", "err", err)
		return
	}
	d.obs.reloaded(true, d.eng.Policy().Hash())
	d.log.Warn("config change not confirmed in time: rolled back", "hash", d.eng.Policy().Hash())
}

var errNotConfirmed = errors.New("start not confirmed in time (--confirm): rolled back")

// load reads and validates the config file.
func (d *Daemon) load() (*rules.Config, error) {
	cfg, err := rules.LoadOnHost(d.opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	if d.opts.Backend != "" {
		cfg.Backend = d.opts.Backend
	}
	return cfg, nil
}

// applyLocked compiles cfg, installs its kernel ruleset atomically and swaps
// the policy in; on any error nothing changed.
func (d *Daemon) applyLocked(ctx context.Context, cfg *rules.Config) error {
	pol, err := rules.Compile(cfg)
	if err != nil {
		return err
	}
	if err := immutable(d.cfg, cfg); err != nil {
		return err
	}
	if err := d.state.prepareKernel(cfg); err != nil {
		return err
	}
	if err := d.inst.Replace(ctx, cfg); err != nil {
		return fmt.Errorf("install kernel ruleset: %w", err)
	}
	st := d.state.reloaded(cfg, pol)
	d.eng.SetPolicy(pol, st.matchers())
	d.state = st
	d.cfg = cfg
	return nil
}

// immutable refuses a reload that changes what needs a restart.
func immutable(old, cur *rules.Config) error {
	switch {
	case old.Queue.Number != cur.Queue.Number || old.Queue.Count != cur.Queue.Count:
		return fmt.Errorf("%w: queue.number and queue.count need a restart", errRestart)
	case old.Control.Socket != cur.Control.Socket:
		return fmt.Errorf("%w: control.socket needs a restart", errRestart)
	case old.Metrics.Listen != cur.Metrics.Listen:
		return fmt.Errorf("%w: metrics.listen needs a restart", errRestart)
	case old.Flows.Max != cur.Flows.Max:
		return fmt.Errorf("%w: flows.max needs a restart", errRestart)
	}
	return nil
}

var errRestart = errors.New("change refused on reload")

// housekeeping runs the periodic work that must stay off the packet path.
func (d *Daemon) housekeeping(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			n++
			d.eng.Flows().Expire(clock.Now())
			st := d.currentState()
			st.expire(now)
			if n%10 == 0 {
				if err := d.eng.RefreshInterfaces(); err != nil {
					d.log.Warn("read interfaces", "err", err)
				}
			}
		}
	}
}

// queueReader is one NFQUEUE reader with its engine worker.
type queueReader struct {
	num uint16
	r   *nfq.Reader
}

func (d *Daemon) closeQueues() {
	for _, q := range d.queues {
		q.r.Close()
	}
	d.queues = nil
}

func (d *Daemon) openQueue(num uint16, cfg *rules.Config) (*queueReader, error) {
	dec := d.eng.NewQueueDecider(d.obs.metrics.LatencyObserver(num))
	r, err := nfq.Open(nfq.Config{
		Queue:         num,
		MaxLen:        cfg.Queue.MaxLen,
		BatchSize:     cfg.Queue.Batch,
		FailOpen:      cfg.Queue.FailOpen,
		FailureAccept: cfg.Queue.FailureVerdict == rules.ActionAccept,
		Logger:        d.log,
	}, dec)
	if err != nil {
		return nil, err
	}
	return &queueReader{num: num, r: r}, nil
}

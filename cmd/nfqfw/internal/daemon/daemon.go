package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/ctnl"
	"github.com/nfqfw/nfqfw/engine/nfq"
	"github.com/nfqfw/nfqfw/rules"
)

// Options configure Run.
type Options struct {
	ConfigPath string
	Backend    rules.Backend // overrides the config's backend when not empty
	Version    string        // for the build-info metric
	Logger     *slog.Logger  // nil: built from the config's log section on stderr (and switched by reloads)
	Pprof      string        // loopback address for net/http/pprof; "" disables
	Confirm    time.Duration // > 0: roll back a reload unless confirmed in time
	// SSHConnection is the invoking shell's SSH_CONNECTION: the start is
	// refused when the policy would refuse a new connection of it, or of
	// an established inbound ssh connection, unless Force.
	SSHConnection string
	Force         bool

	// Signals delivers SIGHUP (reload) and SIGUSR2 (exit keeping the
	// ruleset, for a restart). The caller registers it first thing, so a
	// SIGHUP that arrives while the daemon starts is queued, never fatal.
	// nil: Run registers its own.
	Signals <-chan os.Signal
	// Notifier tells systemd READY=1, STOPPING=1 and WATCHDOG=1; nil:
	// NotifierFromEnv().
	Notifier *Notifier

	// kernel is the kernel the daemon works on; nil: the host's (tests
	// give a fake).
	kernel kernel
	// running, when set, is called with the daemon once it runs (tests).
	running func(*Daemon)
}

// ErrRestartKeepRules is returned by Run after SIGUSR2 or a "restart"
// request: the daemon saved its state and exited leaving its ruleset and
// ban sets in the kernel, so that the next start (the same or a new
// binary) takes over without the host being open for an instant.
var ErrRestartKeepRules = errors.New("exited for a restart: the kernel ruleset stays in force")

// Daemon is a running nfqfw.
type Daemon struct {
	opts   Options
	log    *slog.Logger
	health *health
	notify *Notifier

	reloadMu sync.Mutex // serialises reloads, confirmations and ruleset repairs; held across iptables-restore
	mu       sync.Mutex // guards cfg and state; held only to read or swap them
	pending  *pendingChange
	fatal    func(error) // stops Run with an error
	restart  func()      // stops Run keeping the ruleset
	cfg      *rules.Config
	eng      *engine.Engine
	inst     ruleset // nil until the ruleset is installed
	k        kernel
	state    *stateful
	obs      *observer
	start    time.Time
	queues   []*queueReader
	fleet    *fleetMember // nil without a fleet: section
	// ctEarly is the conntrack follower opened before the ruleset is
	// installed, until followConntrack takes it (see listenConntrack).
	ctEarly atomic.Pointer[ctnl.Follower]

	expiryTick atomic.Int64 // unix nanoseconds of housekeeping's last round: the watchdog's proof of life
	stalled    atomic.Bool  // the watchdog was not fed at its last ping
	ha         haState      // the role in a gateway pair ("nfqfw ha")
}

// Run starts the daemon and blocks until ctx ends (an explicit stop: the
// ruleset is removed), a restart is asked for (the ruleset stays:
// ErrRestartKeepRules), or an essential subsystem fails (the ruleset
// stays, the queue's bypass setting decides NEW flows while no daemon
// listens). Everything that can be checked is checked before any rule is
// installed: config, the instance locks, the metrics, pprof and control
// listeners, the state directory and file, the backend and the queues.
func Run(ctx context.Context, opts Options) error {
	if opts.Pprof != "" {
		if err := CheckPprofAddr(opts.Pprof); err != nil {
			return fmt.Errorf("pprof address %w", err)
		}
	}
	sigs := opts.Signals
	if sigs == nil {
		c := make(chan os.Signal, 4)
		signal.Notify(c, syscall.SIGHUP, syscall.SIGUSR2)
		defer signal.Stop(c)
		sigs = c
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
	if err := os.MkdirAll(cfg.State.Dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	k := opts.kernel
	if k == nil {
		k = defaultKernel
	}
	locks, err := lockInstance(k.lockDir(), cfg.State.Dir)
	if err != nil {
		return err
	}
	defer func() {
		for _, l := range locks {
			l.release()
		}
	}()
	notify := opts.Notifier
	if notify == nil {
		notify = NotifierFromEnv()
	}
	d := &Daemon{opts: opts, log: log, cfg: cfg, start: time.Now(), notify: notify, k: k}
	d.eng = engine.New(pol, engine.Options{Logger: log, LogRate: cfg.Log.Rate})
	if err := d.eng.RefreshInterfaces(); err != nil {
		log.Warn("read interfaces", "err", err)
	}
	d.state, err = newStateful(cfg, pol, log, d.eng.Flows(), k)
	if err != nil {
		return err
	}
	if d.fleet, err = newFleetMember(cfg, d.state.shared, log); err != nil {
		return err
	}
	d.state.shared.fleet.Store(d.fleet)
	// The last thing Run does: save the state, then, only after an
	// explicit stop, remove the ruleset (so the host is open for as short
	// a time as possible, and never after an error).
	removeRules := false
	defer func() {
		d.currentState().close()
		if d.inst == nil {
			return
		}
		if !removeRules {
			log.Warn("kernel ruleset left in force", "bypass", cfg.Queue.Bypass,
				"meaning", "while no daemon listens, NEW flows are "+map[bool]string{false: "dropped", true: "accepted"}[cfg.Queue.Bypass])
			return
		}
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer rcancel()
		if err := d.inst.Remove(rctx); err != nil {
			log.Error("remove kernel ruleset", "err", err)
		} else {
			log.Info("kernel ruleset removed")
			d.currentState().shared.kernel.destroy()
		}
	}()
	if err := d.state.checkFile(); err != nil {
		return err
	}
	d.eng.SetPolicy(pol, d.state.matchers())
	d.obs = newObserver(d)
	d.health = newHealth(log, d.obs.metrics.Registry())

	// Open every listener before a rule exists: a taken port or a bad
	// path refuses the start with nothing installed.
	var metricsLn, pprofLn net.Listener
	if cfg.Metrics.Listen != "" {
		if metricsLn, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			return fmt.Errorf("metrics.listen: %w (nothing was installed)", err)
		}
		defer metricsLn.Close()
	}
	if opts.Pprof != "" {
		if pprofLn, err = listenPprof(opts.Pprof); err != nil {
			return fmt.Errorf("--pprof: %w (nothing was installed)", err)
		}
		defer pprofLn.Close()
	}
	ctl := control.NewServer(cfg.Control.Socket, log)
	d.registerControl(ctl)
	if err := ctl.Listen(); err != nil {
		return fmt.Errorf("control.socket: %w (nothing was installed)", err)
	}
	inst, backend, err := k.ruleset(cfg)
	if err != nil {
		return err
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
	restartc := make(chan struct{}, 1)
	d.restart = func() {
		select {
		case restartc <- struct{}{}:
		default:
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	essential := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				d.health.failed(subQueue, fmt.Errorf("%s: %w", name, err))
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	auxiliary := func(sub string, fn func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); d.health.supervise(ctx, sub, fn) }()
	}

	// Conntrack's events are subscribed to before anything is installed
	// or decided (see listenConntrack).
	d.listenConntrack()
	defer func() {
		if f := d.ctEarly.Swap(nil); f != nil {
			f.Close() // a start that failed before following
		}
	}()
	// The kernel's flows, from before this start, admitted as the policy
	// says before any queued packet of theirs is decided.
	d.adoptKernelFlows(ctx)

	// Bind the queues before the rules send packets to them. Their
	// packets wait in the kernel until the state is restored (ready).
	ready := make(chan struct{})
	for i := 0; i < int(cfg.Queue.Count); i++ {
		q, err := d.openQueue(cfg.Queue.Number+uint16(i), cfg, ready)
		if err != nil {
			d.closeQueues()
			return err
		}
		d.queues = append(d.queues, q)
	}
	d.registerHealthMetrics()
	// The saved state (bans, recent lists, knock windows) is restored
	// before the lockout check, which judges the management connections
	// with it as a reload does, and before the ruleset is installed:
	// packets queued meanwhile wait in the kernel's queue (or, in a
	// restart, meet the ruleset kept in force).
	if err := d.state.restore(); err != nil {
		log.Error("restore state: starting with empty state", "err", err)
	}
	if !opts.Force {
		// Nothing is installed yet: a start that would lock the operator
		// out is refused before it can.
		// Started by a service manager (no SSH_CONNECTION: a boot, a
		// restart taking over the ruleset in force) it warns instead:
		// refusing would leave the host without its firewall.
		if err := lockout(ctx, log, pol, d.state.matchers(), opts.SSHConnection, k.flows); err != nil {
			if opts.SSHConnection != "" {
				d.closeQueues()
				return err
			}
			log.Warn("starting although the policy would refuse a management connection (not started from an SSH session)", "err", err)
		}
	}
	if err := d.state.prepareKernel(cfg); err != nil {
		d.closeQueues()
		return err
	}
	if err := inst.Install(ctx); err != nil {
		d.closeQueues()
		return fmt.Errorf("install kernel ruleset: %w", err)
	}
	d.inst = inst
	log.Info("kernel ruleset installed", "since_start", time.Since(d.start).Round(time.Millisecond))
	// From here on the ruleset stays in the kernel unless the daemon is
	// stopped explicitly (ctx ends) or an unconfirmed start is rolled back.
	d.health.set(subBans, nil)
	// The engine drops banned sources itself; the kernel sets are their
	// fast path, reconciled in the background.
	st := d.state // a reload may replace d.state while this runs
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := st.reconcileKernel(); err != nil {
			d.health.failed(subBans, fmt.Errorf("reconcile the ban sets with the saved bans: %w", err))
		}
	}()
	d.health.set(subState, nil)
	d.health.set(subQueue, nil)
	close(ready)
	for _, q := range d.queues {
		essential(fmt.Sprintf("queue %d", q.num), q.r.Run)
	}
	d.expiryTick.Store(time.Now().UnixNano())
	wg.Add(1)
	go func() { defer wg.Done(); d.housekeeping(ctx) }()
	auxiliary(subConntrack, d.followConntrack)
	auxiliary(subRuleset, d.watchRuleset)
	if cfg.Metrics.Listen != "" {
		auxiliary(subMetrics, func(ctx context.Context) error {
			ln := metricsLn
			if metricsLn = nil; ln == nil {
				var err error
				if ln, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
					return err
				}
			}
			return d.obs.metrics.ServeListener(ctx, ln)
		})
	}
	if opts.Pprof != "" {
		auxiliary(subPprof, func(ctx context.Context) error {
			ln := pprofLn
			if pprofLn = nil; ln == nil {
				var err error
				if ln, err = listenPprof(opts.Pprof); err != nil {
					return err
				}
			}
			return servePprof(ctx, ln)
		})
	}
	auxiliary(subControl, ctl.Serve)
	if d.fleet != nil {
		auxiliary(subFleet, d.runFleet)
	}
	if opts.Confirm > 0 {
		d.reloadMu.Lock()
		p := &pendingChange{}
		p.timer = time.AfterFunc(opts.Confirm, func() { d.rollback(p) })
		d.pending = p
		d.reloadMu.Unlock()
		log.Warn("start must be confirmed or nfqfw stops and removes its ruleset", "within", opts.Confirm, "confirm_with", "nfqfw confirm")
	}
	log.Info("nfqfw running", "config", cfg.File, "hash", pol.Hash(), "backend", backend,
		"queues", len(d.queues), "first_queue", cfg.Queue.Number, "bypass", cfg.Queue.Bypass, "fail_open", cfg.Queue.FailOpen)
	if opts.running != nil {
		opts.running(d)
	}
	if err := notify.Notify(sdReady + "\nSTATUS=running, ruleset installed"); err != nil {
		log.Warn("notify systemd", "err", err)
	}

	var watchdog <-chan time.Time
	if every, ok := watchdogInterval(); ok {
		t := time.NewTicker(every)
		defer t.Stop()
		watchdog = t.C
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("nfqfw stopping: removing the kernel ruleset")
			notify.Notify(sdStopping)
			removeRules = true
			return nil
		case <-restartc:
			log.Info("nfqfw exiting, its kernel ruleset stays in force: the next start takes it over, \"nfqfw remove\" removes it")
			notify.Notify(sdStopping)
			cancel()
			return ErrRestartKeepRules
		case sig := <-sigs:
			switch sig {
			case syscall.SIGUSR2:
				d.restart()
			default:
				d.Reload(ctx, 0) // a refusal is logged and counted by Reload
			}
		case <-watchdog:
			if d.alive() {
				notify.Notify(sdWatchdog)
			}
		case err := <-errc:
			if errors.Is(err, errNotConfirmed) {
				log.Error("nfqfw stopping: start not confirmed", "err", err)
				removeRules = true
			} else {
				log.Error("essential subsystem failed: nfqfw exits, its kernel ruleset stays", "err", err)
			}
			notify.Notify(sdStopping)
			cancel()
			return err
		}
	}
}

// alive reports whether the packet path and housekeeping make progress;
// the systemd watchdog is fed only while they do (see packetPathAlive).
// A change of verdict is logged once.
func (d *Daemon) alive() bool {
	qs := make([]queueLiveness, len(d.queues))
	for i, q := range d.queues {
		qs[i] = q.r
	}
	err := packetPathAlive(time.Since(time.Unix(0, d.expiryTick.Load())), qs)
	was := d.stalled.Swap(err != nil)
	switch {
	case err != nil && !was:
		d.log.Error("watchdog not fed: systemd kills and restarts the daemon unless this ends", "err", err)
	case err == nil && was:
		d.log.Info("watchdog fed again: the packet path makes progress")
	}
	return err == nil
}

// queueLiveness is what the watchdog asks of a queue reader
// (nfq.Reader.Deciding).
type queueLiveness interface {
	Deciding() time.Duration
}

// stuckAfter is how long a queue reader may take over what one receive
// read, or housekeeping between two rounds, before the watchdog is no
// longer fed: a batch takes microseconds, a round about a second.
const stuckAfter = 5 * time.Second

// packetPathAlive returns nil when every queue reader is either waiting
// for packets (idle and responsive) or has been deciding what it read for
// less than stuckAfter, and housekeeping (flow expiry) ran within
// stuckAfter (sinceTick ago); otherwise what is stuck.
func packetPathAlive(sinceTick time.Duration, queues []queueLiveness) error {
	for i, q := range queues {
		if d := q.Deciding(); d >= stuckAfter {
			return fmt.Errorf("queue reader %d has been deciding one receive's packets for %v", i, d.Round(time.Millisecond))
		}
	}
	if sinceTick >= stuckAfter {
		return fmt.Errorf("flow expiry last ran %v ago", sinceTick.Round(time.Millisecond))
	}
	return nil
}

// Reload reads the config file again. A config that does not parse,
// compile or install, or that changes a field that needs a restart, leaves
// the running policy and kernel rules exactly as they were, and is loud:
// a warning, and "nfqfw health" and nfqfw_config_file_differs say the file
// on disk is not what runs. With confirm > 0 the new config is rolled back
// to the one before it unless Confirm is called within confirm (like
// iptables-apply).
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
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	before := d.config()
	cfg, err := d.load()
	if err == nil && !o.Force {
		if pol, cerr := rules.Compile(cfg); cerr == nil {
			err = lockout(ctx, d.log, pol, d.currentState().preview(cfg, pol).matchers(), o.SSHConnection, d.k.flows)
		}
	}
	diskHash := ""
	if cfg != nil {
		if p, cerr := rules.Compile(cfg); cerr == nil {
			diskHash = p.Hash()
		}
	}
	if err == nil {
		err = d.applyLocked(ctx, cfg)
	}
	hash := d.eng.Policy().Hash()
	if err != nil {
		d.obs.reloaded(false, hash)
		d.health.configDiffers(hash, diskHash, fmt.Errorf("reload refused: %w", err))
		d.log.Warn("reload refused; the running config stays, and the config file on disk is not the running config",
			"config", d.opts.ConfigPath, "err", err, "running_hash", hash, "file_hash", diskHash)
		return err
	}
	d.obs.reloaded(true, hash)
	d.health.configDiffers(hash, hash, nil)
	d.log.Info("config reloaded", "config", cfg.File, "hash", hash)
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
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
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
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.pending != p {
		return // confirmed, or superseded
	}
	d.pending = nil
	if p.prev == nil {
		d.log.Error("start not confirmed in time: stopping and removing the ruleset")
		d.fatal(errNotConfirmed)
		return
	}
	refused := d.eng.Policy().Hash()
	if err := d.applyLocked(context.Background(), p.prev); err != nil {
		d.log.Error("rollback of an unconfirmed change failed", "err", err)
		return
	}
	hash := d.eng.Policy().Hash()
	d.obs.reloaded(true, hash)
	d.health.configDiffers(hash, refused, errors.New("a reload was not confirmed in time and was rolled back: fix the file or reload it again"))
	d.log.Warn("config change not confirmed in time: rolled back; the config file on disk is not the running config",
		"running_hash", hash, "file_hash", refused, "file", p.prev.File)
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
// the policy in, with every field a reload applies; on any error nothing
// changed. The caller holds reloadMu; d.mu is taken only for the swap, so
// the packet path, flow expiry and scrapes never wait for iptables-restore.
func (d *Daemon) applyLocked(ctx context.Context, cfg *rules.Config) error {
	pol, err := rules.Compile(cfg)
	if err != nil {
		return err
	}
	if keys := rules.RestartChanges(d.config(), cfg); len(keys) > 0 {
		return fmt.Errorf("%w: %s changed and needs a restart", errRestart, strings.Join(keys, ", "))
	}
	st := d.currentState()
	if err := st.prepareKernel(cfg); err != nil {
		return err
	}
	if err := d.inst.Replace(ctx, cfg); err != nil {
		return fmt.Errorf("install kernel ruleset: %w", err)
	}
	next := st.reloaded(cfg, pol)
	d.eng.SetPolicy(pol, next.matchers())
	for _, q := range d.queues {
		q.r.SetFailureAccept(cfg.Queue.FailureVerdict == rules.ActionAccept)
	}
	setLogConfig(d.log, cfg.Log)
	d.mu.Lock()
	d.state = next
	d.cfg = cfg
	d.mu.Unlock()
	d.fleet.reloaded()
	return nil
}

// config returns the config in force.
func (d *Daemon) config() *rules.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

var errRestart = errors.New("change refused on reload")

// housekeeping runs the periodic work that must stay off the packet path.
func (d *Daemon) housekeeping(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n++
			d.eng.Flows().Expire(clock.Now())
			st := d.currentState()
			st.expire(now)
			d.expiryTick.Store(time.Now().UnixNano())
			// The saver runs on its own goroutine; its last result is
			// the state saver's health.
			if e := st.shared.saves.lastErr.Load(); e != nil {
				d.health.set(subState, errors.New(*e))
			} else {
				d.health.set(subState, nil)
			}
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
	r   queue
	dec *engine.QueueDecider
}

func (d *Daemon) closeQueues() {
	for _, q := range d.queues {
		q.r.Close()
	}
	d.queues = nil
}

func (d *Daemon) openQueue(num uint16, cfg *rules.Config, ready <-chan struct{}) (*queueReader, error) {
	dec := d.eng.NewQueueDecider(d.obs.metrics.LatencyObserver(num), ready)
	r, err := d.k.openQueue(nfq.Config{
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
	return &queueReader{num: num, r: r, dec: dec}, nil
}

package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/cmd/nfqfw/internal/store"
	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/engine/guard"
	"github.com/nfqfw/nfqfw/engine/ipset"
	"github.com/nfqfw/nfqfw/engine/knock"
	"github.com/nfqfw/nfqfw/engine/recent"
	"github.com/nfqfw/nfqfw/helpers/ftp"
	"github.com/nfqfw/nfqfw/rules"
	"github.com/nfqfw/nfqfw/rules/iptables"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// stateFile is the name of the persisted state under state.dir.
const stateFile = "state.json"

// persisted is what survives a restart: absolute times throughout, so a
// restored ban or window ends when it would have ended.
type persisted struct {
	Recent []recent.EntrySnapshot  `json:"recent,omitempty"`
	Knock  knock.Snap              `json:"knock"`
	Bans   []guard.BanSnapshot     `json:"bans,omitempty"`
	Guards []guard.CounterSnapshot `json:"guards,omitempty"`
	Fleet  *fleetSnapshot          `json:"fleet,omitempty"`
	Allows []decision.Decision     `json:"allows,omitempty"`
}

// WriteJSON writes p as json.Marshal would, its bans last and marshalled
// in pieces (store.JSONWriter): a fleet gateway's state holds 100,000
// bans and more.
func (p *persisted) WriteJSON(w io.Writer) error {
	q := *p
	q.Bans = nil
	return store.WriteWithArray(w, &q, "bans", p.Bans)
}

// stateful holds the engine's stateful matchers (recent lists, rate
// guards and bans, knock sequences, FTP expectations) for one compiled
// policy: it builds them, restores and persists their state and expires it.
// The engine decides with them (matchers). A reload builds a new one that
// takes over the state of the old; the bans are shared by all of them.
type stateful struct {
	cfg *rules.Config
	pol *rules.Policy
	log *slog.Logger

	recent *recent.Lists
	knock  *knock.Knocker
	guards *guard.Guards
	ftp    *ftp.Helper // nil when the FTP helper is disabled
	shared *sharedState
}

// sharedState lives as long as the daemon, across reloads.
type sharedState struct {
	path   string
	bans   *guard.Bans
	allows *guard.Allows // temporary allows, of this gateway and of the fleet
	// allowLifted counts the bans lifted because an allow covers them.
	allowLifted atomic.Uint64
	kernel      *kernelBans
	flows       *engine.Table   // the engine's: expected FTP data connections are admitted as RELATED here
	ftp         *ftp.Helper     // control connections and expectations, kept across reloads
	ctx         context.Context // ends with cancel: the ban worker's and the saver's
	cancel      context.CancelFunc
	wg          sync.WaitGroup

	// restored is set once restore loaded the state file (or found none):
	// only then may it be saved over.
	restored atomic.Bool

	refreshed time.Time // last kernel ban set refresh; housekeeping's goroutine only

	current atomic.Pointer[stateful]    // the matchers in force, for the saver
	dirty   chan struct{}               // a ban changed: save soon
	every   time.Duration               // the saver's timer: saveEvery (tests set it)
	fleet   atomic.Pointer[fleetMember] // the fleet link, nil without one: publishes this gateway's decisions
	// recentSets receives the sets of the recent lists marked shared
	// (from the packet path, never blocking), for the fleet publisher.
	recentSets chan recent.Set
	saveMu     sync.Mutex
	saves      saveStats
}

// saveStats count the state saves, for metrics and health.
type saveStats struct {
	ok, failed atomic.Uint64
	lastErr    atomic.Pointer[string] // nil: the last save succeeded (or none yet)
}

// Saving: a change (a ban or unban, a recent-list entry added, hit or
// removed, a knock taken or a window opened) is saved within
// saveDelay of it, a burst of changes being one save; guard counters,
// which change on every attempt, every saveEvery; both on the saver's own
// goroutine, never on the expiry path, and once more at exit. Saves are
// spaced by at least saveSpacing times the last one's duration, so that a
// flood of changes costs the saver at most about 5% of a core.
const (
	saveEvery   = 10 * time.Second
	saveDelay   = time.Second
	changePoll  = 250 * time.Millisecond
	saveSpacing = 20
)

// newStateful builds the stateful matchers for pol with empty state;
// restore loads what the last run persisted and starts the saver.
func newStateful(cfg *rules.Config, pol *rules.Policy, log *slog.Logger, flows *engine.Table, k kernel) (*stateful, error) {
	if err := os.MkdirAll(cfg.State.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	// The first renewal of long bans' kernel entries is an hour after
	// start: reconcile gives every ban missing from the sets its entry,
	// and one already there has more than an hour left (renewals keep
	// MaxTimeout less two hours at least), so listing 100,000 bans is
	// not added to a start's load.
	sh := &sharedState{path: filepath.Join(cfg.State.Dir, stateFile), flows: flows, refreshed: time.Now()}
	sh.ftp = ftp.New(ftp.Options{Config: cfg.FTP, Logger: log, LogRate: cfg.Log.Rate})
	sh.kernel = &kernelBans{log: log, k: k, maxBans: maxBans(cfg)}
	sh.dirty = make(chan struct{}, 1)
	sh.recentSets = make(chan recent.Set, recentQueue)
	sh.every = saveEvery
	sh.bans = guard.NewBans(guard.BanOptions{
		OnBan:      func(p netip.Prefix, until time.Time) { sh.kernel.ban(p, until); sh.changed() },
		OnUnban:    func(p netip.Prefix) { sh.kernel.unban(p); sh.changed() },
		OnDecision: func(d decision.Decision) { sh.fleet.Load().publish(d) },
		MaxEntries: maxBans(cfg),
	})
	sh.allows = guard.NewAllows()
	sh.bans.SetAllows(sh.allows)
	ctx, cancel := context.WithCancel(context.Background())
	sh.cancel = cancel
	sh.wg.Add(1)
	go func() { defer sh.wg.Done(); sh.bans.Run(ctx) }()
	s := build(cfg, pol, log, sh)
	sh.current.Store(s)
	sh.ctx = ctx
	return s, nil
}

// checkFile reports a state file that exists but cannot be read: the
// start is refused before anything is installed. A missing file is fine.
func (s *stateful) checkFile() error {
	f, err := os.Open(s.shared.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return f.Close()
}

// restore loads what the last run persisted, then starts the saver (saving
// before would replace the file with empty state). A corrupt state file is
// reported and set aside; the daemon then goes on with empty state. An
// unreadable one is an error, and nothing is saved over it.
func (s *stateful) restore() error {
	sh := s.shared
	var p persisted
	now := clock.Now()
	if err := store.Load(sh.path, &p); err != nil {
		if !errors.Is(err, store.ErrCorrupt) {
			return err
		}
		s.log.Error("state file is corrupt: moved aside, starting with empty state", "err", err)
	} else {
		s.recent.Restore(p.Recent, now)
		s.knock.Restore(p.Knock, now)
		n := sh.bans.Restore(p.Bans, now)
		sh.fleet.Load().restore(p.Fleet)
		g := s.guards.Restore(p.Guards, now)
		a := sh.allows.Restore(p.Allows, clock.Wall(now))
		s.log.Info("state restored", "file", sh.path, "recent_entries", len(p.Recent), "bans", n, "guard_sources", g, "allows", a)
	}
	sh.restored.Store(true)
	sh.wg.Add(1)
	go func() { defer sh.wg.Done(); sh.saver(sh.ctx, sh.every) }()
	return nil
}

// changed asks the saver to save soon; it never blocks.
func (sh *sharedState) changed() {
	select {
	case sh.dirty <- struct{}{}:
	default:
	}
}

// changes reads the change counts of the recent lists and knock state.
func (s *stateful) changes() uint64 {
	return s.recent.Changes() + s.knock.Changes()
}

// saver saves the state of the matchers in force: within saveDelay of a
// change (bans tell it, recent lists and knock state are polled every
// changePoll), every saveEvery in any case, until ctx ends.
func (sh *sharedState) saver(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	poll := time.NewTicker(changePoll)
	defer poll.Stop()
	cur := sh.current.Load()
	gen := cur.changes()
	var (
		dirty      bool      // something changed since the last save
		next       time.Time // no save before, unless the timer asks
		dirtySince time.Time // when the oldest unsaved change was seen
	)
	save := func() {
		cur = sh.current.Load()
		gen = cur.changes()
		start := time.Now()
		cur.save()
		took := time.Since(start)
		dirty = false
		next = time.Now().Add(max(saveDelay, saveSpacing*took) - saveDelay)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			save()
			continue
		case <-sh.dirty:
			if !dirty {
				dirty, dirtySince = true, time.Now()
			}
		case <-poll.C:
			if c := sh.current.Load(); c != cur || c.changes() != gen {
				if !dirty {
					dirty, dirtySince = true, time.Now()
				}
			}
		}
		if dirty && time.Since(dirtySince) >= saveDelay-changePoll && time.Now().After(next) {
			save()
		}
	}
}

func build(cfg *rules.Config, pol *rules.Policy, log *slog.Logger, sh *sharedState) *stateful {
	shared := sharedKnocks(cfg)
	var share []recent.Option
	if cfg.Fleet.Enabled() && cfg.Fleet.Share.Recent {
		share = append(share, recent.WithShare(sh.recentSets))
	}
	s := &stateful{cfg: cfg, pol: pol, log: log, shared: sh,
		recent: recent.New(cfg.Recent, share...),
		// Knock decisions go to the fleet link (windows only of the
		// sequences marked shared); Publish only queues them.
		knock: knock.New(cfg.Knocks, knock.WithDecisions(func(d decision.Decision) {
			if d.Kind != decision.KnockWindow || shared[d.Sequence] {
				sh.fleet.Load().publish(d)
			}
		})),
		guards: guard.New(cfg.Guards, cfg.Allowlist, sh.bans),
	}
	s.guards.SetAllows(sh.allows)
	if cfg.FTP.Enabled {
		s.ftp = sh.ftp
	}
	return s
}

// matchers returns the matchers the engine decides with.
func (s *stateful) matchers() *engine.Matchers {
	m := &engine.Matchers{Bans: s.shared.bans, Recent: s.recent, Knock: s.knock, Guards: s.guards, Allows: s.shared.allows}
	if s.ftp != nil {
		m.FTP = s.ftp
	}
	return m
}

// reloaded returns the stateful matchers for a new config and policy,
// carrying recent lists, knock progress and windows, and guard counters
// over.
//
// The FTP helper's control connections and expectations are kept; its
// settings and log rate follow the new config.
func (s *stateful) reloaded(cfg *rules.Config, pol *rules.Policy) *stateful {
	s.shared.ftp.SetConfig(cfg.FTP)
	s.shared.ftp.SetLogRate(cfg.Log.Rate)
	n := build(cfg, pol, s.log, s.shared)
	now := clock.Now()
	n.recent.Restore(s.recent.Snapshot(), now)
	n.knock.Restore(s.knock.Snapshot(), now)
	n.guards.Restore(s.guards.Snapshot(), now)
	s.shared.current.Store(n)
	return n
}

// preview returns the stateful matchers a reload to cfg and pol would
// decide with, the state carried over as reloaded does, without putting
// them in force: to explain the management connections against them.
func (s *stateful) preview(cfg *rules.Config, pol *rules.Policy) *stateful {
	n := build(cfg, pol, s.log, s.shared)
	now := clock.Now()
	n.recent.Restore(s.recent.Snapshot(), now)
	n.knock.Restore(s.knock.Snapshot(), now)
	n.guards.Restore(s.guards.Snapshot(), now)
	return n
}

// prepareKernel creates the kernel ban sets the ruleset of cfg refers to
// (once; they outlive reloads).
func (s *stateful) prepareKernel(cfg *rules.Config) error {
	return s.shared.kernel.prepare()
}

// reconcileKernel reconciles the ban sets with the ban table restored from
// the state file (see kernelBans.reconcile).
func (s *stateful) reconcileKernel() error {
	return s.shared.kernel.reconcile(s.shared.bans, time.Now())
}

// repairKernel recreates ban sets another tool destroyed, with the active
// bans, and reports whether any was missing.
func (s *stateful) repairKernel() (bool, error) {
	return s.shared.kernel.repair(s.shared.bans.List(time.Now().UnixNano()))
}

func (s *stateful) expire(now time.Time) {
	n := clock.Now()
	s.knock.Expire(n)
	s.guards.Expire(n)
	s.shared.bans.Expire(n)
	s.shared.expireAllows(s.log)
	if now.Sub(s.shared.refreshed) >= kernelRefresh {
		s.shared.refreshed = now
		s.shared.kernel.refresh(s.shared.bans.List(n), now)
	}
	flows := s.shared.flows
	s.shared.ftp.Expire(n, func(k engine.FlowKey) bool { return flows == nil || flows.Lookup(k, n) })
}

// save persists the state atomically; errors are logged and counted
// (metrics, health), never fatal.
func (s *stateful) save() {
	sh := s.shared
	sh.saveMu.Lock()
	defer sh.saveMu.Unlock()
	p := persisted{Recent: s.recent.Snapshot(), Knock: s.knock.Snapshot(), Bans: sh.bans.Snapshot(), Guards: s.guards.Snapshot(),
		Fleet: sh.fleet.Load().snapshot(), Allows: sh.allows.Snapshot()}
	if err := store.Save(sh.path, &p); err != nil {
		sh.saves.failed.Add(1)
		msg := err.Error()
		sh.saves.lastErr.Store(&msg)
		s.log.Error("save state", "file", sh.path, "err", err)
		return
	}
	sh.saves.ok.Add(1)
	sh.saves.lastErr.Store(nil)
}

// close stops the ban worker and the saver, then saves the state, unless
// it was never restored (a start refused early must not replace the file
// with empty state).
func (s *stateful) close() {
	s.shared.cancel()
	s.shared.wg.Wait()
	if s.shared.restored.Load() {
		s.shared.current.Load().save()
	}
}

// controlHandlers returns the control commands of the stateful matchers.
func (s *stateful) controlHandlers(cur func() *stateful) map[string]control.Handler {
	hs := map[string]control.Handler{}
	for k, h := range control.BanHandlers(s.shared.bans, nil, func() string { return gatewayName(cur().cfg) }) {
		hs[k] = h
	}
	for k, h := range control.AllowHandlers(allowTable{sh: s.shared, log: s.log}, nil, func() string { return gatewayName(cur().cfg) }) {
		hs[k] = h
	}
	// Recent lists and knocks are rebuilt by a reload: look up the current
	// ones per request.
	for k := range control.RecentHandlers(s.recent, nil) {
		hs[k] = func(ctx context.Context, args json.RawMessage) (any, error) {
			return control.RecentHandlers(cur().recent, nil)[k](ctx, args)
		}
	}
	for k := range control.KnockHandlers(s.knock) {
		hs[k] = func(ctx context.Context, args json.RawMessage) (any, error) {
			return control.KnockHandlers(cur().knock)[k](ctx, args)
		}
	}
	return hs
}

// kernelBans mirrors bans into the kernel: the banned source's flows are
// deleted (ctnetlink) and it is added to the ipset the ruleset drops in the
// kernel, with the time left so the entry expires by itself. Its methods
// run on the ban worker's goroutine (ban, unban) or at start (prepare).
type kernelBans struct {
	log     *slog.Logger
	k       kernel
	maxBans int // the ban table's bound, the sets' size
	mu      sync.Mutex
	sets    banSets // nil until prepare
}

// prepare creates the ban sets the kernel ruleset matches (it always refers
// to them: a ban may come from a guard or from the CLI), once. Entries
// already in them (the sets outlive a restart) are left as they are.
func (k *kernelBans) prepare() error {
	k.mu.Lock()
	ready := k.sets != nil
	k.mu.Unlock()
	if ready {
		return nil
	}
	sets, err := k.k.banSets()
	if err != nil {
		return err
	}
	for _, f := range []rules.Family{rules.FamilyIPv4, rules.FamilyIPv6} {
		if err := k.ensure(sets, f); err != nil {
			sets.Close()
			return err
		}
	}
	k.mu.Lock()
	k.sets = sets
	k.mu.Unlock()
	return nil
}

// ensure creates the ban set of family f, sized for k.maxBans entries. A
// set left by a run with another size is kept as it is (a fleet's larger
// table then overflows it; the engine still drops those sources itself).
func (k *kernelBans) ensure(sets banSets, f rules.Family) error {
	size := uint32(0) // the kernel's default, 65,536: guard.DefaultMaxBans
	if k.maxBans > guard.DefaultMaxBans {
		size = uint32(k.maxBans)
	}
	err := sets.EnsureSized(iptables.BanSet(f), f, true, size)
	if size != 0 && errors.Is(err, ipset.ErrSetMismatch) {
		k.log.Warn("ban set exists with another size: kept (destroy it while nfqfw is stopped to resize it)", "set", iptables.BanSet(f), "want_max", size)
		err = sets.Ensure(iptables.BanSet(f), f, true)
	}
	return err
}

// reconcile makes the ban sets and the ban table (restored from the state
// file) agree: an entry a crash left in a set that the saved state lacks
// (the ban came after the last save) is adopted with the time the kernel
// has left, so it is listed and can be lifted; a ban of the table that the
// set lacks is added to it. It runs after the ruleset is installed, off the
// packet path: the engine drops banned sources itself meanwhile.
//
// The hash:ip sets of versions whose bans were single addresses
// (iptables.LegacyBanSet) are taken over the same way: their entries are
// adopted and loaded into the hash:net sets, and the legacy sets are
// destroyed (the ruleset just installed no longer matches them).
func (k *kernelBans) reconcile(bans *guard.Bans, now time.Time) error {
	k.mu.Lock()
	sets := k.sets
	k.mu.Unlock()
	if sets == nil {
		return nil
	}
	inKernel := map[netip.Prefix]bool{}
	adopt := func(set string, entries []ipset.Entry, record bool) {
		for _, e := range entries {
			if record {
				inKernel[e.Prefix] = true
			}
			d := e.Timeout
			if d == 0 {
				d = guard.MaxBan // added by hand without a timeout
			}
			if bans.Adopt(e.Prefix, d, clock.Now()) {
				k.log.Warn("ban found in a kernel set but not in the saved state: adopted", "set", set, "src", e.Prefix, "left", d)
			}
		}
	}
	for _, f := range []rules.Family{rules.FamilyIPv4, rules.FamilyIPv6} {
		entries, err := sets.List(iptables.BanSet(f))
		if err != nil {
			return err
		}
		adopt(iptables.BanSet(f), entries, true)
		legacy := iptables.LegacyBanSet(f)
		old, err := sets.List(legacy)
		if errors.Is(err, ipset.ErrNoSet) {
			continue
		}
		if err != nil {
			k.log.Warn("read the ban set of an older version", "set", legacy, "err", err)
			continue
		}
		adopt(legacy, old, false)
		if err := sets.Destroy(legacy); err != nil {
			k.log.Warn("destroy the ban set of an older version", "set", legacy, "err", err)
		} else {
			k.log.Info("ban set of an older version taken over", "set", legacy, "bans", len(old), "into", iptables.BanSet(f))
		}
	}
	var missing []guard.Ban
	for _, b := range bans.List(clock.Now()) {
		if !inKernel[b.Scope] {
			missing = append(missing, b)
		}
	}
	k.load(sets, missing)
	return nil
}

// load puts bans into the kernel sets, many per netlink write (100,000
// bans took 0.07-0.15 s, one request each 1.3 s: BenchmarkLoadBans). Their flows
// were deleted when they were issued, so unlike ban it does not walk the
// conntrack table per address.
func (k *kernelBans) load(sets banSets, active []guard.Ban) {
	if len(active) == 0 {
		return
	}
	bySet := map[string][]ipset.Entry{}
	for _, b := range active {
		set := iptables.BanSetOf(b.Scope.Addr())
		bySet[set] = append(bySet[set], ipset.Entry{Prefix: b.Scope, Timeout: time.Until(b.Until)})
	}
	for set, entries := range bySet {
		if err := sets.AddMany(set, entries); err != nil {
			k.log.Error("load bans into kernel set", "set", set, "err", err)
			continue
		}
		k.log.Info("bans loaded into kernel set", "set", set, "bans", len(entries))
	}
}

// loadBatch puts bans decided on other gateways into the kernel sets, at
// most one netlink write per set, and takes the lifted scopes out. With
// cut (a few live bans, see applyRemote) each banned scope's flows are cut
// as a local ban's are, and each ban is logged.
func (k *kernelBans) loadBatch(banned []guard.Ban, lifted []netip.Prefix, cut bool) {
	k.mu.Lock()
	sets := k.sets
	k.mu.Unlock()
	if sets != nil {
		bySet := make(map[string][]ipset.Entry, 2)
		now := time.Now() // one reading for the batch: the timeouts are whole seconds
		for _, b := range banned {
			set := iptables.BanSetOf(b.Scope.Addr())
			bySet[set] = append(bySet[set], ipset.Entry{Prefix: b.Scope, Timeout: b.Until.Sub(now)})
		}
		for set, entries := range bySet {
			if err := sets.AddMany(set, entries); err != nil {
				k.log.Error("load bans of other gateways into kernel set", "set", set, "err", err)
			}
		}
	}
	for _, p := range lifted {
		k.unban(p)
	}
	if !cut {
		return
	}
	for _, b := range banned {
		k.log.Warn("banned", "src", b.Scope, "until", b.Until.UTC().Format(time.RFC3339), "origin", b.Origin, "by", b.Source)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if n, err := k.k.deleteFlows(ctx, b.Scope); err != nil {
			k.log.Error("delete banned source's flows", "src", b.Scope, "err", err)
		} else if n > 0 {
			k.log.Info("deleted banned source's flows", "src", b.Scope, "flows", n)
		}
		cancel()
	}
}

// repair recreates the ban sets that no longer exist (another tool
// destroyed them after flushing the rules that used them) and refills
// them. It reports whether a set was missing.
func (k *kernelBans) repair(active []guard.Ban) (bool, error) {
	k.mu.Lock()
	sets := k.sets
	k.mu.Unlock()
	if sets == nil {
		return false, nil
	}
	missing := map[rules.Family]bool{}
	for _, f := range []rules.Family{rules.FamilyIPv4, rules.FamilyIPv6} {
		ok, err := sets.Exists(iptables.BanSet(f))
		if err != nil {
			return false, err
		}
		if !ok {
			missing[f] = true
			if err := k.ensure(sets, f); err != nil {
				return true, err
			}
		}
	}
	if len(missing) > 0 {
		var refill []guard.Ban
		for _, b := range active {
			fam := rules.FamilyIPv6
			if b.Scope.Addr().Is4() {
				fam = rules.FamilyIPv4
			}
			if missing[fam] {
				refill = append(refill, b)
			}
		}
		k.load(sets, refill)
	}
	return len(missing) > 0, nil
}

func (k *kernelBans) ban(scope netip.Prefix, until time.Time) {
	k.log.Warn("banned", "src", scope, "until", until.UTC().Format(time.RFC3339))
	k.mu.Lock()
	sets := k.sets
	k.mu.Unlock()
	if sets == nil {
		return
	}
	if err := sets.Add(iptables.BanSetOf(scope.Addr()), scope, time.Until(until)); err != nil {
		k.log.Error("add ban to kernel set", "src", scope, "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := k.k.deleteFlows(ctx, scope); err != nil {
		k.log.Error("delete banned source's flows", "src", scope, "err", err)
	} else if n > 0 {
		k.log.Info("deleted banned source's flows", "src", scope, "flows", n)
	}
}

// kernelRefresh is how often bans longer than the kernel's longest entry
// timeout (ipset.MaxTimeout, about 24.8 days) have their kernel entry
// renewed.
const kernelRefresh = time.Hour

// refresh renews the kernel entries of the bans that outlast
// ipset.MaxTimeout: such a ban enters the kernel set for MaxTimeout and is
// re-added, every kernelRefresh, while it has more than MaxTimeout less two
// refreshes left, the last time with exactly the time it has left. A ban of
// up to rules.MaxDuration is thus kept in the kernel for all of its time.
func (k *kernelBans) refresh(active []guard.Ban, now time.Time) {
	k.mu.Lock()
	sets := k.sets
	k.mu.Unlock()
	if sets == nil {
		return
	}
	for _, b := range active {
		left := b.Until.Sub(now)
		if left <= ipset.MaxTimeout-2*kernelRefresh {
			continue
		}
		if err := sets.Add(iptables.BanSetOf(b.Scope.Addr()), b.Scope, left); err != nil {
			k.log.Error("renew ban in kernel set", "src", b.Scope, "err", err)
		}
	}
}

func (k *kernelBans) unban(scope netip.Prefix) {
	k.log.Info("ban ended", "src", scope)
	k.mu.Lock()
	sets := k.sets
	k.mu.Unlock()
	if sets == nil {
		return
	}
	if err := sets.Del(iptables.BanSetOf(scope.Addr()), scope); err != nil {
		k.log.Debug("remove ban from kernel set", "src", scope, "err", err)
	}
}

// fleetMaxBans bounds the ban table of a fleet gateway, which holds the
// bans of every gateway: 262,144 (about 70 MB at most).
const fleetMaxBans = 1 << 18

// maxBans is the ban table's bound: guard.DefaultMaxBans, fleetMaxBans
// with a fleet.
func maxBans(cfg *rules.Config) int {
	if cfg.Fleet.Enabled() {
		return fleetMaxBans
	}
	return guard.DefaultMaxBans
}

// gatewayName is this gateway's name as "nfqfw bans list" shows it for
// its own bans: the fleet's gateway name, else the host name.
func gatewayName(cfg *rules.Config) string {
	if cfg != nil && cfg.Fleet.Gateway != "" {
		return cfg.Fleet.Gateway
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "local"
}

// destroy removes the ban sets; called after the ruleset that refers to
// them is gone.
func (k *kernelBans) destroy() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sets == nil {
		return
	}
	for _, f := range []rules.Family{rules.FamilyIPv4, rules.FamilyIPv6} {
		if err := k.sets.Destroy(iptables.BanSet(f)); err != nil {
			k.log.Warn("destroy ban set", "set", iptables.BanSet(f), "err", err)
		}
	}
	k.sets.Close()
	k.sets = nil
}

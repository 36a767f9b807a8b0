package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/ctnl"
	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/engine/fleet"
	"github.com/nfqfw/nfqfw/engine/guard"
	"github.com/nfqfw/nfqfw/engine/recent"
	"github.com/nfqfw/nfqfw/metrics"
	"github.com/nfqfw/nfqfw/rules"
)

// subFleet is the fleet link's subsystem label.
const subFleet = "fleet"

// fleetStartGrace is how long the link may take to come up at start
// before the daemon says it runs from local state.
const fleetStartGrace = 3 * time.Second

// protectRefresh is how often the management sessions' sources, which no
// remote decision may ban, are read again from the conntrack table.
const protectRefresh = time.Minute

// fleetSnapshot is what the state file keeps of the fleet link: the
// decisions not yet published and the last stream sequence applied, so a
// restart neither loses a decision nor reads the stream again from its
// start.
type fleetSnapshot struct {
	Cursor uint64   `json:"cursor,omitempty"`
	Outbox [][]byte `json:"outbox,omitempty"`
}

// fleetMember is this gateway's part of the fleet: the link, what it
// shares, and how remote decisions are applied.
type fleetMember struct {
	cfg  rules.Fleet
	link *fleet.Link
	log  *slog.Logger
	// reload is poked by a reload: the allowlist may have changed.
	reload chan struct{}
	// unsharedN counts the decisions received of a kind or a recent list
	// this gateway does not share; unsharedSaid, the reasons logged.
	unsharedN    atomic.Uint64
	unsharedSaid sync.Map
	// allowsOf returns the scopes of the allows in force (protected).
	allowsOf func() []netip.Prefix
	// protected is the last set of protected prefixes given to the link.
	protectMu sync.Mutex
	protected []netip.Prefix
}

// reloaded tells the link a reload happened (the allowlist may differ).
func (m *fleetMember) reloaded() {
	if m == nil {
		return
	}
	select {
	case m.reload <- struct{}{}:
	default:
	}
}

// newFleetMember builds the link of cfg (nil, nil when cfg has no fleet).
// sh receives the remote bans; its saver persists the link's outbox and
// cursor.
func newFleetMember(cfg *rules.Config, sh *sharedState, log *slog.Logger) (*fleetMember, error) {
	if !cfg.Fleet.Enabled() {
		return nil, nil
	}
	m := &fleetMember{cfg: cfg.Fleet, log: log, reload: make(chan struct{}, 1),
		allowsOf: func() []netip.Prefix { return allowScopes(sh.allows) }}
	link, err := fleet.New(fleet.Options{
		Config:  cfg.Fleet,
		Logger:  log,
		Apply:   func(ds []decision.Decision) { m.applyRemote(sh, ds) },
		Changed: sh.changed, // after a decision published, after the last of the remote decisions pending
		MaxAge:  fleetMaxAge(cfg),
	})
	if err != nil {
		return nil, err
	}
	m.link = link
	return m, nil
}

// liveBatch is the largest batch of remote decisions whose banned scopes
// also have their flows cut, one conntrack request each, as a local ban's
// are. A larger batch is a backlog (a start, a reconnect, a burst): its
// bans were made elsewhere earlier, and cutting flows one scope at a time
// would hold the link back. The cuts run on the link's goroutine, so a
// burst of live bans makes the next batches larger by itself.
const liveBatch = 64

// applyRemote enforces decisions of other gateways: bans and unbans into
// the ban table, then into the kernel sets in one netlink write per set;
// knock windows of sequences this gateway shares (share: knocks, the
// sequence marked shared) and one-shot uses (share: one_shots) into the
// knock sequences in force.
func (m *fleetMember) applyRemote(sh *sharedState, ds []decision.Decision) {
	log := m.log
	start := time.Now()
	// The bans and unbans are gathered at the front of ds (the link
	// reuses it after Apply): a copy of a backlog's decisions took a
	// tenth of the apply, mostly in write barriers.
	bans := ds[:0]
	for i, d := range ds {
		switch d.Kind {
		case decision.Ban, decision.Unban:
			if len(bans) != i {
				ds[len(bans)] = d
			}
			bans = bans[:len(bans)+1]
		case decision.KnockWindow, decision.KnockUse:
			m.applyKnock(sh.current.Load(), d)
		case decision.Recent:
			m.applyRecent(sh.current.Load(), d)
		case decision.Unallow:
			if !m.cfg.Share.Allows {
				m.unshared(d, "allows are not shared here (share: [allows])")
				continue
			}
			sh.endAllow(d.Scope, d.Origin, log)
		case decision.Allow:
			if !m.cfg.Share.Allows {
				m.unshared(d, "allows are not shared here (share: [allows])")
				continue
			}
			if _, err := sh.applyAllow(d, log); err != nil {
				log.Warn("fleet allow not applied", "decision", d.String(), "err", err)
			}
			// The link refuses the bans of the next messages that
			// overlap it.
			m.link.SetProtected(append(m.protect(), d.Scope))
		default:
			log.Debug("fleet decision of a kind this gateway does not apply", "decision", d.String())
		}
	}
	live := len(ds) <= liveBatch
	if !live {
		// A backlog: the ban table is sized once for what the
		// link still has to read, not grown map by map.
		sh.bans.Reserve(bans, len(bans)+m.link.Pending())
	}
	banned, lifted, err := sh.bans.ApplyBatch(bans, clock.Now())
	if err != nil {
		log.Warn("fleet decisions not all applied", "err", err)
	}
	sh.kernel.loadBatch(banned, lifted, live)
	// The state is saved once the link has applied all it had pending
	// (its Changed is sh.changed), not after each batch of a backlog.
	if !live {
		log.Info("fleet decisions applied in bulk", "decisions", len(ds), "bans", len(banned), "unbans", len(lifted),
			"took", time.Since(start).Round(time.Millisecond))
	}
}

// applyKnock applies a knock decision of another gateway to the knock
// sequences of st, if this gateway shares its kind.
func (m *fleetMember) applyKnock(st *stateful, d decision.Decision) {
	switch {
	case d.Kind == decision.KnockWindow && (!m.cfg.Share.Knocks || !sharedKnocks(st.cfg)[d.Sequence]):
		return
	case d.Kind == decision.KnockUse && !m.cfg.Share.OneShots:
		return
	}
	if _, err := st.knock.Apply(d, clock.Now()); err != nil {
		m.log.Warn("fleet knock decision not applied", "decision", d.String(), "err", err)
		return
	}
	m.log.Info("fleet knock decision applied", "decision", d.String())
}

// applyRecent sets the address of a recent decision of another gateway in
// its list, at the time it was set there, if this gateway shares recent
// lists and marks that list shared. One that is not applied is counted
// and its list logged once.
func (m *fleetMember) applyRecent(st *stateful, d decision.Decision) {
	if !m.cfg.Share.Recent || !sharedRecent(st.cfg)[d.List] {
		m.unshared(d, "recent list "+d.List+" is not shared here (mark it shared: true, and share: [recent])")
		return
	}
	st.recent.Apply(d.List, d.Scope.Addr(), clock.Mono(d.Issued), clock.Now(), d.Origin)
}

// protect returns the protected prefixes last given to the link.
func (m *fleetMember) protect() []netip.Prefix {
	m.protectMu.Lock()
	defer m.protectMu.Unlock()
	return append([]netip.Prefix(nil), m.protected...)
}

// unshared counts a decision of a kind (or list) this gateway does not
// share, and logs why once per reason.
func (m *fleetMember) unshared(d decision.Decision, why string) {
	m.unsharedN.Add(1)
	if _, said := m.unsharedSaid.LoadOrStore(why, true); !said {
		m.log.Warn("fleet decisions this gateway does not share: not applied", "why", why, "kind", d.Kind.String(), "origin", d.Origin)
	}
}

// sharedRecent returns the names of cfg's recent lists marked shared.
func sharedRecent(cfg *rules.Config) map[string]bool {
	return sharedNames(cfg.Recent, func(l rules.RecentList) (string, bool) { return l.Name, l.Shared })
}

// sharedNames returns the names of the items of xs that shared says are
// shared.
func sharedNames[T any](xs []T, shared func(T) (string, bool)) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		if name, ok := shared(x); ok {
			m[name] = true
		}
	}
	return m
}

// recentQueue bounds the sets of shared recent lists waiting to be
// published; recentBacklog is the fleet backlog above which they wait:
// recent-list entries never hold more than about recentBacklog of the
// outbox's 65,536 slots, so a scan cannot push bans out of it. While they
// wait the queue fills, and further sets are dropped and counted
// (nfqfw_recent_shared_total{outcome="dropped"}).
const (
	recentQueue   = 4096
	recentBacklog = 4096
)

// recentRetention is how long a set of each shared recent list matters to
// the rules: the longest seconds of a check or update of the list, or the
// stream's age when one has none (it counts every hit the entry holds).
// It is the expiry of the decisions that share the sets.
func recentRetention(cfg *rules.Config) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, ch := range []rules.Chain{cfg.Input, cfg.Forward, cfg.Output} {
		for _, r := range ch.Rules {
			m := r.Recent
			if m == nil || (m.Op != rules.RecentCheck && m.Op != rules.RecentUpdate) {
				continue
			}
			d := m.Seconds
			if d <= 0 {
				d = fleetMaxAge(cfg)
			}
			out[m.List] = max(out[m.List], d)
		}
	}
	return out
}

// publishRecent publishes the sets of the shared recent lists until ctx
// ends, holding them back while the fleet backlog is above recentBacklog.
func (m *fleetMember) publishRecent(ctx context.Context, sh *sharedState) {
	for {
		var set recent.Set
		select {
		case <-ctx.Done():
			return
		case set = <-sh.recentSets:
		}
		for m.link.Backlog() >= recentBacklog {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		cfg := sh.current.Load().cfg
		keep, ok := recentRetention(cfg)[set.List]
		if !ok {
			keep = fleetMaxAge(cfg)
		}
		at := clock.Wall(set.At)
		m.publish(decision.Decision{Kind: decision.Recent, Scope: decision.ScopeOf(set.Addr), List: set.List,
			Issued: at, Expires: at.Add(keep)})
	}
}

// sharedKnocks returns the names of cfg's knock sequences marked shared.
func sharedKnocks(cfg *rules.Config) map[string]bool {
	return sharedNames(cfg.Knocks, func(k rules.Knock) (string, bool) { return k.Name, k.Shared })
}

// fleetMaxAge is how long the stream keeps decisions: the longest ban the
// guards can give, at least fleet.DefaultMaxAge (manual bans).
func fleetMaxAge(cfg *rules.Config) time.Duration {
	age := fleet.DefaultMaxAge
	for _, g := range cfg.Guards {
		if g.Ban != nil {
			age = max(age, g.Ban.Duration, g.Ban.Max)
		}
	}
	for _, k := range cfg.Knocks {
		age = max(age, k.OpenFor, k.Window)
	}
	return min(age, rules.MaxDuration)
}

// publish shares a decision this gateway made, if its kind is shared.
func (m *fleetMember) publish(d decision.Decision) {
	if m == nil {
		return
	}
	switch d.Kind {
	case decision.Ban, decision.Unban:
		if !m.cfg.Share.Bans {
			return
		}
	case decision.KnockWindow:
		if !m.cfg.Share.Knocks {
			return
		}
	case decision.KnockUse:
		if !m.cfg.Share.OneShots {
			return
		}
	case decision.Recent:
		if !m.cfg.Share.Recent {
			return
		}
	case decision.Allow, decision.Unallow:
		if !m.cfg.Share.Allows {
			return
		}
	}
	m.link.Publish(d)
}

// snapshot returns what the state file keeps of the link.
func (m *fleetMember) snapshot() *fleetSnapshot {
	if m == nil {
		return nil
	}
	return &fleetSnapshot{Cursor: m.link.Cursor(), Outbox: m.link.Outbox()}
}

// restore hands the link what the last run kept.
func (m *fleetMember) restore(s *fleetSnapshot) {
	if m == nil || s == nil {
		return
	}
	m.link.Restore(s.Outbox, s.Cursor)
	m.log.Info("fleet state restored", "cursor", s.Cursor, "unpublished", len(s.Outbox))
}

// protected returns the prefixes no remote decision may ban: the
// allowlist, the allows in force and the sources of the management
// sessions.
func protected(ctx context.Context, cfg *rules.Config, allows []netip.Prefix, sshConn string, dump func(context.Context) ([]ctnl.Event, error)) []netip.Prefix {
	p := append(append([]netip.Prefix(nil), cfg.Allowlist...), allows...)
	flows, _ := managementFlows(ctx, sshConn, dump)
	for _, f := range flows {
		p = append(p, decision.ScopeOf(f.flow.Src))
	}
	return p
}

// runFleet runs the link (an auxiliary subsystem) and keeps its protected
// prefixes and its health line current until ctx ends.
func (d *Daemon) runFleet(ctx context.Context) error {
	m := d.fleet
	setProtected := func() {
		p := protected(ctx, d.config(), m.allowsOf(), d.opts.SSHConnection, d.k.flows)
		m.protectMu.Lock()
		m.protected = p
		m.protectMu.Unlock()
		m.link.SetProtected(p)
	}
	setProtected()
	done := make(chan error, 1)
	go func() { done <- m.link.Run(ctx) }()
	go m.publishRecent(ctx, d.currentState().shared)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start, refresh := time.Now(), time.Now()
	everUp, said := false, false
	for {
		select {
		case err := <-done:
			return err
		case <-m.reload:
			setProtected()
		case now := <-tick.C:
			if up, why := m.link.Up(); up {
				everUp = true
				d.health.set(subFleet, nil)
			} else {
				d.health.set(subFleet, fmt.Errorf("link down (%s): enforcing and deciding alone, %d decisions queued", why, m.link.Backlog()))
				if !everUp && !said && now.Sub(start) >= fleetStartGrace {
					said = true
					d.log.Warn("fleet servers unreachable at start: running from local state, deciding alone; decisions are queued until the link is up",
						"servers", m.cfg.Servers, "why", why, "bans", len(d.currentState().shared.bans.List(clock.Now())))
				}
			}
			if now.Sub(refresh) >= protectRefresh {
				refresh = now
				setProtected()
			}
		}
	}
}

// status is the fleet line of "nfqfw health".
func (m *fleetMember) status() string {
	if m == nil {
		return ""
	}
	up, why := m.link.Up()
	s := m.link.Stats()
	state := "up"
	if !up {
		state = "down (" + why + "), enforcing alone"
	}
	return fmt.Sprintf("gateway %s, link %s, backlog %d, stream %s at %d, published %d, received %d, refused %d",
		m.cfg.Gateway, state, s.Backlog, m.cfg.Stream, s.Cursor, sum(s.Published), sum(s.Received), sum(s.Refused))
}

func sum(m map[decision.Kind]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// fleetSource is the fleet link as the metrics exporter reads it.
type fleetSource struct {
	m    *fleetMember
	bans *guard.Bans
}

func (f fleetSource) FleetStats() metrics.FleetStats {
	s := f.m.link.Stats()
	out := metrics.FleetStats{Up: s.Up, Backlog: s.Backlog, Cursor: s.Cursor, Connects: s.Connects,
		Malformed: s.Malformed, Oversized: s.Oversized, Spoofed: s.Spoofed, Expired: s.Expired, OutboxFull: s.OutboxDropped, Unshared: f.m.unsharedN.Load(),
		LagBounds: fleet.LagBuckets[:], LagBuckets: s.Lag.Buckets, LagCount: s.Lag.Count, LagSum: s.Lag.Sum.Seconds()}
	_, allowRefused := f.bans.AllowRefused() // bans of a batch that an allow before them in it covers
	for k := decision.Ban; k <= decision.MaxKind; k++ {
		refused := s.Refused[k]
		if k == decision.Ban {
			refused += allowRefused
		}
		out.Kinds = append(out.Kinds, metrics.FleetKind{Kind: k.String(), Published: s.Published[k], Received: s.Received[k], Refused: refused})
	}
	return out
}

package daemon

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/ctnl"
	"github.com/nfqfw/nfqfw/engine/guard"
	"github.com/nfqfw/nfqfw/engine/knock"
	"github.com/nfqfw/nfqfw/engine/nfq"
	"github.com/nfqfw/nfqfw/helpers/ftp"
	"github.com/nfqfw/nfqfw/metrics"
	"github.com/nfqfw/nfqfw/rules"
)

// observer adapts the daemon's parts to the metrics package's sources.
// Every method runs on the scrape goroutine.
type observer struct {
	d       *Daemon
	metrics *metrics.Metrics
	ct      atomic.Pointer[ctnl.Follower]

	// manualBans counts the bans added over the control socket, so that
	// the ban table's total splits into guard and manual bans.
	manualBans atomic.Uint64

	// carry keeps the counters of the stateful matchers monotonic across
	// reloads, which rebuild the matchers with fresh counters.
	carry carry
}

func newObserver(d *Daemon) *observer {
	o := &observer{d: d}
	var fleetSrc metrics.FleetSource
	if d.fleet != nil {
		fleetSrc = fleetSource{m: d.fleet, bans: d.state.shared.bans}
	}
	o.metrics = metrics.New(metrics.Options{
		Fleet:        fleetSrc,
		Version:      d.opts.Version,
		Engine:       engineSource{d.eng},
		Flows:        flowSource{d.eng.Flows()},
		Queues:       queueSource{d},
		Kernel:       procSource,
		FTP:          ftpSource{d.state.shared.ftp},
		Recent:       recentSource{o},
		Guards:       guardSource{o},
		Bans:         banSource{o},
		State:        stateSource{o},
		Knock:        knockSource{o},
		HA:           haSource{d},
		ConfigHash:   d.eng.Policy().Hash(),
		ConfigLoaded: time.Now(),
		Logger:       d.log,
	})
	return o
}

func (o *observer) setConntrack(f *ctnl.Follower) { o.ct.Store(f) }

// haSource reads the role in a gateway pair and its counters.
type haSource struct{ d *Daemon }

func (s haSource) HAStats() metrics.HAStats {
	h := &s.d.ha
	return metrics.HAStats{Role: s.d.haRole(), ToPrimary: h.toPrimary.Load(), ToBackup: h.toBackup.Load(),
		ReadErrors: h.readErrors.Load(), FollowErrors: h.followErrors.Load()}
}

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

// ftpSource reads the FTP helper's counters for the exporter. The helper
// lives as long as the daemon, across reloads.
type ftpSource struct{ h *ftp.Helper }

func (s ftpSource) FTPStats() metrics.FTPStats {
	st := s.h.Stats()
	return metrics.FTPStats{Created: st.Created, Used: st.Used, Expired: st.Expired, Malformed: st.Malformed}
}

// FTPRefusals reports every reason, counted or not.
func (s ftpSource) FTPRefusals(fn func(reason string, refused uint64)) {
	st := s.h.Stats()
	for r := ftp.Refusal(0); r < ftp.NumRefusals; r++ {
		fn(r.String(), st.Refused[r])
	}
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
func (s engineSource) KnownFlowCounts() (uint64, uint64)                 { return s.e.Pickups(), s.e.Adopted() }

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
		fn(metrics.QueueStats{Queue: q.num, Packets: st.Packets, VerdictErrors: st.VerdictErrors,
			OtherErrors: st.Errors + st.Malformed, Panics: st.Panics})
	}
}

// The sources below read the stateful matchers in force at scrape time
// (d.currentState): a reload replaces them, so none may be kept.

// Label values of the stateful families.
const (
	guardAllowed = "allowed"
	guardLimited = "limited"
	banByGuard   = "guard"
	banManual    = guard.SourceManual
)

// countManualBan wraps the control handler of control.CmdAddBan so that a
// successful manual ban is counted.
func (o *observer) countManualBan(h control.Handler) control.Handler {
	return func(ctx context.Context, args json.RawMessage) (any, error) {
		resp, err := h(ctx, args)
		if err == nil {
			o.manualBans.Add(1)
		}
		return resp, err
	}
}

// carry makes the counters of one generation of stateful matchers
// continue those of the generations before it. A reload builds new
// matchers whose counters start at zero; when a scrape sees a new
// generation it adds the old one's final counts to a base per series, so
// the exported counters only grow.
type carry struct {
	mu   sync.Mutex
	gen  *stateful         // generation the last scrape read
	base map[string]uint64 // per series key: counts of earlier generations
}

// A generation replaced twice between two scrapes loses the counts of the
// one in between; reloads are far rarer than scrapes.
//
// counters returns the base counts to add to st's counters, folding the
// previous generation's counts (read by final, which calls add for every
// counter of a generation) into the base when st is new.
func (c *carry) counters(st *stateful, final func(st *stateful, add func(key string, n uint64))) map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.base == nil {
		c.base = map[string]uint64{}
	}
	if c.gen != nil && c.gen != st {
		// The old generation may still finish a packet or two after the
		// swap; what it counts after this read is lost, never counted
		// twice.
		final(c.gen, func(key string, n uint64) { c.base[key] += n })
	}
	c.gen = st
	out := make(map[string]uint64, len(c.base))
	for k, v := range c.base {
		out[k] = v
	}
	return out
}

// statefulCounters calls add for every counter of st's matchers, keyed by
// family and label values.
func statefulCounters(st *stateful, add func(key string, n uint64)) {
	for _, l := range st.recent.Stats() {
		add("recent_hits\x00"+l.Name, l.Hits)
		add("recent_evictions\x00"+l.Name, l.Evictions)
		add("recent_shared\x00"+l.Name, l.Shared)
		add("recent_coalesced\x00"+l.Name, l.Coalesced)
		add("recent_share_dropped\x00"+l.Name, l.ShareDropped)
	}
	for _, g := range st.guards.Stats() {
		add("guard\x00"+g.Name+"\x00"+guardAllowed, g.Allowed+g.Allowlisted)
		add("guard\x00"+g.Name+"\x00"+guardLimited, g.Refused)
		add("guard_evictions\x00"+g.Name, g.Evictions)
	}
	for _, s := range st.knock.Stats().Sequences {
		add("knock_success\x00"+s.Name, s.Successes)
		for r, n := range s.Failures {
			add("knock_failures\x00"+s.Name+"\x00"+knock.FailReason(r).String(), n)
		}
	}
}

// current returns the stateful matchers in force and the base counts of
// the generations before them.
func (o *observer) current() (*stateful, map[string]uint64) {
	st := o.d.currentState()
	return st, o.carry.counters(st, statefulCounters)
}

type recentSource struct{ o *observer }

func (s recentSource) RecentLists(fn func(metrics.RecentList)) {
	st, base := s.o.current()
	var shared map[string]bool
	if st.cfg.Fleet.Enabled() && st.cfg.Fleet.Share.Recent {
		shared = sharedRecent(st.cfg)
	}
	for _, l := range st.recent.Stats() {
		fn(metrics.RecentList{List: l.Name, Entries: l.Entries,
			Hits:      base["recent_hits\x00"+l.Name] + l.Hits,
			Evictions: base["recent_evictions\x00"+l.Name] + l.Evictions,
			Shared:    shared[l.Name],
			Published: base["recent_shared\x00"+l.Name] + l.Shared,
			Coalesced: base["recent_coalesced\x00"+l.Name] + l.Coalesced,
			Dropped:   base["recent_share_dropped\x00"+l.Name] + l.ShareDropped})
	}
}

type guardSource struct{ o *observer }

// GuardAttempts reports allowlisted sources' attempts as allowed: the
// guard admitted them.
func (s guardSource) GuardAttempts(fn func(guard, result string, attempts uint64)) {
	st, base := s.o.current()
	for _, g := range st.guards.Stats() {
		k := "guard\x00" + g.Name + "\x00"
		fn(g.Name, guardAllowed, base[k+guardAllowed]+g.Allowed+g.Allowlisted)
		fn(g.Name, guardLimited, base[k+guardLimited]+g.Refused)
	}
}

// GuardEvictions reports the sources each guard forgot because it was full.
func (s guardSource) GuardEvictions(fn func(guard string, evictions uint64)) {
	st, base := s.o.current()
	for _, g := range st.guards.Stats() {
		fn(g.Name, base["guard_evictions\x00"+g.Name]+g.Evictions)
	}
}

type banSource struct{ o *observer }

func (s banSource) BanNotificationsDropped() uint64 {
	return s.o.d.currentState().shared.bans.Stats().DroppedNotifications
}

func (s banSource) Allows() metrics.AllowStats {
	sh := s.o.d.currentState().shared
	own, _ := sh.bans.AllowRefused()
	return metrics.AllowStats{Active: len(sh.allows.List(clock.Wall(clock.Now()))), Lifted: sh.allowLifted.Load(), Refused: own}
}

type stateSource struct{ o *observer }

func (s stateSource) StateSaves() (ok, failed uint64) {
	sv := &s.o.d.currentState().shared.saves
	return sv.ok.Load(), sv.failed.Load()
}

func (s banSource) BansActive() int { return s.o.d.currentState().shared.bans.Stats().Active }

// BansIssued splits the ban table's own bans (its total less those
// applied from other gateways, which the fleet link counts) into the bans
// added over the control socket and those the guards issued (guards are
// the only other local mechanism that bans). Both series exist from the
// start, so that rate() sees the first ban.
func (s banSource) BansIssued(fn func(source string, bans uint64)) {
	manual := s.o.manualBans.Load()
	st := s.o.d.currentState().shared.bans.Stats()
	local := st.Banned - min(st.Applied, st.Banned) // the fleet's are counted by the fleet link
	fn(banByGuard, local-min(manual, local))
	fn(banManual, manual)
}

type knockSource struct{ o *observer }

func (s knockSource) KnockSequences(fn func(metrics.KnockSequence)) {
	st, base := s.o.current()
	for _, q := range st.knock.Stats().Sequences {
		fn(metrics.KnockSequence{Sequence: q.Name, InProgress: q.InProgress, WindowsOpen: q.Open,
			Successes: base["knock_success\x00"+q.Name] + q.Successes})
	}
}

// KnockFailures reports every reason of every sequence, zeros included,
// so that rate() sees the first failure.
func (s knockSource) KnockFailures(fn func(sequence, reason string, failures uint64)) {
	st, base := s.o.current()
	for _, q := range st.knock.Stats().Sequences {
		for r, n := range q.Failures {
			reason := knock.FailReason(r).String()
			fn(q.Name, reason, base["knock_failures\x00"+q.Name+"\x00"+reason]+n)
		}
	}
}

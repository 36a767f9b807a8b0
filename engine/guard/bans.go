package guard

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/engine/internal/lru"
	"github.com/nfqfw/nfqfw/rules"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// SourceManual is the Source of bans added with Add (the CLI).
const SourceManual = "manual"

// SourceKernel is the Source of bans found in the kernel ban set at start
// that the saved state did not hold (Adopt): a ban made just before a
// crash, before its state was saved.
const SourceKernel = "kernel"

// DefaultManualReason is the reason of a manual ban added without one.
const DefaultManualReason = "banned by the operator"

// Defaults of BanOptions.
const (
	DefaultMaxBans  = 1 << 16
	DefaultRemember = 24 * time.Hour
	DefaultQueue    = 1024
	// maxBan bounds a grown ban whose spec has no Max.
	maxBan = 365 * 24 * time.Hour
	// MaxBan is the longest ban Add accepts, the config's longest
	// duration.
	MaxBan = rules.MaxDuration
)

// deadline returns now + d, saturating at the largest time instead of
// wrapping into the past.
func deadline(now int64, d time.Duration) int64 {
	if d > 0 && now > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return now + int64(d)
}

const banShards = 32

// BanOptions configures Bans. The zero value is usable.
type BanOptions struct {
	// OnBan is told about every new or changed ban: the daemon deletes
	// the source's kernel flows (ctnetlink) and adds it to the kernel ban
	// set with the time left. It runs on Run's goroutine.
	OnBan func(addr netip.Addr, until time.Time)
	// OnUnban is told when a ban ends (expired or deleted). It runs on
	// Run's goroutine.
	OnUnban func(addr netip.Addr)
	// MaxEntries bounds the bans and offence records kept (default
	// DefaultMaxBans). When full, the oldest offence record goes first,
	// then the ban closest to its end.
	MaxEntries int
	// Remember is how long offences count toward a longer ban after a ban
	// ends (default DefaultRemember; never less than the spec's Max).
	Remember time.Duration
	// Queue is how many OnBan/OnUnban notifications wait for Run (default
	// DefaultQueue); when full, notifications are dropped and counted.
	Queue int
}

// Bans is the table of banned sources and of remembered offences. Its
// methods are safe for concurrent use; IsBanned is the per-packet one.
type Bans struct {
	opts   BanOptions
	seed   uint64
	perCap int
	active atomic.Int64 // records with a ban not yet expired by Expire
	events chan event

	banned, expired, evictions, dropped atomic.Uint64

	shards [banShards]bshard
}

// bshard is one lock's worth of the table. until duplicates the end of
// every ban in force (records with until != 0) in a compact map, so that
// IsBanned touches small slots only.
type bshard struct {
	mu    sync.Mutex
	m     map[[16]byte]record
	until map[[16]byte]int64
	_     [64]byte
}

// record is one source's ban and offence history. until == 0: not banned,
// only remembered.
type record struct {
	since, until int64
	offences     int
	lastOffence  int64
	forget       int64 // dropped by Expire after this, when not banned
	source       string
	reason       string
}

type event struct {
	ban   bool
	addr  [16]byte
	until int64
}

// NewBans returns an empty ban table.
func NewBans(opts BanOptions) *Bans {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxBans
	}
	if opts.Remember <= 0 {
		opts.Remember = DefaultRemember
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	b := &Bans{opts: opts, seed: rand.Uint64(), perCap: max(1, (opts.MaxEntries+banShards-1)/banShards)}
	if opts.OnBan != nil || opts.OnUnban != nil {
		b.events = make(chan event, opts.Queue)
	}
	for i := range b.shards {
		b.shards[i].m = make(map[[16]byte]record)
		b.shards[i].until = make(map[[16]byte]int64)
	}
	return b
}

func (b *Bans) shard(addr *[16]byte) *bshard {
	return &b.shards[lru.Hash(addr, b.seed)%banShards]
}

// Duration returns how long the n-th offence (n >= 1) is banned under spec:
// Duration x Factor^(n-1), at most Max (a Factor below 1 counts as 1).
func Duration(spec rules.BanSpec, n int) time.Duration {
	f := max(spec.Factor, 1)
	limit := spec.Max
	if limit <= 0 {
		limit = maxBan
	}
	d := float64(spec.Duration) * math.Pow(f, float64(max(n, 1)-1))
	if math.IsInf(d, 0) || math.IsNaN(d) || d >= float64(limit) {
		return limit
	}
	return time.Duration(d)
}

func (b *Bans) remember(spec rules.BanSpec) int64 {
	return int64(max(b.opts.Remember, spec.Max))
}

// Ban bans addr at now (unix nanoseconds) for the next offence under spec
// and returns when the ban ends. source names who banned (a guard's name),
// reason says why. A source already banned stays banned as it is: no new
// offence is counted. Ban is what guards call on a refusal; it does not
// allocate on the already-banned path.
func (b *Bans) Ban(addr [16]byte, spec rules.BanSpec, source, reason string, now int64) time.Time {
	s := b.shard(&addr)
	s.mu.Lock()
	r, ok := s.m[addr]
	if ok && r.until > now {
		s.mu.Unlock()
		return clock.Wall(r.until)
	}
	if ok && r.until == 0 && r.forget <= now {
		r = record{} // offences forgotten
	}
	r.offences++
	until := deadline(now, Duration(spec, r.offences))
	b.set(s, addr, ok, r, now, until, b.remember(spec), source, reason)
	s.mu.Unlock()
	b.notify(event{ban: true, addr: addr, until: until})
	return clock.Wall(until)
}

// set stores r (existed: addr had a record) as banned from now until until;
// the shard is locked.
func (b *Bans) set(s *bshard, addr [16]byte, existed bool, r record, now, until, remember int64, source, reason string) {
	if !existed && len(s.m) >= b.perCap {
		b.evictOne(s, now)
	}
	if r.until == 0 {
		b.active.Add(1)
	}
	r.since, r.until, r.lastOffence = now, until, now
	r.forget = deadline(until, time.Duration(remember))
	r.source, r.reason = source, reason
	s.m[addr] = r
	s.until[addr] = until
	b.banned.Add(1)
}

// evictOne makes room in a full shard: the offence record (not banned) with
// the oldest offence, else the ban that ends first, which is then unbanned.
func (b *Bans) evictOne(s *bshard, now int64) {
	var victim [16]byte
	found, victimBanned := false, false
	var best int64
	for a, r := range s.m {
		banned := r.until != 0
		key := r.lastOffence
		if banned {
			key = r.until
		}
		if !found || (victimBanned && !banned) || (victimBanned == banned && key < best) {
			victim, best, victimBanned, found = a, key, banned, true
		}
	}
	if !found {
		return
	}
	delete(s.m, victim)
	delete(s.until, victim)
	b.evictions.Add(1)
	if victimBanned {
		b.active.Add(-1)
		b.notify(event{addr: victim})
	}
}

// Add bans addr for d from now (the CLI's "bans add"), replacing the time
// of any current ban, and returns the ban as recorded. It counts as an
// offence toward later guard bans.
func (b *Bans) Add(addr netip.Addr, d time.Duration, reason string, now int64) (Ban, error) {
	if !addr.IsValid() {
		return Ban{}, fmt.Errorf("add ban: %w", ErrBadAddress)
	}
	if d <= 0 || d > MaxBan {
		return Ban{}, fmt.Errorf("add ban %s: %w (got %v)", addr, ErrBadDuration, d)
	}
	a := addr.Unmap().As16()
	s := b.shard(&a)
	s.mu.Lock()
	r, ok := s.m[a]
	if ok && r.until == 0 && r.forget <= now {
		r = record{}
	}
	r.offences++
	b.set(s, a, ok, r, now, deadline(now, d), int64(b.opts.Remember), SourceManual, reason)
	r = s.m[a]
	s.mu.Unlock()
	b.notify(event{ban: true, addr: a, until: r.until})
	return r.ban(a), nil
}

// Adopt records a ban on addr for d from now unless addr is banned already,
// and reports whether it did. It is how the daemon takes over, at start,
// the entries of the kernel ban set that the saved state lacks, so that
// they can be listed and lifted; OnBan is not told (the kernel has it).
func (b *Bans) Adopt(addr netip.Addr, d time.Duration, now int64) bool {
	if !addr.IsValid() || d <= 0 {
		return false
	}
	a := addr.Unmap().As16()
	s := b.shard(&a)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[a]
	if ok && r.until > now {
		return false
	}
	if ok && r.until == 0 && r.forget <= now {
		r = record{}
	}
	r.offences = max(r.offences, 1)
	b.set(s, a, ok, r, now, deadline(now, min(d, MaxBan)), int64(b.opts.Remember), SourceKernel, "in the kernel ban set at start, not in the saved state")
	return true
}

// Del lifts the ban on addr and forgets its offences (the CLI's "bans del").
// It reports whether addr was banned.
func (b *Bans) Del(addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	a := addr.Unmap().As16()
	s := b.shard(&a)
	s.mu.Lock()
	r, ok := s.m[a]
	delete(s.m, a)
	delete(s.until, a)
	wasBanned := ok && r.until != 0
	if wasBanned {
		b.active.Add(-1)
	}
	s.mu.Unlock()
	if wasBanned {
		b.notify(event{addr: a})
	}
	return wasBanned
}

// IsBanned reports whether addr is banned at now (unix nanoseconds). It is
// the per-packet check: it does not allocate, and costs one atomic load
// while nobody is banned.
func (b *Bans) IsBanned(addr [16]byte, now int64) bool {
	if b.active.Load() == 0 {
		return false
	}
	s := b.shard(&addr)
	s.mu.Lock()
	until := s.until[addr]
	s.mu.Unlock()
	return until > now
}

// Until returns when the ban of addr ends, and whether addr is banned at
// now. It changes nothing.
func (b *Bans) Until(addr [16]byte, now int64) (time.Time, bool) {
	if b.active.Load() == 0 {
		return time.Time{}, false
	}
	s := b.shard(&addr)
	s.mu.Lock()
	until := s.until[addr]
	s.mu.Unlock()
	return clock.Wall(until), until > now
}

// Ban is one banned source as List and the "bans.list" control command
// report it.
type Ban struct {
	Addr     netip.Addr `json:"addr"`
	Reason   string     `json:"reason"`
	Source   string     `json:"source"` // the guard's name, or SourceManual
	Since    time.Time  `json:"since"`
	Until    time.Time  `json:"until"`
	Offences int        `json:"offences"` // remembered offences, this one included
}

func (r *record) ban(a [16]byte) Ban {
	return Ban{
		Addr:     netip.AddrFrom16(a).Unmap(),
		Reason:   r.reason,
		Source:   r.source,
		Since:    clock.Wall(r.since),
		Until:    clock.Wall(r.until),
		Offences: r.offences,
	}
}

// List returns the sources banned at now, sorted by address.
func (b *Bans) List(now int64) []Ban {
	out := []Ban{}
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		for a, r := range s.m {
			if r.until > now {
				out = append(out, r.ban(a))
			}
		}
		s.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out
}

// Expire ends the bans that are over at now, telling OnUnban, drops offence
// records older than their memory, and returns how many bans ended. Call it
// from a ticker (every second is plenty: IsBanned judges by time anyway).
func (b *Bans) Expire(now int64) int {
	var ended [][16]byte
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		for a, r := range s.m {
			if r.until != 0 && r.until <= now {
				r.until = 0
				s.m[a] = r
				delete(s.until, a)
				b.active.Add(-1)
				ended = append(ended, a)
			}
			if r.until == 0 && r.forget <= now {
				delete(s.m, a)
			}
		}
		s.mu.Unlock()
	}
	b.expired.Add(uint64(len(ended)))
	for _, a := range ended {
		b.notify(event{addr: a})
	}
	return len(ended)
}

// notify queues an event for Run without blocking.
func (b *Bans) notify(ev event) {
	if b.events == nil {
		return
	}
	select {
	case b.events <- ev:
	default:
		b.dropped.Add(1)
	}
}

// Run delivers ban and unban notifications to OnBan and OnUnban, one at a
// time in order, until ctx is done. The daemon runs it in its own goroutine;
// without it notifications pile up in the queue and are then dropped
// (counted in BanStats.DroppedNotifications).
func (b *Bans) Run(ctx context.Context) {
	if b.events == nil {
		<-ctx.Done()
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-b.events:
			a := netip.AddrFrom16(ev.addr).Unmap()
			if ev.ban && b.opts.OnBan != nil {
				b.opts.OnBan(a, clock.Wall(ev.until))
			} else if !ev.ban && b.opts.OnUnban != nil {
				b.opts.OnUnban(a)
			}
		}
	}
}

// BanStats are the counters of the ban table.
type BanStats struct {
	Active               int    // sources banned now (until Expire ends them)
	Records              int    // bans plus remembered offences
	Banned               uint64 // bans issued (guards and manual)
	Expired              uint64 // bans ended by Expire
	Evictions            uint64 // records dropped because the table was full
	DroppedNotifications uint64 // OnBan/OnUnban calls lost to a full queue
}

// Stats returns the ban table's counters.
func (b *Bans) Stats() BanStats {
	st := BanStats{
		Active:               int(b.active.Load()),
		Banned:               b.banned.Load(),
		Expired:              b.expired.Load(),
		Evictions:            b.evictions.Load(),
		DroppedNotifications: b.dropped.Load(),
	}
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		st.Records += len(s.m)
		s.mu.Unlock()
	}
	return st
}

// BanSnapshot is one record as persisted, with absolute times so that a
// restored ban keeps the time it had left.
type BanSnapshot struct {
	Addr        netip.Addr `json:"addr"`
	Source      string     `json:"source"`
	Reason      string     `json:"reason"`
	Since       time.Time  `json:"since"`
	Until       time.Time  `json:"until"` // zero: not banned, offences remembered
	Offences    int        `json:"offences"`
	LastOffence time.Time  `json:"last_offence"`
	Forget      time.Time  `json:"forget"`
}

// Snapshot returns every ban and offence record for persistence.
func (b *Bans) Snapshot() []BanSnapshot {
	var out []BanSnapshot
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		for a, r := range s.m {
			sn := BanSnapshot{
				Addr: netip.AddrFrom16(a).Unmap(), Source: r.source, Reason: r.reason,
				Since: clock.Wall(r.since).UTC(), Offences: r.offences,
				LastOffence: clock.Wall(r.lastOffence).UTC(), Forget: clock.Wall(r.forget).UTC(),
			}
			if r.until != 0 {
				sn.Until = clock.Wall(r.until).UTC()
			}
			out = append(out, sn)
		}
		s.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out
}

// Restore loads records saved by Snapshot and returns how many bans are
// active after it. Times are absolute: a ban saved with three minutes left
// and restored a minute later has two minutes left. Bans that ended while
// the daemon was down are restored as offence records only, silently (no
// OnUnban storm); records past their memory are dropped. OnBan is told
// about every restored ban, so the kernel ban set can be refilled.
func (b *Bans) Restore(snaps []BanSnapshot, now int64) int {
	n := 0
	for _, sn := range snaps {
		if !sn.Addr.IsValid() || clock.Mono(sn.Forget) <= now {
			continue
		}
		a := sn.Addr.Unmap().As16()
		r := record{
			since: clock.Mono(sn.Since), offences: sn.Offences, lastOffence: clock.Mono(sn.LastOffence),
			forget: clock.Mono(sn.Forget), source: sn.Source, reason: sn.Reason,
		}
		banned := !sn.Until.IsZero() && clock.Mono(sn.Until) > now
		if banned {
			r.until = clock.Mono(sn.Until)
		}
		s := b.shard(&a)
		s.mu.Lock()
		old, existed := s.m[a]
		if !existed && len(s.m) >= b.perCap {
			b.evictOne(s, now)
		}
		switch {
		case old.until != 0 && !banned:
			b.active.Add(-1)
		case old.until == 0 && banned:
			b.active.Add(1)
		}
		s.m[a] = r
		if banned {
			s.until[a] = r.until
		} else {
			delete(s.until, a)
		}
		s.mu.Unlock()
		if banned {
			n++
			b.notify(event{ban: true, addr: a, until: r.until})
		}
	}
	return n
}

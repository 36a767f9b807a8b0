package guard

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/engine/internal/lru"
	"github.com/nfqfw/nfqfw/rules"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// SourceManual is the Source of bans added with Add (the CLI).
const SourceManual = decision.SourceManual

// SourceKernel is the Source of bans found in the kernel ban set at start
// that the saved state did not hold (Adopt): a ban made just before a
// crash, before its state was saved.
const SourceKernel = decision.SourceKernel

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
	// OnBan is told about every new or changed ban, of this gateway or
	// applied from elsewhere: the daemon deletes the scope's kernel flows
	// (ctnetlink) and adds it to the kernel ban set with the time left.
	// It runs on Run's goroutine.
	OnBan func(scope netip.Prefix, until time.Time)
	// OnUnban is told when a ban ends (expired, deleted, evicted, lifted
	// from elsewhere). It runs on Run's goroutine.
	OnUnban func(scope netip.Prefix)
	// OnDecision is told about every decision this gateway makes: a
	// guard's ban, a manual ban, a manual unban (Del), each as a
	// decision.Decision with an empty Origin; not about bans that merely
	// expire, are adopted from the kernel or restored, nor about what
	// Apply applies. The fleet link publishes them. It runs on Run's
	// goroutine, after OnBan/OnUnban of the same change.
	OnDecision func(decision.Decision)
	// MaxEntries bounds the bans and offence records kept (default
	// DefaultMaxBans). When full, the oldest offence record goes first,
	// then the ban closest to its end.
	MaxEntries int
	// Remember is how long offences count toward a longer ban after a ban
	// ends (default DefaultRemember; never less than the spec's Max).
	Remember time.Duration
	// Queue is how many notifications wait for Run (default
	// DefaultQueue); when full, notifications are dropped and counted.
	Queue int
}

// Bans is the table of banned scopes (one address, or a prefix) and of
// remembered offences. Its methods are safe for concurrent use; IsBanned
// is the per-packet one.
type Bans struct {
	opts   BanOptions
	seed   uint64
	perCap int
	active atomic.Int64 // records with a ban not yet expired by Expire
	events chan event

	// lens are the prefix lengths of the bans in force, per family: the
	// only ones IsBanned looks up. counts is behind lensMu, taken inside
	// a shard's lock.
	lens   atomic.Pointer[lengths]
	lensMu sync.Mutex
	counts lengthCounts

	banned, applied, expired, evictions, dropped atomic.Uint64

	// allows: no ban may overlap one in force; refusals counted, of this
	// gateway's bans (a guard's, bans add) and of other gateways'.
	allows                              atomic.Pointer[Allows]
	allowRefusedOwn, allowRefusedRemote atomic.Uint64

	shards [banShards]bshard
}

// bshard is one lock's worth of the table. The until maps duplicate the
// end of every ban in force (records with until != 0), one map per prefix
// length (created on first use), so that IsBanned touches small slots
// only: prefixes of up to 64 bits (the IPv6 /64 of guard bans) keyed by
// their first 8 bytes, longer ones by the 16-byte address. Both keys are
// ones the runtime hashes fast; a masked address built in memory and read
// back whole (a 17-byte key, or a [16]byte for a /64) measured 2.5 times
// slower per IsBanned.
type bshard struct {
	mu    sync.Mutex
	m     map[key]record
	short [65]map[uint64]int64   // bits 0..64: masked first 8 bytes
	long  [64]map[[16]byte]int64 // bits 65..128, at bits-65
	// room is how many records m was last sized for by Reserve.
	room int
	_    [64]byte
}

// setUntil records the end of k's ban; the shard is locked.
func (s *bshard) setUntil(k key, until int64) {
	if k.bits <= 64 {
		if s.short[k.bits] == nil {
			s.short[k.bits] = make(map[uint64]int64)
		}
		s.short[k.bits][binary.BigEndian.Uint64(k.a[:8])] = until
		return
	}
	if s.long[k.bits-65] == nil {
		s.long[k.bits-65] = make(map[[16]byte]int64)
	}
	s.long[k.bits-65][k.a] = until
}

// Reserve sizes the table for n more bans of other gateways, shaped like
// the sample ds (its share of each prefix length): a fleet link's backlog
// of 100,000 decisions otherwise grows every map of the table from empty
// one doubling at a time, rehashing what it holds at each step. A shard
// already sized for as many is left as it is, so calling it before each
// batch of a backlog with what is still pending resizes once. It never
// sizes a shard beyond the table's bound (MaxEntries), nor copies one for
// fewer than a quarter of the records it holds.
func (b *Bans) Reserve(ds []decision.Decision, n int) {
	var perBits [129]int
	sampled := 0
	for i := range ds {
		if ds[i].Kind != decision.Ban {
			continue
		}
		if k, err := scopeKey(ds[i].Scope); err == nil {
			perBits[k.bits]++
			sampled++
		}
	}
	if sampled == 0 || n <= 0 {
		return
	}
	n = n * sampled / len(ds) // the bans among the n, as in the sample
	// A shard gets an eighth more than its even share: the spread of
	// the hash over 32 shards.
	per := func(c int) int { return min(c+c/8+8, b.perCap) }
	need := per(n / banShards)
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		// A shard is copied only for a backlog of at least a quarter
		// of what it holds: a few decisions more (a burst of live
		// ones, a short reconnect) grow it as they come instead of
		// copying a large table for each batch.
		if want := min(len(s.m)+need, b.perCap); want > s.room && need >= len(s.m)/4 {
			s.m = grown(s.m, want)
			s.room = want
			for bits, c := range perBits {
				if c == 0 {
					continue
				}
				more := per(n * c / sampled / banShards)
				if bits <= 64 {
					s.short[bits] = grown(s.short[bits], len(s.short[bits])+more)
				} else {
					s.long[bits-65] = grown(s.long[bits-65], len(s.long[bits-65])+more)
				}
			}
		}
		s.mu.Unlock()
	}
}

// grown returns a map with room for size entries holding m's.
func grown[K comparable, V any](m map[K]V, size int) map[K]V {
	g := make(map[K]V, size)
	maps.Copy(g, m)
	return g
}

// clearUntil forgets k's ban; the shard is locked.
func (s *bshard) clearUntil(k key) {
	if k.bits <= 64 {
		delete(s.short[k.bits], binary.BigEndian.Uint64(k.a[:8]))
		return
	}
	delete(s.long[k.bits-65], k.a)
}

// record is one scope's ban and offence history. until == 0: not banned,
// only remembered.
type record struct {
	since, until int64
	offences     int
	lastOffence  int64
	forget       int64 // dropped by Expire after this, when not banned
	source       string
	reason       string
	origin       string // the gateway that decided it; "" for this one
}

// event is one notification for Run. decide: also report it to
// OnDecision (a decision of this gateway).
type event struct {
	ban, decide bool
	k           key
	since       int64
	until       int64
	source      string
	reason      string
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
	if opts.OnBan != nil || opts.OnUnban != nil || opts.OnDecision != nil {
		b.events = make(chan event, opts.Queue)
	}
	for i := range b.shards {
		b.shards[i].m = make(map[key]record)
	}
	b.lens.Store(&lengths{})
	return b
}

func (b *Bans) shard(k *key) *bshard {
	return b.shardOf(binary.BigEndian.Uint64(k.a[:8]), binary.BigEndian.Uint64(k.a[8:]), k.bits)
}

// shardOf is the shard of the masked address hi, lo with prefix length
// bits.
func (b *Bans) shardOf(hi, lo uint64, bits uint8) *bshard {
	return &b.shards[lru.HashWords(hi, lo, b.seed^uint64(bits))%banShards]
}

// started and ended count a ban coming into and going out of force; the
// shard of k is locked.
func (b *Bans) started(k key) { b.active.Add(1); b.count(k, 1) }
func (b *Bans) ended(k key)   { b.active.Add(-1); b.count(k, -1) }

func (b *Bans) count(k key, delta int32) {
	b.lensMu.Lock()
	if l := b.counts.add(k, delta); l != nil {
		b.lens.Store(l)
	}
	b.lensMu.Unlock()
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

// Ban bans the scope of the offender addr under spec (its /Prefix4 or
// /Prefix6, default one IPv4 address or the IPv6 /64) at now (unix
// nanoseconds) for the scope's next offence, and returns when the ban
// ends. source names who banned (a guard's name), reason says why. A
// scope already banned stays banned as it is: no new offence is counted.
// Ban is what guards call on a refusal; it does not allocate on the
// already-banned path.
func (b *Bans) Ban(addr [16]byte, spec rules.BanSpec, source, reason string, now int64) time.Time {
	k := guardKey(addr, &spec)
	if b.allowed(k, now) {
		b.allowRefusedOwn.Add(1)
		return time.Time{}
	}
	s := b.shard(&k)
	s.mu.Lock()
	r, ok := s.m[k]
	if ok && r.until > now {
		s.mu.Unlock()
		return clock.Wall(r.until)
	}
	if ok && r.until == 0 && r.forget <= now {
		r = record{} // offences forgotten
	}
	r.offences++
	until := deadline(now, Duration(spec, r.offences))
	r.source, r.reason, r.origin = source, reason, ""
	b.set(s, k, ok, r, now, until, b.remember(spec))
	s.mu.Unlock()
	b.notify(event{ban: true, decide: true, k: k, since: now, until: until, source: source, reason: reason})
	return clock.Wall(until)
}

// set stores r (existed: k had a record) as banned from since until
// until; the shard is locked.
func (b *Bans) set(s *bshard, k key, existed bool, r record, since, until, remember int64) {
	if !existed && len(s.m) >= b.perCap {
		b.evictOne(s, since)
	}
	if r.until == 0 {
		b.started(k)
	}
	r.since, r.until, r.lastOffence = since, until, since
	r.forget = deadline(until, time.Duration(remember))
	s.m[k] = r
	s.setUntil(k, until)
	b.banned.Add(1)
}

// evictOne makes room in a full shard: the offence record (not banned) with
// the oldest offence, else the ban that ends first, which is then unbanned.
func (b *Bans) evictOne(s *bshard, now int64) {
	var victim key
	found, victimBanned := false, false
	var best int64
	for k, r := range s.m {
		banned := r.until != 0
		at := r.lastOffence
		if banned {
			at = r.until
		}
		if !found || (victimBanned && !banned) || (victimBanned == banned && at < best) {
			victim, best, victimBanned, found = k, at, banned, true
		}
	}
	if !found {
		return
	}
	delete(s.m, victim)
	s.clearUntil(victim)
	b.evictions.Add(1)
	if victimBanned {
		b.ended(victim)
		b.notify(event{k: victim})
	}
}

// Add bans scope (an address or a prefix) for d from now (the CLI's "bans
// add"), replacing the time of any current ban of exactly that scope, and
// returns the ban as recorded. It counts as an offence toward later guard
// bans of the same scope.
func (b *Bans) Add(scope netip.Prefix, d time.Duration, reason string, now int64) (Ban, error) {
	k, err := scopeKey(scope)
	if err != nil {
		return Ban{}, fmt.Errorf("add ban: %w", err)
	}
	if d <= 0 || d > MaxBan {
		return Ban{}, fmt.Errorf("add ban %s: %w (got %v)", k.prefix(), ErrBadDuration, d)
	}
	if a, ok := b.allows.Load().overlapping(k.prefix(), now); ok {
		b.allowRefusedOwn.Add(1)
		return Ban{}, fmt.Errorf("add ban %s: %w: the allow of %s (until %s, nfqfw allows list); end it first with nfqfw allows del %s",
			k.prefix(), ErrAllowed, a.scope, clock.Wall(a.until).UTC().Format(time.RFC3339), a.scope)
	}
	s := b.shard(&k)
	s.mu.Lock()
	r, ok := s.m[k]
	if ok && r.until == 0 && r.forget <= now {
		r = record{}
	}
	r.offences++
	r.source, r.reason, r.origin = SourceManual, reason, ""
	b.set(s, k, ok, r, now, deadline(now, d), int64(b.opts.Remember))
	r = s.m[k]
	s.mu.Unlock()
	b.notify(event{ban: true, decide: true, k: k, since: now, until: r.until, source: SourceManual, reason: reason})
	return r.ban(k), nil
}

// SetAllows makes the bans refuse any scope that overlaps an allow in
// force in a: a guard's ban of it is not made, Add and Apply return an
// error wrapping ErrAllowed. Each refusal is counted (AllowRefused).
func (b *Bans) SetAllows(a *Allows) { b.allows.Store(a) }

// allowed reports whether an allow in force at now overlaps k.
func (b *Bans) allowed(k key, now int64) bool {
	_, ok := b.allows.Load().overlapping(k.prefix(), now)
	return ok
}

// AllowRefused returns how many bans an allow refused: of this gateway
// (a guard's, bans add) and of other gateways (Apply, ApplyBatch).
func (b *Bans) AllowRefused() (own, remote uint64) {
	return b.allowRefusedOwn.Load(), b.allowRefusedRemote.Load()
}

// Adopt records a ban on scope for d from now unless scope is banned
// already, and reports whether it did. It is how the daemon takes over,
// at start, the entries of the kernel ban set that the saved state lacks,
// so that they can be listed and lifted; OnBan is not told (the kernel has
// it), nor OnDecision (it is no new decision).
func (b *Bans) Adopt(scope netip.Prefix, d time.Duration, now int64) bool {
	k, err := scopeKey(scope)
	if err != nil || d <= 0 {
		return false
	}
	s := b.shard(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[k]
	if ok && r.until > now {
		return false
	}
	if ok && r.until == 0 && r.forget <= now {
		r = record{}
	}
	r.offences = max(r.offences, 1)
	r.source, r.reason, r.origin = SourceKernel, "in the kernel ban set at start, not in the saved state", ""
	b.set(s, k, ok, r, now, deadline(now, min(d, MaxBan)), int64(b.opts.Remember))
	return true
}

// Del lifts the ban on exactly scope (not on prefixes inside or around
// it) and forgets its offences (the CLI's "bans del"). It reports whether
// scope was banned; OnDecision is told of the unban.
func (b *Bans) Del(scope netip.Prefix) bool {
	k, err := scopeKey(scope)
	if err != nil {
		return false
	}
	return b.del(k, true, true)
}

// del lifts the ban on k; notify: tell OnUnban (and OnDecision when
// decide).
func (b *Bans) del(k key, decide, notify bool) bool {
	s := b.shard(&k)
	s.mu.Lock()
	r, ok := s.m[k]
	delete(s.m, k)
	s.clearUntil(k)
	wasBanned := ok && r.until != 0
	if wasBanned {
		b.ended(k)
	}
	s.mu.Unlock()
	if wasBanned && notify {
		b.notify(event{k: k, decide: decide, source: SourceManual})
	}
	return wasBanned
}

// Apply enforces a ban or unban decided elsewhere (the fleet link) and
// reports whether it changed anything. A ban keeps the decision's
// absolute expiry, never extended nor doubled, and its origin, source and
// reason; one that has ended by now, or that a ban of the same scope
// already in force outlasts or equals, changes nothing, so applying the
// same decision twice is harmless and an older decision never shortens a
// newer one. An unban lifts the ban on exactly its scope, whatever its
// expiry. OnBan/OnUnban are told; OnDecision is not (the decision is
// not this gateway's). Other kinds are ErrKind; an invalid decision or a
// scope wider than MinPrefix4/MinPrefix6 is an error.
func (b *Bans) Apply(d decision.Decision, now int64) (bool, error) {
	changed, _, err := b.apply(d, now, clock.Read(), true)
	return changed, err
}

// ApplyBatch applies decisions made elsewhere as Apply does, in order, but
// tells neither OnBan nor OnUnban: it returns the bans it put in force or
// lengthened, and the scopes it lifted, for the caller to load into the
// kernel sets at once (a fleet link's backlog at start or after an
// outage: one notification per ban would overflow the queue and cost a
// netlink request each). A decision it cannot apply is skipped; the first
// such error is returned after the rest are applied.
func (b *Bans) ApplyBatch(ds []decision.Decision, now int64) (banned []Ban, lifted []netip.Prefix, err error) {
	if len(ds) > 0 {
		banned = make([]Ban, 0, len(ds))
	}
	// One reading of the clock converts the whole batch's times: a
	// reading per time was a sixth of a backlog's cost.
	f := clock.Read()
	for _, d := range ds {
		changed, ban, aerr := b.apply(d, now, f, false)
		if aerr != nil {
			if err == nil {
				err = aerr
			}
			continue
		}
		if !changed {
			continue
		}
		if d.Kind == decision.Unban {
			lifted = append(lifted, d.Scope)
			continue
		}
		banned = append(banned, ban)
	}
	return banned, lifted, err
}

// apply applies d at now, converting its times with f; a ban it puts in
// force or lengthens is returned as recorded.
func (b *Bans) apply(d decision.Decision, now int64, f clock.Frame, notify bool) (bool, Ban, error) {
	if err := d.Validate(); err != nil {
		return false, Ban{}, fmt.Errorf("apply decision: %w", err)
	}
	k, err := scopeKey(d.Scope)
	if err != nil {
		return false, Ban{}, fmt.Errorf("apply decision: %w", err)
	}
	switch d.Kind {
	case decision.Unban:
		return b.del(k, false, notify), Ban{}, nil
	case decision.Ban:
	default:
		return false, Ban{}, fmt.Errorf("apply decision %s: %w", d.Kind, ErrKind)
	}
	until := f.Mono(d.Expires)
	if until <= now {
		return false, Ban{}, nil
	}
	if b.allowed(k, now) {
		b.allowRefusedRemote.Add(1)
		return false, Ban{}, fmt.Errorf("apply decision %s: %w", d.String(), ErrAllowed)
	}
	since := now
	if !d.Issued.IsZero() {
		since = min(f.Mono(d.Issued), now)
	}
	origin := d.Origin
	if d.Local() {
		origin = ""
	}
	s := b.shard(&k)
	s.mu.Lock()
	r, ok := s.m[k]
	if ok && r.until >= until {
		s.mu.Unlock()
		return false, Ban{}, nil
	}
	if ok && r.until == 0 && r.forget <= now {
		r = record{}
	}
	r.offences = max(r.offences, 1)
	r.source, r.reason, r.origin = d.Source, d.Reason, origin
	b.set(s, k, ok, r, since, until, int64(b.opts.Remember))
	r.since, r.until = since, until
	ban := r.banAt(k, f)
	s.mu.Unlock()
	b.applied.Add(1)
	if notify {
		b.notify(event{ban: true, k: k, until: until})
	}
	return true, ban, nil
}

// IsBanned reports whether a ban in force at now (unix nanoseconds) covers
// addr. It is the per-packet check: it does not allocate, costs one atomic
// load while nobody is banned, and otherwise one map lookup per prefix
// length in use for addr's family (one, with the default lengths and no
// manual prefixes).
func (b *Bans) IsBanned(addr [16]byte, now int64) bool {
	if b.active.Load() == 0 {
		return false
	}
	ls := b.lens.Load()
	list := ls.v6
	if isV4(&addr) {
		list = ls.v4
	}
	hi, lo := binary.BigEndian.Uint64(addr[:8]), binary.BigEndian.Uint64(addr[8:])
	for _, bits := range list {
		var until int64
		if bits <= 64 {
			h := hi & (^uint64(0) << (64 - bits)) // bits 0: shift 64, none kept
			s := b.shardOf(h, 0, bits)
			s.mu.Lock()
			until = s.short[bits][h]
			s.mu.Unlock()
		} else {
			l := lo & (^uint64(0) << (128 - bits))
			a := addr
			if bits < 128 {
				a = mask(&addr, bits)
			}
			s := b.shardOf(hi, l, bits)
			s.mu.Lock()
			until = s.long[bits-65][a]
			s.mu.Unlock()
		}
		if until > now {
			return true
		}
	}
	return false
}

// Covering returns the ban in force at now that covers addr and lasts
// longest (an address may be inside several: its /128, its /64, a /48),
// and whether there is one. It changes nothing; not for the packet path.
func (b *Bans) Covering(addr [16]byte, now int64) (Ban, bool) {
	ls := b.lens.Load()
	list := ls.v6
	if isV4(&addr) {
		list = ls.v4
	}
	var best Ban
	found := false
	for _, bits := range list {
		k := key{a: mask(&addr, bits), bits: bits}
		s := b.shard(&k)
		s.mu.Lock()
		r, ok := s.m[k]
		s.mu.Unlock()
		if ok && r.until > now && (!found || clock.Wall(r.until).After(best.Until)) {
			best, found = r.ban(k), true
		}
	}
	return best, found
}

// Ban is one ban as List and the "bans.list" control command report it.
type Ban struct {
	Scope    netip.Prefix `json:"scope"` // one address (/32, /128) or a prefix
	Reason   string       `json:"reason"`
	Source   string       `json:"source"`           // a guard's name, SourceManual, SourceKernel
	Origin   string       `json:"origin,omitempty"` // the gateway that decided it; empty: this one
	Since    time.Time    `json:"since"`
	Until    time.Time    `json:"until"`
	Offences int          `json:"offences"` // remembered offences, this one included
}

// Decision returns the ban as a decision.
func (bn *Ban) Decision() decision.Decision {
	return decision.Decision{Kind: decision.Ban, Scope: bn.Scope, Issued: bn.Since, Expires: bn.Until,
		Origin: bn.Origin, Source: bn.Source, Reason: bn.Reason}
}

func (r *record) ban(k key) Ban { return r.banAt(k, clock.Read()) }

// banAt is ban with the times converted by f.
func (r *record) banAt(k key, f clock.Frame) Ban {
	return Ban{
		Scope:    k.prefix(),
		Reason:   r.reason,
		Source:   r.source,
		Origin:   r.origin,
		Since:    f.Wall(r.since),
		Until:    f.Wall(r.until),
		Offences: r.offences,
	}
}

// records returns how many records the table holds, to size a copy of
// it once (growing a copy of 100,000 records took most of a state save's
// CPU).
func (b *Bans) records() int {
	n := 0
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// List returns the bans in force at now, sorted by scope.
func (b *Bans) List(now int64) []Ban {
	out := make([]Ban, 0, max(b.active.Load(), 0))
	f := clock.Read()
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		for k, r := range s.m {
			if r.until > now {
				out = append(out, r.banAt(k, f))
			}
		}
		s.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return lessScope(out[i].Scope, out[j].Scope) })
	return out
}

// Expire ends the bans that are over at now, telling OnUnban, drops offence
// records older than their memory, and returns how many bans ended. Call it
// from a ticker (every second is plenty: IsBanned judges by time anyway).
func (b *Bans) Expire(now int64) int {
	var over []key
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		for k, r := range s.m {
			if r.until != 0 && r.until <= now {
				r.until = 0
				s.m[k] = r
				s.clearUntil(k)
				b.ended(k)
				over = append(over, k)
			}
			if r.until == 0 && r.forget <= now {
				delete(s.m, k)
			}
		}
		s.mu.Unlock()
	}
	b.expired.Add(uint64(len(over)))
	for _, k := range over {
		b.notify(event{k: k})
	}
	return len(over)
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

// Run delivers notifications to OnBan, OnUnban and OnDecision, one at a
// time in order, until ctx is done. The daemon runs it in its own
// goroutine; without it notifications pile up in the queue and are then
// dropped (counted in BanStats.DroppedNotifications).
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
			b.deliver(ev)
		}
	}
}

func (b *Bans) deliver(ev event) {
	scope := ev.k.prefix()
	if ev.ban && b.opts.OnBan != nil {
		b.opts.OnBan(scope, clock.Wall(ev.until))
	} else if !ev.ban && b.opts.OnUnban != nil {
		b.opts.OnUnban(scope)
	}
	if !ev.decide || b.opts.OnDecision == nil {
		return
	}
	d := decision.Decision{Kind: decision.Unban, Scope: scope, Source: ev.source, Reason: ev.reason}
	if ev.ban {
		d.Kind, d.Issued, d.Expires = decision.Ban, clock.Wall(ev.since), clock.Wall(ev.until)
	} else {
		d.Issued = clock.Wall(clock.Now())
	}
	if len(d.Reason) > decision.MaxReason {
		d.Reason = d.Reason[:decision.MaxReason]
	}
	b.opts.OnDecision(d)
}

// BanStats are the counters of the ban table.
type BanStats struct {
	Active               int    // scopes banned now (until Expire ends them)
	Records              int    // bans plus remembered offences
	Banned               uint64 // bans issued (guards, manual, applied)
	Applied              uint64 // of which applied from elsewhere (Apply)
	Expired              uint64 // bans ended by Expire
	Evictions            uint64 // records dropped because the table was full
	DroppedNotifications uint64 // notifications lost to a full queue
}

// Stats returns the ban table's counters.
func (b *Bans) Stats() BanStats {
	st := BanStats{
		Active:               int(b.active.Load()),
		Banned:               b.banned.Load(),
		Applied:              b.applied.Load(),
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
// restored ban keeps the time it had left. Files written before bans had
// scopes hold Addr only: Restore reads it as that one address.
type BanSnapshot struct {
	Scope       netip.Prefix `json:"scope,omitzero"`
	Addr        netip.Addr   `json:"addr,omitzero"` // Scope's address, for older versions
	Source      string       `json:"source"`
	Reason      string       `json:"reason"`
	Origin      string       `json:"origin,omitempty"` // empty: this gateway
	Since       time.Time    `json:"since"`
	Until       time.Time    `json:"until"` // zero: not banned, offences remembered
	Offences    int          `json:"offences"`
	LastOffence time.Time    `json:"last_offence"`
	Forget      time.Time    `json:"forget"`
}

// scope returns the snapshot's scope: Scope, or Addr alone in files of
// older versions.
func (sn *BanSnapshot) scope() netip.Prefix {
	if sn.Scope.IsValid() {
		return sn.Scope
	}
	if sn.Addr.IsValid() {
		return decision.ScopeOf(sn.Addr)
	}
	return netip.Prefix{}
}

// Snapshot returns every ban and offence record for persistence.
func (b *Bans) Snapshot() []BanSnapshot {
	out := make([]BanSnapshot, 0, b.records())
	f := clock.Read() // one reading for every record's four times
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		for k, r := range s.m {
			p := k.prefix()
			sn := BanSnapshot{
				Scope: p, Addr: p.Addr(), Source: r.source, Reason: r.reason, Origin: r.origin,
				Since: f.Wall(r.since).UTC(), Offences: r.offences,
				LastOffence: f.Wall(r.lastOffence).UTC(), Forget: f.Wall(r.forget).UTC(),
			}
			if r.until != 0 {
				sn.Until = f.Wall(r.until).UTC()
			}
			out = append(out, sn)
		}
		s.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return lessScope(out[i].Scope, out[j].Scope) })
	return out
}

// Restore loads records saved by Snapshot and returns how many bans are
// active after it. Times are absolute: a ban saved with three minutes left
// and restored a minute later has two minutes left. Bans that ended while
// the daemon was down are restored as offence records only, silently (no
// OnUnban storm); records past their memory, and records of an invalid or
// too wide scope, are dropped. OnBan is told about every restored ban, so
// the kernel ban set can be refilled; OnDecision is not.
func (b *Bans) Restore(snaps []BanSnapshot, now int64) int {
	n := 0
	for _, sn := range snaps {
		if clock.Mono(sn.Forget) <= now {
			continue
		}
		k, err := scopeKey(sn.scope())
		if err != nil {
			continue
		}
		r := record{
			since: clock.Mono(sn.Since), offences: sn.Offences, lastOffence: clock.Mono(sn.LastOffence),
			forget: clock.Mono(sn.Forget), source: sn.Source, reason: sn.Reason, origin: sn.Origin,
		}
		banned := !sn.Until.IsZero() && clock.Mono(sn.Until) > now
		if banned {
			r.until = clock.Mono(sn.Until)
		}
		s := b.shard(&k)
		s.mu.Lock()
		old, existed := s.m[k]
		if !existed && len(s.m) >= b.perCap {
			b.evictOne(s, now)
		}
		switch {
		case old.until != 0 && !banned:
			b.ended(k)
		case old.until == 0 && banned:
			b.started(k)
		}
		s.m[k] = r
		if banned {
			s.setUntil(k, r.until)
		} else {
			s.clearUntil(k)
		}
		s.mu.Unlock()
		if banned {
			n++
			b.notify(event{ban: true, k: k, until: r.until})
		}
	}
	return n
}

// AppendJSON appends sn as json.Marshal encodes it, without reflection: a
// fleet gateway's state file holds 100,000 bans and more, and encoding
// them took most of a save's CPU. A record it cannot encode the fast way
// (text that needs escaping, a time json.Marshal refuses or writes
// otherwise) is encoded by json.Marshal.
func (sn *BanSnapshot) AppendJSON(b []byte) ([]byte, error) {
	if !sn.plainJSON() {
		j, err := json.Marshal(sn)
		return append(b, j...), err
	}
	b = append(b, '{')
	if sn.Scope != (netip.Prefix{}) {
		b = sn.Scope.AppendTo(append(b, `"scope":"`...))
		b = append(b, `",`...)
	}
	if sn.Addr != (netip.Addr{}) {
		b = sn.Addr.AppendTo(append(b, `"addr":"`...))
		b = append(b, `",`...)
	}
	b = append(append(append(b, `"source":"`...), sn.Source...), `","reason":"`...)
	b = append(append(b, sn.Reason...), '"')
	if sn.Origin != "" {
		b = append(append(append(b, `,"origin":"`...), sn.Origin...), '"')
	}
	b = appendJSONTime(append(b, `,"since":`...), sn.Since)
	b = appendJSONTime(append(b, `,"until":`...), sn.Until)
	b = strconv.AppendInt(append(b, `,"offences":`...), int64(sn.Offences), 10)
	b = appendJSONTime(append(b, `,"last_offence":`...), sn.LastOffence)
	b = appendJSONTime(append(b, `,"forget":`...), sn.Forget)
	return append(b, '}'), nil
}

// plainJSON reports whether AppendJSON's fast encoding of sn is the one
// json.Marshal writes: valid scope and address, text without characters
// JSON escapes, UTC times of years 0-9999.
func (sn *BanSnapshot) plainJSON() bool {
	if (sn.Scope != (netip.Prefix{}) && !sn.Scope.IsValid()) || (sn.Addr != (netip.Addr{}) && (!sn.Addr.IsValid() || sn.Addr.Zone() != "")) {
		return false
	}
	for _, s := range [...]string{sn.Source, sn.Reason, sn.Origin} {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return false
			}
		}
	}
	for _, t := range [...]time.Time{sn.Since, sn.Until, sn.LastOffence, sn.Forget} {
		if t.Location() != time.UTC || t.Year() < 0 || t.Year() > 9999 {
			return false
		}
	}
	return true
}

// appendJSONTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, quoted) for a UTC time of a year 0-9999.
func appendJSONTime(b []byte, t time.Time) []byte {
	return append(t.AppendFormat(append(b, '"'), time.RFC3339Nano), '"')
}

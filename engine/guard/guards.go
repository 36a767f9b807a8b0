package guard

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/engine/internal/lru"
	"github.com/nfqfw/nfqfw/rules"
)

// DefaultMaxSources is how many sources one guard tracks by default that
// have only ever sent SYNs (its probation); DefaultMaxProven how many that
// completed a handshake or were refused (its proven sources). When either
// is full, its source with the oldest attempt is forgotten and counted. A
// flood of spoofed sources, which never complete a handshake, churns the
// probation only: it cannot push a proven offender out.
const (
	DefaultMaxSources = 1 << 17
	DefaultMaxProven  = 1 << 15
)

const guardShards = 64

// Guards is the set of rate guards of one configuration. It is built once by
// New; its methods are safe for concurrent use.
type Guards struct {
	names  map[string]int
	guards []*guard
	allow  []netip.Prefix
	allows *Allows // nil: none
	bans   *Bans
	seed   uint64
}

type limit struct {
	count  int
	window int64
	reason string // "more than 3 new connections in 10s"
}

type guard struct {
	name        string
	limits      []limit
	ring        int   // stamps kept per source at most: the largest Count
	maxWindow   int64 // a source idle this long is as good as new
	ban         *rules.BanSpec
	allowlisted atomic.Uint64
	shards      [guardShards]gshard
}

// gshard is one lock's worth of a guard's sources in two tables from
// address to slot, each with its slots chained by last attempt (oldest
// first): the probation of sources seen with SYNs only, and the proven
// sources (a completed handshake, or refused). Storage grows with the
// sources seen, up to the limits.
type gshard struct {
	mu        sync.Mutex
	seg       [2]segment // probation, proven
	allowed   uint64
	refused   uint64
	evictions uint64
	_         [64]byte
}

const (
	probation = 0
	proven    = 1
)

type segment struct {
	lru  lru.Table
	ents []gentry
}

// gentry is one source: its admitted attempt times, a ring that grows on
// demand up to the guard's ring size, so memory follows the attempts a
// source made, not the configured count.
type gentry struct {
	st   []int64 // admitted attempts; a ring once len == guard.ring
	pos  int32   // next ring slot once full
	last int64   // last attempt, admitted or not
}

// keepStamps is the capacity a recycled slot keeps; a larger ring is freed.
const keepStamps = 8

// New builds the guards of a configuration, each tracking at most
// DefaultMaxSources sources in probation and DefaultMaxProven proven ones.
// Sources inside allowlist are never limited or banned. bans receives the
// bans of guards with a ban spec; it may be nil.
func New(guards []rules.Guard, allowlist []netip.Prefix, bans *Bans) *Guards {
	return NewWithLimit(guards, allowlist, bans, DefaultMaxSources)
}

// NewWithLimit is New with the number of probation sources each guard
// tracks; the proven sources are a quarter of it.
func NewWithLimit(guards []rules.Guard, allowlist []netip.Prefix, bans *Bans, maxSources int) *Guards {
	maxSources = max(maxSources, guardShards)
	g := &Guards{names: make(map[string]int, len(guards)), bans: bans, seed: rand.Uint64()}
	for _, p := range allowlist {
		g.allow = append(g.allow, p.Masked())
	}
	for _, rg := range guards {
		gd := &guard{name: rg.Name, ring: 1, ban: rg.Ban}
		for _, rl := range rg.Limits {
			if rl.Count <= 0 || rl.Window <= 0 {
				continue // validated by rules; a zero limit limits nothing
			}
			gd.limits = append(gd.limits, limit{
				count:  rl.Count,
				window: int64(rl.Window),
				reason: fmt.Sprintf("more than %d new connections in %s", rl.Count, fmtDuration(rl.Window)),
			})
			gd.ring = max(gd.ring, rl.Count)
			gd.maxWindow = max(gd.maxWindow, int64(rl.Window))
		}
		for i := range gd.shards {
			s := &gd.shards[i]
			s.seg[probation].lru.Init(0, share(maxSources, i))
			s.seg[proven].lru.Init(0, share(max(maxSources/4, guardShards), i))
		}
		g.names[rg.Name] = len(g.guards)
		g.guards = append(g.guards, gd)
	}
	return g
}

// share is shard i's part of n.
func share(n, i int) int {
	c := n / guardShards
	if i < n%guardShards {
		c++
	}
	return c
}

// Index returns the index of the guard called name, for Allow, or -1.
// Resolve it once when compiling rules.
func (g *Guards) Index(name string) int {
	if i, ok := g.names[name]; ok {
		return i
	}
	return -1
}

// SetAllows makes the sources of the allows in force as free as the
// allowlist's: never limited nor banned by a guard. Call it before the
// guards are in use.
func (g *Guards) SetAllows(a *Allows) { g.allows = a }

// allowlisted reports whether src is a management source or admitted by an
// allow in force at now.
func (g *Guards) allowlisted(src [16]byte, now int64) bool {
	if g.allows.Covers(src, now) {
		return true
	}
	if len(g.allow) == 0 {
		return false
	}
	a := netip.AddrFrom16(src).Unmap()
	for _, p := range g.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Allow counts one new connection attempt of src at now (unix nanoseconds)
// against the guard (an Index) and reports whether it is admitted: false
// when admitting it would exceed any of the guard's limits. Admitted
// attempts are recorded, refused ones are not (see the package
// documentation); a refusal makes src proven, and bans it when the guard
// has a ban spec. Allowlisted sources are always admitted. An
// out-of-range guard admits everything. Allow allocates only when a
// source's record of attempts grows (at most log2(count)+1 times per slot).
func (g *Guards) Allow(guard int, src [16]byte, now int64) bool {
	if uint(guard) >= uint(len(g.guards)) {
		return true
	}
	gd := g.guards[guard]
	if g.allowlisted(src, now) {
		gd.allowlisted.Add(1)
		return true
	}
	s := &gd.shards[lru.Hash(&src, g.seed)%guardShards]
	s.mu.Lock()
	sg, i, ok := s.find(src)
	if !ok {
		sg, i = probation, s.insert(probation, src)
	}
	e := &s.seg[sg].ents[i]
	refusedBy := gd.refusal(e, now)
	e.last = now
	if refusedBy < 0 {
		if len(e.st) < gd.ring {
			if e.st == nil {
				e.st = make([]int64, 0, min(gd.ring, 4))
			}
			e.st = append(e.st, now)
			e.pos = int32(len(e.st) % gd.ring)
		} else {
			e.st[e.pos] = now
			e.pos = (e.pos + 1) % int32(gd.ring)
		}
		s.allowed++
	} else {
		s.refused++
	}
	s.seg[sg].lru.Touch(i)
	if refusedBy >= 0 && sg == probation {
		s.promote(src, i)
	}
	s.mu.Unlock()
	if refusedBy >= 0 && gd.ban != nil && g.bans != nil {
		g.bans.Ban(src, *gd.ban, gd.name, gd.limits[refusedBy].reason, now)
	}
	return refusedBy < 0
}

// refusal returns the index of the first limit that one more attempt of e
// at now would exceed, or -1 when it would be admitted.
func (gd *guard) refusal(e *gentry, now int64) int {
	for k := range gd.limits {
		lm := &gd.limits[k]
		if len(e.st) < lm.count {
			continue
		}
		// The lm.count-th most recent admitted attempt is still inside
		// the window: one more would make lm.count+1.
		if e.st[(int(e.pos)-lm.count+len(e.st))%len(e.st)] > now-lm.window {
			return k
		}
	}
	return -1
}

// Peek tells what Allow would answer for one more attempt of src at now,
// without counting it: admitted or not, and why (the limit it would
// exceed, or the attempts it has made within each limit's window). It
// changes nothing, so "nfqfw explain" can ask it.
func (g *Guards) Peek(guard int, src [16]byte, now int64) (admitted bool, why string) {
	if uint(guard) >= uint(len(g.guards)) {
		return true, "no such guard"
	}
	gd := g.guards[guard]
	if g.allowlisted(src, now) {
		return true, "source in the management allowlist or allowed (nfqfw allows)"
	}
	s := &gd.shards[lru.Hash(&src, g.seed)%guardShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	sg, i, ok := s.find(src)
	if !ok {
		return true, "no attempts counted"
	}
	e := &s.seg[sg].ents[i]
	if k := gd.refusal(e, now); k >= 0 {
		return false, gd.limits[k].reason
	}
	var parts []string
	for _, lm := range gd.limits {
		n := 0
		for _, t := range e.st {
			if t > now-lm.window {
				n++
			}
		}
		parts = append(parts, fmt.Sprintf("%d of %d in %s", n, lm.count, fmtDuration(time.Duration(lm.window))))
	}
	return true, strings.Join(parts, ", ")
}

// Confirm tells the guards that src completed a handshake (the kernel saw a
// TCP flow of it established): a source spoofing its address cannot, so
// src becomes proven in every guard that tracks it and no longer competes
// with a flood of SYN-only sources for room. It does not allocate.
func (g *Guards) Confirm(src [16]byte) {
	for _, gd := range g.guards {
		s := &gd.shards[lru.Hash(&src, g.seed)%guardShards]
		s.mu.Lock()
		if i, ok := s.seg[probation].lru.Get(src); ok {
			s.promote(src, i)
		}
		s.mu.Unlock()
	}
}

// find returns the segment and slot of addr.
func (s *gshard) find(addr [16]byte) (int, int32, bool) {
	if i, ok := s.seg[proven].lru.Get(addr); ok {
		return proven, i, true
	}
	i, ok := s.seg[probation].lru.Get(addr)
	return probation, i, ok
}

// insert takes a slot of segment sg for addr, forgetting the source with
// the oldest attempt of that segment when it is full.
func (s *gshard) insert(sg int, addr [16]byte) int32 {
	t := &s.seg[sg]
	i, evicted := t.lru.Insert(addr)
	if evicted {
		s.evictions++
	}
	if n := t.lru.Slots(); len(t.ents) < n {
		t.ents = append(t.ents, make([]gentry, n-len(t.ents))...)
	}
	st := t.ents[i].st
	if cap(st) > keepStamps {
		st = nil
	}
	t.ents[i] = gentry{st: st[:0]}
	return i
}

// promote moves the probation source in slot i to the proven sources.
func (s *gshard) promote(addr [16]byte, i int32) {
	e := s.seg[probation].ents[i]
	s.seg[probation].ents[i] = gentry{}
	s.seg[probation].lru.Remove(i)
	j := s.insert(proven, addr)
	s.seg[proven].ents[j] = e
}

// Expire forgets sources whose last attempt is older than their guard's
// longest window (they would be admitted as new ones anyway) and returns how
// many it forgot. Call it from a ticker; it keeps Stats' Tracked honest.
func (g *Guards) Expire(now int64) int {
	n := 0
	for _, gd := range g.guards {
		for si := range gd.shards {
			s := &gd.shards[si]
			s.mu.Lock()
			for sg := range s.seg {
				t := &s.seg[sg]
				for i := t.lru.Oldest(); i != lru.None && t.ents[i].last <= now-gd.maxWindow; i = t.lru.Oldest() {
					t.lru.Remove(i)
					n++
				}
			}
			s.mu.Unlock()
		}
	}
	return n
}

// GuardStats are the counters of one guard.
type GuardStats struct {
	Name        string
	Allowed     uint64 // attempts admitted (allowlisted ones not included)
	Refused     uint64 // attempts refused
	Allowlisted uint64 // attempts of allowlisted sources, always admitted
	Tracked     int    // sources tracked now
	Proven      int    // of which proven: a completed handshake, or refused
	Evictions   uint64 // sources forgotten because the guard was full
}

// Stats returns the counters of every guard, in declaration order.
func (g *Guards) Stats() []GuardStats {
	out := make([]GuardStats, len(g.guards))
	for k, gd := range g.guards {
		st := GuardStats{Name: gd.name, Allowlisted: gd.allowlisted.Load()}
		for si := range gd.shards {
			s := &gd.shards[si]
			s.mu.Lock()
			st.Allowed += s.allowed
			st.Refused += s.refused
			st.Evictions += s.evictions
			st.Tracked += s.seg[probation].lru.Len() + s.seg[proven].lru.Len()
			st.Proven += s.seg[proven].lru.Len()
			s.mu.Unlock()
		}
		out[k] = st
	}
	return out
}

// fmtDuration prints d the way an operator writes it: 10s, 30m, 1h30m.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

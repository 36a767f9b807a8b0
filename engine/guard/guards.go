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

// DefaultMaxSources is how many sources one guard tracks by default; when
// full, the source with the oldest attempt is forgotten and counted.
const DefaultMaxSources = 1 << 17

const guardShards = 64

// Guards is the set of rate guards of one configuration. It is built once by
// New; its methods are safe for concurrent use.
type Guards struct {
	names  map[string]int
	guards []*guard
	allow  []netip.Prefix
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
	ring        int   // stamps kept per source: the largest Count
	maxWindow   int64 // a source idle this long is as good as new
	ban         *rules.BanSpec
	allowlisted atomic.Uint64
	shards      [guardShards]gshard
}

// gshard is one lock's worth of a guard's sources: a table from address to
// slot, the slots chained by last attempt (oldest first), and each slot's
// ring of admitted attempt times in stamps[slot*ring:].
type gshard struct {
	mu        sync.Mutex
	lru       lru.Table
	ents      []gentry
	stamps    []int64
	allowed   uint64
	refused   uint64
	evictions uint64
	_         [64]byte
}

type gentry struct {
	n, pos int32 // stamps held, next stamp slot
	last   int64 // last attempt, admitted or not
}

// New builds the guards of a configuration, each tracking at most
// DefaultMaxSources sources. Sources inside allowlist are never limited or
// banned. bans receives the bans of guards with a ban spec; it may be nil.
func New(guards []rules.Guard, allowlist []netip.Prefix, bans *Bans) *Guards {
	return NewWithLimit(guards, allowlist, bans, DefaultMaxSources)
}

// NewWithLimit is New with the number of sources each guard tracks.
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
			c := maxSources / guardShards
			if i < maxSources%guardShards {
				c++
			}
			s := &gd.shards[i]
			s.lru.Init(c, c)
			s.ents = make([]gentry, c)
			s.stamps = make([]int64, c*gd.ring)
		}
		g.names[rg.Name] = len(g.guards)
		g.guards = append(g.guards, gd)
	}
	return g
}

// Index returns the index of the guard called name, for Allow, or -1.
// Resolve it once when compiling rules.
func (g *Guards) Index(name string) int {
	if i, ok := g.names[name]; ok {
		return i
	}
	return -1
}

// allowlisted reports whether src is a management source.
func (g *Guards) allowlisted(src [16]byte) bool {
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
// documentation); a refusal bans src when the guard has a ban spec.
// Allowlisted sources are always admitted. An out-of-range guard admits
// everything. Allow does not allocate.
func (g *Guards) Allow(guard int, src [16]byte, now int64) bool {
	if uint(guard) >= uint(len(g.guards)) {
		return true
	}
	gd := g.guards[guard]
	if g.allowlisted(src) {
		gd.allowlisted.Add(1)
		return true
	}
	s := &gd.shards[lru.Hash(&src, g.seed)%guardShards]
	s.mu.Lock()
	i, ok := s.lru.Get(src)
	if !ok {
		i = s.insert(src)
	}
	e := &s.ents[i]
	st := s.stamps[int(i)*gd.ring : int(i+1)*gd.ring]
	refusedBy := -1
	for k := range gd.limits {
		lm := &gd.limits[k]
		if int(e.n) < lm.count {
			continue
		}
		// The lm.count-th most recent admitted attempt is still inside
		// the window: one more would make lm.count+1.
		if st[(int(e.pos)-lm.count+gd.ring)%gd.ring] > now-lm.window {
			refusedBy = k
			break
		}
	}
	e.last = now
	if refusedBy < 0 {
		st[e.pos] = now
		e.pos = (e.pos + 1) % int32(gd.ring)
		e.n = min(e.n+1, int32(gd.ring))
		s.allowed++
	} else {
		s.refused++
	}
	s.lru.Touch(i)
	s.mu.Unlock()
	if refusedBy >= 0 && gd.ban != nil && g.bans != nil {
		g.bans.Ban(src, *gd.ban, gd.name, gd.limits[refusedBy].reason, now)
	}
	return refusedBy < 0
}

// insert takes a slot for addr, forgetting the source with the oldest
// attempt when the shard is full.
func (s *gshard) insert(addr [16]byte) int32 {
	i, evicted := s.lru.Insert(addr)
	if evicted {
		s.evictions++
	}
	s.ents[i] = gentry{}
	return i
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
			for i := s.lru.Oldest(); i != lru.None && s.ents[i].last <= now-gd.maxWindow; i = s.lru.Oldest() {
				s.lru.Remove(i)
				n++
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
			st.Tracked += s.lru.Len()
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

package recent

import (
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/nfqfw/nfqfw/engine/internal/lru"
	"github.com/nfqfw/nfqfw/rules"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// MaxStamps is how many hit timestamps an entry keeps, as xt_recent's
// ip_pkt_list_tot (20); the config refuses a HitCount above it.
const MaxStamps = rules.MaxRecentHitCount

// DefaultSize is the size of a list declared without one (xt_recent's
// ip_list_tot).
const DefaultSize = 200

// Sharding: a list is split into at most maxShards shards, none smaller than
// minShard entries, so small lists keep exact least-recent eviction.
const (
	maxShards = 64
	minShard  = 256
)

// Lists is the set of recent lists of one configuration. It is built once by
// New; its methods are safe for concurrent use.
type Lists struct {
	names map[string]int
	lists []*list
	seed  uint64
}

type list struct {
	name   string
	size   int
	mask   uint64
	shards []shard
}

// shard is one lock's worth of a list: a table from address to slot, the
// slots chained in least-recently-hit order, and each slot's entry in ents.
type shard struct {
	mu        sync.Mutex
	lru       lru.Table
	ents      []entry
	hits      uint64
	evictions uint64
	changes   uint64   // entries inserted, hit or removed: Changes
	_         [64]byte // keep neighbouring shards' locks off this cache line
}

type entry struct {
	ttl     uint8
	index   uint8 // next stamp slot
	nstamps uint8
	stamps  [MaxStamps]int64
}

// New builds the lists declared by the configuration. A list with Size <= 0
// gets DefaultSize.
func New(lists []rules.RecentList) *Lists {
	l := &Lists{names: make(map[string]int, len(lists)), seed: rand.Uint64()}
	for _, rl := range lists {
		size := rl.Size
		if size <= 0 {
			size = DefaultSize
		}
		n := 1
		for n < maxShards && n*2*minShard <= size {
			n *= 2
		}
		li := &list{name: rl.Name, size: size, mask: uint64(n - 1), shards: make([]shard, n)}
		for i := range li.shards {
			c := size / n
			if i < size%n {
				c++
			}
			s := &li.shards[i]
			s.lru.Init(c, c)
			s.ents = make([]entry, c)
		}
		l.names[rl.Name] = len(l.lists)
		l.lists = append(l.lists, li)
	}
	return l
}

// Index returns the index of the list called name, for Match, or -1 when
// no such list is declared. Resolve it once when compiling rules.
func (l *Lists) Index(name string) int {
	if i, ok := l.names[name]; ok {
		return i
	}
	return -1
}

func (li *list) shard(addr *[16]byte, seed uint64) *shard {
	return &li.shards[lru.Hash(addr, seed)&li.mask]
}

// Match applies the recent match m on list (an Index) to addr, seen with
// the given TTL at now (unix nanoseconds), and reports whether it matches.
// addr is the packet's source, or its destination when m.ByDst (rdest): the
// caller picks it.
// See the package documentation for the semantics of each operation. An
// out-of-range list never matches. Match does not allocate.
func (l *Lists) Match(list int, m *rules.RecentMatch, addr [16]byte, ttl uint8, now int64) bool {
	if uint(list) >= uint(len(l.lists)) {
		return false
	}
	s := l.lists[list].shard(&addr, l.seed)
	s.mu.Lock()
	matched := s.match(m, &addr, ttl, now)
	if matched {
		s.hits++
	}
	s.mu.Unlock()
	return matched
}

// Peek tells what Match would answer, without changing the list: a set
// always matches, a remove matches when addr is listed, a check or update
// when the entry satisfies the match's conditions. hits is the hits of
// addr the list holds (0: not listed). For "nfqfw explain".
func (l *Lists) Peek(list int, m *rules.RecentMatch, addr [16]byte, ttl uint8, now int64) (matched bool, hits int) {
	if uint(list) >= uint(len(l.lists)) {
		return false, 0
	}
	s := l.lists[list].shard(&addr, l.seed)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.lru.Get(addr)
	if ok {
		hits = int(s.ents[i].nstamps)
	}
	switch m.Op {
	case rules.RecentSet:
		return true, hits
	case rules.RecentRemove:
		return ok, hits
	case rules.RecentCheck, rules.RecentUpdate:
		if !ok {
			return false, 0
		}
		e := &s.ents[i]
		if m.SameTTL && e.ttl != ttl {
			return false, hits
		}
		return e.within(m, now), hits
	}
	return false, hits
}

func (s *shard) match(m *rules.RecentMatch, addr *[16]byte, ttl uint8, now int64) bool {
	i, ok := s.lru.Get(*addr)
	switch m.Op {
	case rules.RecentSet:
		if !ok {
			s.insert(addr, ttl, now)
			return true
		}
		s.hit(i, ttl, now)
		return true
	case rules.RecentRemove:
		if !ok {
			return false
		}
		s.lru.Remove(i)
		s.changes++
		return true
	case rules.RecentCheck, rules.RecentUpdate:
		if !ok {
			return false
		}
		e := &s.ents[i]
		if m.SameTTL && e.ttl != ttl {
			return false
		}
		if !e.within(m, now) {
			return false
		}
		if m.Op == rules.RecentUpdate {
			s.hit(i, ttl, now)
		}
		return true
	}
	return false
}

// within reports whether e has HitCount hits within Seconds of now (either
// condition absent: satisfied), as xt_recent counts them.
func (e *entry) within(m *rules.RecentMatch, now int64) bool {
	if m.Seconds <= 0 && m.HitCount <= 0 {
		return true
	}
	cutoff := now - int64(m.Seconds)
	hits := 0
	for _, st := range e.stamps[:e.nstamps] {
		if m.Seconds > 0 && st < cutoff {
			continue
		}
		hits++
		if hits >= m.HitCount {
			return true
		}
	}
	return false
}

// hit records a hit on slot i and makes it the most recent.
func (s *shard) hit(i int32, ttl uint8, now int64) {
	e := &s.ents[i]
	e.stamps[e.index] = now
	e.index = (e.index + 1) % MaxStamps
	if e.nstamps < MaxStamps {
		e.nstamps++
	}
	e.ttl = ttl
	s.lru.Touch(i)
	s.changes++
}

// insert adds addr with one hit at now, evicting the least recent entry when
// the shard is full.
func (s *shard) insert(addr *[16]byte, ttl uint8, now int64) {
	if len(s.ents) == 0 {
		return
	}
	i, evicted := s.lru.Insert(*addr)
	if evicted {
		s.evictions++
	}
	s.ents[i] = entry{ttl: ttl, index: 1, nstamps: 1}
	s.ents[i].stamps[0] = now
	s.changes++
}

// lastSeen is the most recent hit of e.
func (e *entry) lastSeen() int64 {
	return e.stamps[(int(e.index)+MaxStamps-1)%MaxStamps]
}

// seen returns e's hit times, oldest first.
func (e *entry) seen() []int64 {
	out := make([]int64, 0, e.nstamps)
	start := 0
	if e.nstamps == MaxStamps {
		start = int(e.index)
	}
	for k := 0; k < int(e.nstamps); k++ {
		out = append(out, e.stamps[(start+k)%MaxStamps])
	}
	return out
}

// Entry is one address on a list, as Walk and the "recent.list" control
// command report it.
type Entry struct {
	List     string     `json:"list"`
	Addr     netip.Addr `json:"addr"`
	LastSeen time.Time  `json:"last_seen"`
	Hits     int        `json:"hits"` // hit timestamps held, at most MaxStamps
	TTL      uint8      `json:"ttl"`  // TTL (hop limit) of the last hit
}

// Walk calls fn for every entry of every list, list by list, least recent
// first within a shard. fn runs without any lock held and may call into l.
func (l *Lists) Walk(fn func(Entry)) {
	var buf []Entry
	for _, li := range l.lists {
		for si := range li.shards {
			s := &li.shards[si]
			buf = buf[:0]
			s.mu.Lock()
			for i := s.lru.Oldest(); i != lru.None; i = s.lru.Newer(i) {
				e := &s.ents[i]
				buf = append(buf, Entry{
					List:     li.name,
					Addr:     netip.AddrFrom16(s.lru.Key(i)).Unmap(),
					LastSeen: clock.Wall(e.lastSeen()),
					Hits:     int(e.nstamps),
					TTL:      e.ttl,
				})
			}
			s.mu.Unlock()
			for _, e := range buf {
				fn(e)
			}
		}
	}
}

// Stats are the counters of one list.
type Stats struct {
	Name      string
	Entries   int    // addresses on the list now
	Capacity  int    // the list's size
	Hits      uint64 // matches (Match returned true)
	Evictions uint64 // entries evicted because the list was full
}

// Stats returns the counters of every list, in declaration order.
func (l *Lists) Stats() []Stats {
	out := make([]Stats, len(l.lists))
	for k, li := range l.lists {
		st := Stats{Name: li.name, Capacity: li.size}
		for si := range li.shards {
			s := &li.shards[si]
			s.mu.Lock()
			st.Entries += s.lru.Len()
			st.Hits += s.hits
			st.Evictions += s.evictions
			s.mu.Unlock()
		}
		out[k] = st
	}
	return out
}

// Changes returns a count that grows whenever an entry of any list is
// added, hit or removed (not when one only ages): the state saver compares
// two readings to know whether there is anything new to save. It takes
// every shard's lock in turn; the packet path pays one increment per
// change, under the lock it already holds.
func (l *Lists) Changes() uint64 {
	var n uint64
	for _, li := range l.lists {
		for si := range li.shards {
			s := &li.shards[si]
			s.mu.Lock()
			n += s.changes
			s.mu.Unlock()
		}
	}
	return n
}

// EntrySnapshot is one entry as persisted: absolute times, so a restore
// after downtime judges windows against the real clock.
type EntrySnapshot struct {
	List string      `json:"list"`
	Addr netip.Addr  `json:"addr"`
	TTL  uint8       `json:"ttl"`
	Seen []time.Time `json:"seen"` // hit times, oldest first
}

// Snapshot returns every entry of every list for persistence.
func (l *Lists) Snapshot() []EntrySnapshot {
	var out []EntrySnapshot
	for _, li := range l.lists {
		for si := range li.shards {
			s := &li.shards[si]
			s.mu.Lock()
			for i := s.lru.Oldest(); i != lru.None; i = s.lru.Newer(i) {
				e := &s.ents[i]
				seen := e.seen()
				snap := EntrySnapshot{List: li.name, Addr: netip.AddrFrom16(s.lru.Key(i)).Unmap(), TTL: e.ttl, Seen: make([]time.Time, len(seen))}
				for k, ns := range seen {
					snap.Seen[k] = clock.Wall(ns).UTC()
				}
				out = append(out, snap)
			}
			s.mu.Unlock()
		}
	}
	return out
}

// Restore loads entries saved by Snapshot (possibly by an earlier
// configuration) and returns how many it restored. Entries of lists this
// configuration does not declare, invalid addresses and entries without hits
// are skipped; hit times after now (the clock went back) are clamped to now;
// only the last MaxStamps hits are kept. Entries go in oldest first, so
// eviction order survives, and a smaller list keeps the most recent ones.
func (l *Lists) Restore(snaps []EntrySnapshot, now int64) int {
	type item struct {
		list int
		snap *EntrySnapshot
		last int64
	}
	var items []item
	for k := range snaps {
		sn := &snaps[k]
		li := l.Index(sn.List)
		if li < 0 || !sn.Addr.IsValid() || len(sn.Seen) == 0 {
			continue
		}
		items = append(items, item{li, sn, min(clock.Mono(sn.Seen[len(sn.Seen)-1]), now)})
	}
	sort.SliceStable(items, func(a, b int) bool { return items[a].last < items[b].last })
	for _, it := range items {
		addr := it.snap.Addr.As16()
		seen := it.snap.Seen
		if len(seen) > MaxStamps {
			seen = seen[len(seen)-MaxStamps:]
		}
		s := l.lists[it.list].shard(&addr, l.seed)
		s.mu.Lock()
		if i, ok := s.lru.Get(addr); ok {
			s.lru.Remove(i)
		}
		s.insert(&addr, it.snap.TTL, min(clock.Mono(seen[0]), now))
		if i, ok := s.lru.Get(addr); ok {
			for _, t := range seen[1:] {
				s.hit(i, it.snap.TTL, min(clock.Mono(t), now))
			}
		}
		s.mu.Unlock()
	}
	return len(items)
}

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
	sink  chan<- Set // WithShare's; nil: nothing is shared

	omu     sync.Mutex
	origins []string // origin index-1 -> gateway name (0: this gateway)
}

type list struct {
	name   string
	size   int
	shared bool // sets are handed to the sink
	mask   uint64
	shards []shard
}

// Set is an address set in a list marked shared, as the sink given to
// WithShare receives it.
type Set struct {
	List string
	Addr netip.Addr
	At   int64 // when, on the engine's clock (unix nanoseconds)
}

// ShareEvery is the least time between two Sets of the same address on
// the same list: a set within ShareEvery of the last one handed over is
// coalesced into it (counted), so a scanner probing thousands of ports
// costs one Set a second, not one per probe.
const ShareEvery = int64(time.Second)

// maxOrigins bounds the gateway names an entry can record; an entry from a
// gateway beyond them shows OtherOrigin.
const maxOrigins = 255

// OtherOrigin is shown for entries of a gateway past the first maxOrigins.
const OtherOrigin = "fleet"

// Option configures New.
type Option func(*Lists)

// WithShare makes every set on a list marked shared hand a Set to sink
// (with a non-blocking send from the packet path: when sink is full the
// set is counted as dropped), at most one per address and list per
// ShareEvery.
func WithShare(sink chan<- Set) Option { return func(l *Lists) { l.sink = sink } }

// shard is one lock's worth of a list: a table from address to slot, the
// slots chained in least-recently-hit order, and each slot's entry in ents.
type shard struct {
	mu        sync.Mutex
	lru       lru.Table
	ents      []entry
	hits      uint64
	evictions uint64
	shared    uint64   // sets handed to the sink
	coalesced uint64   // sets within ShareEvery of the last one handed over
	dropped   uint64   // sets not handed over: the sink was full
	changes   uint64   // entries inserted, hit or removed: Changes
	_         [64]byte // keep neighbouring shards' locks off this cache line
}

type entry struct {
	ttl     uint8
	index   uint8 // next stamp slot
	nstamps uint8
	origin  uint8 // gateway of the last set: 0 this one, else Lists.origins[origin-1]
	stamps  [MaxStamps]int64
	shared  int64 // when the last Set of it was handed to the sink (0: never)
}

// New builds the lists declared by the configuration. A list with Size <= 0
// gets DefaultSize.
func New(lists []rules.RecentList, opts ...Option) *Lists {
	l := &Lists{names: make(map[string]int, len(lists)), seed: rand.Uint64()}
	for _, o := range opts {
		o(l)
	}
	for _, rl := range lists {
		size := rl.Size
		if size <= 0 {
			size = DefaultSize
		}
		n := 1
		for n < maxShards && n*2*minShard <= size {
			n *= 2
		}
		li := &list{name: rl.Name, size: size, shared: rl.Shared && l.sink != nil, mask: uint64(n - 1), shards: make([]shard, n)}
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
	li := l.lists[list]
	s := li.shard(&addr, l.seed)
	s.mu.Lock()
	matched := s.match(m, &addr, ttl, now)
	if matched {
		s.hits++
	}
	if m.Op == rules.RecentSet && li.shared {
		s.share(l.sink, li.name, &addr, now)
	}
	s.mu.Unlock()
	return matched
}

// share hands the set of addr at now to sink, unless the entry was handed
// over less than ShareEvery ago (coalesced) or sink is full (dropped). The
// entry becomes this gateway's. Called with s.mu held; never blocks nor
// allocates.
func (s *shard) share(sink chan<- Set, name string, addr *[16]byte, now int64) {
	i, ok := s.lru.Get(*addr)
	if !ok {
		return // a list of size 0
	}
	e := &s.ents[i]
	e.origin = 0
	if e.shared != 0 && now-e.shared < ShareEvery && now >= e.shared {
		s.coalesced++
		return
	}
	select {
	case sink <- Set{List: name, Addr: netip.AddrFrom16(*addr).Unmap(), At: now}:
		e.shared = now
		s.shared++
	default:
		s.dropped++
	}
}

// Apply records a set of addr on the list called name made on the fleet
// gateway origin at at (engine clock, unix nanoseconds; clamped to now):
// the address is added to the list, or gains a hit, as if the packet had
// been seen here at that time, so that checks and updates with seconds and
// hitcount count it. An entry from a remote set has TTL 0 (a same_ttl
// check does not match it). The same set applied twice adds one hit. It
// is never handed to the sink again. Apply reports false when no list of
// that name is declared or addr is invalid.
func (l *Lists) Apply(name string, addr netip.Addr, at, now int64, origin string) bool {
	li := l.Index(name)
	if li < 0 || !addr.IsValid() {
		return false
	}
	at = min(at, now)
	o := l.origin(origin)
	a := addr.As16()
	s := l.lists[li].shard(&a, l.seed)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.lru.Get(a)
	if !ok {
		s.insert(&a, 0, at)
		if i, ok = s.lru.Get(a); !ok {
			return true // a list of size 0
		}
	} else {
		e := &s.ents[i]
		for _, st := range e.stamps[:e.nstamps] {
			if st == at {
				return true
			}
		}
		ttl := e.ttl
		s.hit(i, ttl, at)
	}
	s.ents[i].origin = o
	return true
}

// origin returns the index entries record for the gateway called name.
func (l *Lists) origin(name string) uint8 {
	if name == "" || name == "local" {
		return 0
	}
	l.omu.Lock()
	defer l.omu.Unlock()
	for k, n := range l.origins {
		if n == name {
			return uint8(k + 1)
		}
	}
	if len(l.origins) >= maxOrigins-1 {
		return maxOrigins
	}
	l.origins = append(l.origins, name)
	return uint8(len(l.origins))
}

// originName returns the gateway name of origin index o ("" for this one).
func (l *Lists) originName(o uint8) string {
	if o == 0 {
		return ""
	}
	l.omu.Lock()
	defer l.omu.Unlock()
	if int(o) <= len(l.origins) && int(o) < maxOrigins {
		return l.origins[o-1]
	}
	return OtherOrigin
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
	// Origin is the fleet gateway whose set the entry last took (list
	// marked shared); empty when it is this gateway's.
	Origin string `json:"origin,omitempty"`
}

// Walk calls fn for every entry of every list, list by list, least recent
// first within a shard. fn runs without any lock held and may call into l.
func (l *Lists) Walk(fn func(Entry)) {
	var buf []Entry
	for _, li := range l.lists {
		for si := range li.shards {
			s := &li.shards[si]
			buf = buf[:0]
			var origins []uint8
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
				origins = append(origins, e.origin)
			}
			s.mu.Unlock()
			for k, e := range buf {
				e.Origin = l.originName(origins[k])
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
	// Sets of a list marked shared: handed to the fleet, coalesced into
	// the last one handed over (within ShareEvery), dropped (the fleet's
	// queue was full).
	Shared, Coalesced, ShareDropped uint64
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
			st.Shared += s.shared
			st.Coalesced += s.coalesced
			st.ShareDropped += s.dropped
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
	// Origin is the fleet gateway whose set the entry last took; empty:
	// this one.
	Origin string `json:"origin,omitempty"`
}

// Snapshot returns every entry of every list for persistence.
func (l *Lists) Snapshot() []EntrySnapshot {
	var out []EntrySnapshot
	for _, li := range l.lists {
		for si := range li.shards {
			s := &li.shards[si]
			s.mu.Lock()
			first := len(out)
			var origins []uint8
			for i := s.lru.Oldest(); i != lru.None; i = s.lru.Newer(i) {
				e := &s.ents[i]
				seen := e.seen()
				snap := EntrySnapshot{List: li.name, Addr: netip.AddrFrom16(s.lru.Key(i)).Unmap(), TTL: e.ttl, Seen: make([]time.Time, len(seen))}
				for k, ns := range seen {
					snap.Seen[k] = clock.Wall(ns).UTC()
				}
				out = append(out, snap)
				origins = append(origins, e.origin)
			}
			s.mu.Unlock()
			for k, o := range origins {
				out[first+k].Origin = l.originName(o)
			}
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
		o := l.origin(it.snap.Origin)
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
			s.ents[i].origin = o
		}
		s.mu.Unlock()
	}
	return len(items)
}

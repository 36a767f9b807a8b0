package engine

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/rules"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// DefaultMaxFlows is the table size NewTable uses when given none, the
// config's default.
const DefaultMaxFlows = 262144

// evictScan bounds how many entries of a shard an insertion into a full
// table looks at for one to evict (conntrack's early_drop looks at a
// bounded range of buckets as well).
const evictScan = 64

// Table is the engine's flow state table: the flows it admitted, each with
// a conntrack-like protocol state and a timeout.
//
// The kernel keeps established traffic on its fast path, so the table mostly
// sees the first packet of each flow, retransmitted SYNs, FTP control
// traffic and ICMP errors; conntrack events (Update, Delete) tell it how
// admitted flows went on. It is sharded by key hash, each shard behind its
// own mutex: queue readers call Classify and Admit concurrently without a
// global lock. It holds at most Max flows; when full, an insertion evicts an
// unreplied (else unassured) flow of its shard, or is refused.
//
// All methods are safe for concurrent use. now is always unix nanoseconds.
type Table struct {
	shards []shard
	mask   uint64
	seed   uint64
	max    int64
	to     atomic.Pointer[timeouts] // SetTimeouts replaces it; a flow's next packet takes the new values

	n       atomic.Int64 // tracked flows; may exceed max by the number of concurrent inserters for an instant
	evicted atomic.Uint64
	refused atomic.Uint64
	expired atomic.Uint64

	clock func() int64 // Walk's now; tests replace it
}

// shard is one lock's worth of the table.
type shard struct {
	mu     sync.Mutex
	m      map[FlowKey]entry
	rel    map[FlowKey]relation // parents of RELATED flows; nil until the first
	counts [numSlots]int32      // flows per state slot, under mu
	_      [64]byte             // keep neighbouring shards' locks off one cache line
}

// entry is the state of one flow. It is pointer-free and small: the map
// stores it inline.
type entry struct {
	expires int64    // unix nanoseconds at which the flow is gone
	rule    int32    // index of the rule that admitted the flow, -1 for none
	state   TCPState // TCP flows only
	flags   entryFlags
}

type entryFlags uint8

const (
	flagReplied entryFlags = 1 << iota // a packet in reply direction was seen
	flagAssured                        // the flow is assured (conntrack ASSURED): never evicted
	flagRelated                        // admitted as RELATED to a parent flow (see shard.rel)
	flagOrigBA                         // the original direction is DirBA
)

// relation names the parent of a RELATED flow.
type relation struct {
	parent FlowKey
	orig   Dir // the parent's original direction, for showing its tuple
}

// origDir returns the Dir of the flow's original direction.
func (e *entry) origDir() Dir {
	if e.flags&flagOrigBA != 0 {
		return DirBA
	}
	return DirAB
}

// dirOf returns whether a packet with key direction d is original or reply.
func (e *entry) dirOf(d Dir) flowDir {
	if d == e.origDir() {
		return dirOriginal
	}
	return dirReply
}

// State slots counted per shard.
const (
	slotUDP = int(NumTCPStates) + iota
	slotICMP
	slotOther
	slotUnreplied
	slotAssured
	numSlots
)

func slotOf(proto uint8, e *entry) int {
	switch proto {
	case ctTCP:
		return int(e.state)
	case ctUDP, ctUDPLite:
		return slotUDP
	case ctICMP, ctICMPv6:
		return slotICMP
	}
	return slotOther
}

// account adds d to the counters e belongs to. Caller holds s.mu.
func (s *shard) account(proto uint8, e *entry, d int32) {
	s.counts[slotOf(proto, e)] += d
	if e.flags&flagReplied == 0 {
		s.counts[slotUnreplied] += d
	}
	if e.flags&flagAssured != 0 {
		s.counts[slotAssured] += d
	}
}

// remove deletes k (whose entry is e). Caller holds s.mu and adjusts the
// table's count and statistics.
func (s *shard) remove(k FlowKey, e *entry) {
	delete(s.m, k)
	s.account(k.proto, e, -1)
	if e.flags&flagRelated != 0 {
		delete(s.rel, k)
	}
}

// SetTimeouts puts new flow timeouts in force (a zero timeout takes
// conntrack's default). A flow keeps the expiry it has until its next
// packet or state change, which sets one from the new values. Safe for
// concurrent use.
func (t *Table) SetTimeouts(to rules.Timeouts) {
	c := compileTimeouts(to)
	t.to.Store(&c)
}

// NewTable returns a table for at most max flows (DefaultMaxFlows if max <=
// 0) with the given timeouts; a zero timeout takes conntrack's default. The
// maps start empty and grow with the flows tracked (a table sized for max
// up front held about 56 MiB at the default size before its first flow);
// they never shrink, so once the table has grown to its working set,
// insertions reuse the room expired flows left and allocate nothing. At
// 1,000,000 flows a grown table costs what a presized one does, about 134
// bytes per flow.
func NewTable(max int, to rules.Timeouts) *Table {
	if max <= 0 {
		max = DefaultMaxFlows
	}
	n := 1
	for n < 64 && n*256 < max {
		n <<= 1
	}
	t := &Table{
		shards: make([]shard, n),
		mask:   uint64(n - 1),
		seed:   rand.Uint64(),
		max:    int64(max),
		clock:  clock.Now,
	}
	t.SetTimeouts(to)
	for i := range t.shards {
		t.shards[i].m = make(map[FlowKey]entry)
	}
	return t
}

func (t *Table) shardOf(k *FlowKey) *shard {
	return &t.shards[k.hash(t.seed)&t.mask]
}

// Max returns the most flows the table holds.
func (t *Table) Max() int { return int(t.max) }

// Len returns the number of tracked flows (expired flows count until they
// are swept).
func (t *Table) Len() int { return int(t.n.Load()) }

// Admit records the flow of p, a packet the policy accepted as NEW, and the
// index of the rule that accepted it (-1 for a chain policy). The flow
// starts in the state its first packet moves it to (TCP SYN: SYN_SENT; a
// bare ACK is picked up as ESTABLISHED; a segment that cannot open a flow
// leaves it in CLOSE). It returns false, and counts a refusal, when the
// table is full and nothing can be evicted. A flow already tracked stays as
// it is. It does not allocate.
func (t *Table) Admit(p *Parsed, rule int, now int64) bool {
	k, d := KeyOf(p)
	return t.insert(k, t.newEntry(p, d, rule, 0, now), nil, now)
}

// AdmitRelated records the flow of p as RELATED to the tracked flow parent,
// for connections an application helper expected (FTP data). rule is the
// rule that allowed the parent or the expectation, -1 for none. It returns
// false when the table is full and nothing can be evicted.
func (t *Table) AdmitRelated(p *Parsed, parent FlowKey, rule int, now int64) bool {
	rel := relation{parent: parent}
	ps := t.shardOf(&parent)
	ps.mu.Lock()
	if pe, ok := ps.m[parent]; ok {
		rel.orig = pe.origDir()
	}
	ps.mu.Unlock()
	k, d := KeyOf(p)
	return t.insert(k, t.newEntry(p, d, rule, flagRelated, now), &rel, now)
}

// newEntry builds the entry of a flow whose first packet is p.
func (t *Table) newEntry(p *Parsed, d Dir, rule int, flags entryFlags, now int64) entry {
	e := entry{rule: int32(rule), flags: flags}
	if d == DirBA {
		e.flags |= flagOrigBA
	}
	if p.Proto == ctTCP {
		e.state = tcpNext(dirOriginal, TCPNone, p.TCPFlags)
		if e.state >= NumTCPStates {
			e.state = TCPClose
		}
	}
	e.expires = now + t.to.Load().of(p.Proto, &e)
	return e
}

// insert adds k unless it is tracked already, evicting when full.
func (t *Table) insert(k FlowKey, e entry, rel *relation, now int64) bool {
	s := t.shardOf(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[k]; ok {
		if old.expires > now {
			return true
		}
		s.remove(k, &old)
		t.n.Add(-1)
		t.expired.Add(1)
	}
	if t.n.Add(1) > t.max && !t.evictLocked(s, now) {
		t.n.Add(-1)
		t.refused.Add(1)
		return false
	}
	s.m[k] = e
	s.account(k.proto, &e, 1)
	if rel != nil {
		if s.rel == nil {
			s.rel = make(map[FlowKey]relation)
		}
		s.rel[k] = *rel
	}
	return true
}

// evictLocked makes room in s, like conntrack's early_drop: among a bounded
// number of entries it drops the first expired or unreplied one, else the
// first that is not assured. Assured flows are never evicted. Caller holds
// s.mu.
func (t *Table) evictLocked(s *shard, now int64) bool {
	var (
		cand    FlowKey
		candE   entry
		found   bool
		scanned int
	)
	for k, e := range s.m {
		switch {
		case e.expires <= now:
			s.remove(k, &e)
			t.n.Add(-1)
			t.expired.Add(1)
			return true
		case e.flags&flagReplied == 0:
			s.remove(k, &e)
			t.n.Add(-1)
			t.evicted.Add(1)
			return true
		case !found && e.flags&flagAssured == 0:
			cand, candE, found = k, e, true
		}
		if scanned++; scanned >= evictScan {
			break
		}
	}
	if !found {
		return false
	}
	s.remove(cand, &candE)
	t.n.Add(-1)
	t.evicted.Add(1)
	return true
}

// FlowUpdate is what a conntrack event reports about a flow.
type FlowUpdate struct {
	TCPState TCPState      // the flow's TCP state; TCPNone leaves it unchanged
	Replied  bool          // the flow has seen a reply (conntrack SEEN_REPLY)
	Assured  bool          // the flow is assured (conntrack ASSURED)
	Timeout  time.Duration // time left as conntrack reports it; 0 takes the state's timeout
}

// Update applies a conntrack event to the tracked flow k and reports
// whether k is tracked. Replied and Assured only ever set the flags.
func (t *Table) Update(k FlowKey, u FlowUpdate, now int64) bool {
	s := t.shardOf(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return false
	}
	old := e
	if u.TCPState != TCPNone && u.TCPState < NumTCPStates && k.proto == ctTCP {
		e.state = u.TCPState
	}
	if u.Replied {
		e.flags |= flagReplied
	}
	if u.Assured {
		e.flags |= flagAssured
	}
	if u.Timeout > 0 {
		e.expires = now + int64(u.Timeout)
	} else {
		e.expires = now + t.to.Load().of(k.proto, &e)
	}
	s.account(k.proto, &old, -1)
	s.account(k.proto, &e, 1)
	s.m[k] = e
	return true
}

// Delete forgets flow k (conntrack reported it destroyed) and reports
// whether it was tracked.
func (t *Table) Delete(k FlowKey) bool {
	s := t.shardOf(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return false
	}
	s.remove(k, &e)
	t.n.Add(-1)
	return true
}

// Expire removes the flows whose timeout passed at now, one shard at a time,
// and returns how many it removed. Call it from a ticker, not per packet.
func (t *Table) Expire(now int64) int {
	total := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n := 0
		for k, e := range s.m {
			if e.expires <= now {
				s.remove(k, &e)
				n++
			}
		}
		s.mu.Unlock()
		if n > 0 {
			t.n.Add(int64(-n))
			total += n
		}
	}
	t.expired.Add(uint64(total))
	return total
}

// TableStats are the table's event counters since it was made.
type TableStats struct {
	Evicted uint64 // unreplied or unassured flows dropped to make room
	Refused uint64 // admissions refused: table full and nothing evictable
	Expired uint64 // flows removed after their timeout
}

// Stats returns the table's event counters.
func (t *Table) Stats() TableStats {
	return TableStats{
		Evicted: t.evicted.Load(),
		Refused: t.refused.Load(),
		Expired: t.expired.Load(),
	}
}

// FlowCounts are the numbers of tracked flows by protocol and state.
type FlowCounts struct {
	TCP       [NumTCPStates]int // TCP flows by state
	UDP       int               // UDP and UDP-Lite flows
	ICMP      int               // ICMP and ICMPv6 flows
	Other     int               // flows of other protocols
	Unreplied int               // flows of any protocol that saw no reply
	Assured   int               // flows of any protocol that are assured
}

// Counts returns the numbers of tracked flows by state. It locks each shard
// briefly and does not walk the flows.
func (t *Table) Counts() FlowCounts {
	var sum [numSlots]int
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for j, c := range s.counts {
			sum[j] += int(c)
		}
		s.mu.Unlock()
	}
	var c FlowCounts
	copy(c.TCP[:], sum[:NumTCPStates])
	c.UDP, c.ICMP, c.Other = sum[slotUDP], sum[slotICMP], sum[slotOther]
	c.Unreplied, c.Assured = sum[slotUnreplied], sum[slotAssured]
	return c
}

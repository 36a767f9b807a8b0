package guard

import (
	"net/netip"
	"sort"
	"time"

	"github.com/nfqfw/nfqfw/engine/internal/lru"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// CounterSnapshot is one source's admitted attempts against one guard, as
// persisted: absolute times, oldest first, so a restored source is limited
// exactly as it would have been without the restart.
type CounterSnapshot struct {
	Guard    string      `json:"guard"`
	Addr     netip.Addr  `json:"addr"`
	Attempts []time.Time `json:"attempts"` // admitted attempts, oldest first
	Last     time.Time   `json:"last"`     // last attempt, admitted or not
}

// Snapshot returns the admitted attempts of every proven source (a
// completed handshake, or refused) of every guard, sorted by guard and
// address, for persistence. Sources still in probation are left out: under
// a flood of spoofed SYNs they are nearly all of the sources and hold one
// attempt each, and writing them made the state file tens of megabytes.
// A restart forgets at most their few attempts.
func (g *Guards) Snapshot() []CounterSnapshot {
	var out []CounterSnapshot
	for _, gd := range g.guards {
		for si := range gd.shards {
			s := &gd.shards[si]
			s.mu.Lock()
			t := &s.seg[proven]
			for i := t.lru.Oldest(); i != lru.None; i = t.lru.Newer(i) {
				e := &t.ents[i]
				sn := CounterSnapshot{Guard: gd.name, Addr: netip.AddrFrom16(t.lru.Key(i)).Unmap(), Last: clock.Wall(e.last).UTC()}
				for k := len(e.st); k > 0; k-- {
					sn.Attempts = append(sn.Attempts, clock.Wall(e.st[(int(e.pos)-k+len(e.st))%len(e.st)]).UTC())
				}
				out = append(out, sn)
			}
			s.mu.Unlock()
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Guard != out[j].Guard {
			return out[i].Guard < out[j].Guard
		}
		return out[i].Addr.Less(out[j].Addr)
	})
	return out
}

// Restore loads counters saved by Snapshot into the guards of the same name,
// as proven sources, and returns how many sources it restored. Sources of guards that no
// longer exist, and sources idle longer than their guard's longest window
// at now, are dropped; a guard keeps at most its ring's worth of the most
// recent attempts. A source already tracked is replaced.
func (g *Guards) Restore(snaps []CounterSnapshot, now int64) int {
	// Oldest last attempt first: each shard's eviction order stays by last
	// attempt, which Expire relies on.
	order := make([]int, len(snaps))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return snaps[order[i]].Last.Before(snaps[order[j]].Last) })
	n := 0
	for _, oi := range order {
		sn := &snaps[oi]
		k, ok := g.names[sn.Guard]
		if !ok || !sn.Addr.IsValid() {
			continue
		}
		gd := g.guards[k]
		last := clock.Mono(sn.Last)
		if last <= now-gd.maxWindow {
			continue
		}
		attempts := sn.Attempts
		if len(attempts) > gd.ring {
			attempts = attempts[len(attempts)-gd.ring:]
		}
		a := sn.Addr.Unmap().As16()
		s := &gd.shards[lru.Hash(&a, g.seed)%guardShards]
		s.mu.Lock()
		sg, i, ok := s.find(a)
		if ok {
			s.seg[sg].lru.Touch(i)
		} else {
			sg, i = proven, s.insert(proven, a)
		}
		e := &s.seg[sg].ents[i]
		e.st, e.pos, e.last = e.st[:0], 0, last
		for _, at := range attempts {
			e.st = append(e.st, clock.Mono(at))
		}
		e.pos = int32(len(e.st) % gd.ring)
		if sg == probation {
			s.promote(a, i)
		}
		s.mu.Unlock()
		n++
	}
	return n
}

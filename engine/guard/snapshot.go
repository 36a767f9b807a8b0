package guard

import (
	"net/netip"
	"sort"
	"time"

	"github.com/nfqfw/nfqfw/engine/internal/lru"
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

// Snapshot returns every tracked source's admitted attempts of every guard,
// sorted by guard and address, for persistence.
func (g *Guards) Snapshot() []CounterSnapshot {
	var out []CounterSnapshot
	for _, gd := range g.guards {
		for si := range gd.shards {
			s := &gd.shards[si]
			s.mu.Lock()
			for i := s.lru.Oldest(); i != lru.None; i = s.lru.Newer(i) {
				e := &s.ents[i]
				st := s.stamps[int(i)*gd.ring : int(i+1)*gd.ring]
				sn := CounterSnapshot{Guard: gd.name, Addr: netip.AddrFrom16(s.lru.Key(i)).Unmap(), Last: time.Unix(0, e.last).UTC()}
				for k := int(e.n); k > 0; k-- {
					sn.Attempts = append(sn.Attempts, time.Unix(0, st[(int(e.pos)-k+gd.ring)%gd.ring]).UTC())
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

// Restore loads counters saved by Snapshot into the guards of the same name
// and returns how many sources it restored. Sources of guards that no
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
		last := sn.Last.UnixNano()
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
		i, ok := s.lru.Get(a)
		if ok {
			s.lru.Touch(i)
		} else {
			i = s.insert(a)
		}
		e := &s.ents[i]
		st := s.stamps[int(i)*gd.ring : int(i+1)*gd.ring]
		e.n, e.pos, e.last = 0, 0, last
		for _, at := range attempts {
			st[e.pos] = at.UnixNano()
			e.pos = (e.pos + 1) % int32(gd.ring)
			e.n++
		}
		s.mu.Unlock()
		n++
	}
	return n
}

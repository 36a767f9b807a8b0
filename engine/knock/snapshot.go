package knock

import (
	"net/netip"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// Snap is the state of a Knocker with absolute times, so that it survives a
// reload (New with the new configuration, then Restore of the old
// Snapshot) and a restart (written to the state directory as JSON).
type Snap struct {
	Sequences []SnapSequence `json:"sequences"`
}

// SnapSequence is the state of one sequence.
type SnapSequence struct {
	Name string `json:"name"`
	// Fingerprint names the steps, secret, period and skew. Progress and
	// one-shot completions are only restored into a sequence with the same
	// fingerprint; open windows only need the same name.
	Fingerprint string         `json:"fingerprint"`
	Progress    []SnapProgress `json:"progress,omitempty"`
	Open        []SnapOpen     `json:"open,omitempty"`
	Used        []SnapUsed     `json:"used,omitempty"`
}

// SnapProgress is a source's progress.
type SnapProgress struct {
	Source  netip.Addr `json:"source"`
	Step    int        `json:"step"`
	Started time.Time  `json:"started"`
	Last    time.Time  `json:"last"`
	Counter int64      `json:"counter,omitempty"` // time-step counter of a rotating sequence
}

// SnapOpen is an open window.
type SnapOpen struct {
	Source netip.Addr `json:"source"`
	Until  time.Time  `json:"until"`
}

// SnapUsed is a one-shot completion whose replay is refused until Until.
type SnapUsed struct {
	Counter int64     `json:"counter,omitempty"`
	Until   time.Time `json:"until"`
}

// Snapshot returns the whole state, expired entries included (Restore drops
// them).
func (k *Knocker) Snapshot() Snap {
	snap := Snap{Sequences: make([]SnapSequence, len(k.seqs))}
	for i, s := range k.seqs {
		snap.Sequences[i] = SnapSequence{Name: s.name, Fingerprint: s.fingerprint}
		s.usedMu.Lock()
		for _, u := range s.used {
			snap.Sequences[i].Used = append(snap.Sequences[i].Used, SnapUsed{Counter: u.ctr, Until: clock.Wall(u.until)})
		}
		s.usedMu.Unlock()
	}
	for _, sh := range k.shards {
		sh.mu.Lock()
		sh.prog.each(func(e int32) {
			src := addr(sh.prog.key(e))
			for i, p := range sh.prog.values(e) {
				if p.step > 0 {
					snap.Sequences[i].Progress = append(snap.Sequences[i].Progress, SnapProgress{
						Source: src, Step: int(p.step), Counter: p.ctr,
						Started: clock.Wall(p.started), Last: clock.Wall(p.last),
					})
				}
			}
		})
		sh.open.each(func(e int32) {
			src := addr(sh.open.key(e))
			for i, w := range sh.open.values(e) {
				if w.until != 0 {
					snap.Sequences[i].Open = append(snap.Sequences[i].Open, SnapOpen{Source: src, Until: clock.Wall(w.until)})
				}
			}
		})
		sh.mu.Unlock()
	}
	return snap
}

// Restore loads a Snapshot taken from this or an earlier Knocker, possibly
// built from another configuration. State of sequences that no longer
// exist is dropped, and so is whatever has expired by now. Restored
// windows close at their recorded time; a restored progress keeps its
// recorded deadlines.
func (k *Knocker) Restore(snap Snap, now int64) {
	for _, ss := range snap.Sequences {
		i := k.Index(ss.Name)
		if i < 0 {
			continue
		}
		s := k.seqs[i]
		same := ss.Fingerprint == s.fingerprint
		if same && s.oneShot {
			s.usedMu.Lock()
			for _, u := range ss.Used {
				if until := clock.Mono(u.Until); until > now && len(s.used) < maxUsed {
					s.used = append(s.used, usedRec{ctr: u.Counter, until: until})
				}
			}
			s.usedMu.Unlock()
		}
		for _, sp := range ss.Progress {
			p := progress{step: uint8(sp.Step), started: clock.Mono(sp.Started), last: clock.Mono(sp.Last), ctr: sp.Counter}
			if !same || sp.Step <= 0 || sp.Step >= len(s.steps) || s.expired(p, now) || !sp.Source.IsValid() {
				continue
			}
			src := sp.Source.As16()
			sh := k.shard(src)
			sh.mu.Lock()
			e, _ := sh.prog.getOrInsert(src, &k.evicted)
			sh.prog.values(e)[i] = p
			sh.nprog.Store(int32(sh.prog.len()))
			sh.mu.Unlock()
		}
		for _, so := range ss.Open {
			until := clock.Mono(so.Until)
			if until <= now || !so.Source.IsValid() {
				continue
			}
			src := so.Source.As16()
			sh := k.shard(src)
			sh.mu.Lock()
			e, _ := sh.open.getOrInsert(src, &k.evictedOpen)
			w := &sh.open.values(e)[i]
			w.until = max(w.until, until)
			sh.nopen.Store(int32(sh.open.len()))
			sh.mu.Unlock()
		}
	}
}

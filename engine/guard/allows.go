package guard

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/decision"
)

// MaxAllows bounds the allows in force: an allow is an operator's
// exception, not a list to fill from elsewhere, and a ban is checked
// against each of them.
const MaxAllows = 1024

// ErrAllowsFull is returned by Allows.Add when MaxAllows allows are in force.
var ErrAllowsFull = errors.New("too many allows in force")

// Allows holds the temporary allows (decision.Allow): sources admitted
// like the management allowlist until their expiry. Add, Del, Expire,
// List, Snapshot and Restore may be called from any goroutine; Covers, on
// the packet path, reads an immutable copy and never locks nor allocates.
type Allows struct {
	mu sync.Mutex
	m  map[netip.Prefix]decision.Decision

	live atomic.Pointer[liveAllows] // the scopes in force, for Covers
}

// liveAllow is one allow as Covers and overlapping read it.
type liveAllow struct {
	scope netip.Prefix
	until int64 // engine clock
}

// liveAllows is an immutable copy of the allows: every one, and for
// Covers one table per prefix length in use, per family, so that a source
// costs one lookup per length (usually one or two), not one per allow.
type liveAllows struct {
	all    []liveAllow
	v4, v6 []lenTable
}

// lenTable holds the allows of one prefix length, by masked scope.
type lenTable struct {
	bits int
	m    map[netip.Prefix]int64 // scope -> until (engine clock)
}

// NewAllows returns an empty table.
func NewAllows() *Allows {
	a := &Allows{m: map[netip.Prefix]decision.Decision{}}
	a.publish()
	return a
}

// publish rebuilds the copy Covers reads; a.mu held (or not yet shared).
func (a *Allows) publish() {
	l := &liveAllows{all: make([]liveAllow, 0, len(a.m))}
	for p, d := range a.m {
		until := clock.Mono(d.Expires)
		l.all = append(l.all, liveAllow{scope: p, until: until})
		tabs := &l.v6
		if p.Addr().Is4() {
			tabs = &l.v4
		}
		i := slices.IndexFunc(*tabs, func(t lenTable) bool { return t.bits == p.Bits() })
		if i < 0 {
			*tabs = append(*tabs, lenTable{bits: p.Bits(), m: map[netip.Prefix]int64{}})
			i = len(*tabs) - 1
		}
		(*tabs)[i].m[p] = until
	}
	a.live.Store(l)
}

// Add puts the allow d in force (a decision of kind Allow whose expiry is
// after now) and reports whether it is new or changed one in force (an
// allow of the same scope is replaced: the later decision wins). A table
// holding MaxAllows other scopes refuses it with ErrAllowsFull.
func (a *Allows) Add(d decision.Decision, now time.Time) (bool, error) {
	if d.Kind != decision.Allow {
		return false, fmt.Errorf("%w: %s", ErrKind, d.Kind)
	}
	if err := d.Validate(); err != nil {
		return false, err
	}
	if _, err := scopeKey(d.Scope); err != nil {
		return false, fmt.Errorf("allow: %w", err)
	}
	if !d.Expires.After(now) {
		return false, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old, ok := a.m[d.Scope]
	if ok && old == d {
		return false, nil
	}
	if !ok && len(a.m) >= MaxAllows {
		return false, fmt.Errorf("%w (%d): delete one first", ErrAllowsFull, MaxAllows)
	}
	a.m[d.Scope] = d
	a.publish()
	return true, nil
}

// Del lifts the allow of exactly scope and reports whether there was one.
func (a *Allows) Del(scope netip.Prefix) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.m[scope]; !ok {
		return false
	}
	delete(a.m, scope)
	a.publish()
	return true
}

// Expire removes the allows that ended by now and returns them.
func (a *Allows) Expire(now time.Time) []decision.Decision {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []decision.Decision
	for p, d := range a.m {
		if !d.Expires.After(now) {
			delete(a.m, p)
			out = append(out, d)
		}
	}
	if len(out) > 0 {
		a.publish()
	}
	return out
}

// List returns the allows in force at now, by scope.
func (a *Allows) List(now time.Time) []decision.Decision {
	a.mu.Lock()
	out := make([]decision.Decision, 0, len(a.m))
	for _, d := range a.m {
		if d.Expires.After(now) {
			out = append(out, d)
		}
	}
	a.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return lessScope(out[i].Scope, out[j].Scope) })
	return out
}

// Overlapping returns an allow in force at now whose scope overlaps p (p
// inside it, or it inside p).
func (a *Allows) Overlapping(p netip.Prefix, now time.Time) (decision.Decision, bool) {
	for _, d := range a.List(now) {
		if d.Scope.Overlaps(p) {
			return d, true
		}
	}
	return decision.Decision{}, false
}

// overlapping returns an allow in force at now (engine clock) whose scope
// overlaps p. It never locks nor allocates; a nil table has none.
func (a *Allows) overlapping(p netip.Prefix, now int64) (liveAllow, bool) {
	if a == nil {
		return liveAllow{}, false
	}
	for _, l := range a.live.Load().all {
		if l.until > now && l.scope.Overlaps(p) {
			return l, true
		}
	}
	return liveAllow{}, false
}

// Covers reports whether an allow in force at now (engine clock) admits
// src: one map lookup per prefix length in use in src's family. It never
// locks nor allocates.
func (a *Allows) Covers(src [16]byte, now int64) bool {
	if a == nil {
		return false
	}
	l := a.live.Load()
	if len(l.all) == 0 {
		return false
	}
	addr := netip.AddrFrom16(src).Unmap()
	tabs := l.v6
	if addr.Is4() {
		tabs = l.v4
	}
	for _, t := range tabs {
		p, _ := addr.Prefix(t.bits)
		if until, ok := t.m[p]; ok && until > now {
			return true
		}
	}
	return false
}

// Len returns the number of allows held (some may have ended since the
// last Expire).
func (a *Allows) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.m)
}

// Snapshot returns the allows for the state file.
func (a *Allows) Snapshot() []decision.Decision { return a.List(time.Time{}) }

// Restore puts the allows of a state file back in force, those that have
// not ended by now, and returns how many.
func (a *Allows) Restore(ds []decision.Decision, now time.Time) int {
	n := 0
	for _, d := range ds {
		if ok, err := a.Add(d, now); ok && err == nil {
			n++
		}
	}
	return n
}

package guard

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/decision"
)

// MaxAllows bounds the allows in force: they are looked up by a scan (a
// guard's check of a new connection), and an allow is an operator's
// exception, not a list to fill from elsewhere.
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

	live atomic.Pointer[[]liveAllow] // the scopes in force, for Covers
}

// liveAllow is one allow as Covers scans it.
type liveAllow struct {
	scope netip.Prefix
	until int64 // engine clock
}

// NewAllows returns an empty table.
func NewAllows() *Allows {
	a := &Allows{m: map[netip.Prefix]decision.Decision{}}
	a.publish()
	return a
}

// publish rebuilds the copy Covers reads; a.mu held (or not yet shared).
func (a *Allows) publish() {
	l := make([]liveAllow, 0, len(a.m))
	for p, d := range a.m {
		l = append(l, liveAllow{scope: p, until: clock.Mono(d.Expires)})
	}
	a.live.Store(&l)
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
	for _, l := range *a.live.Load() {
		if l.until > now && l.scope.Overlaps(p) {
			return l, true
		}
	}
	return liveAllow{}, false
}

// Covers reports whether an allow in force at now (engine clock) admits
// src. It never locks nor allocates.
func (a *Allows) Covers(src [16]byte, now int64) bool {
	if a == nil {
		return false
	}
	l := *a.live.Load()
	if len(l) == 0 {
		return false
	}
	addr := netip.AddrFrom16(src).Unmap()
	for i := range l {
		if l[i].until > now && l[i].scope.Contains(addr) {
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

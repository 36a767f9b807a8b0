package knock

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// FailReason says why a source's progress in a sequence was lost. Reasons
// double as metric label values.
type FailReason uint8

// Failure reasons.
const (
	FailWrongPort FailReason = iota // a NEW packet that was not the next step (nor a repeat)
	FailTimeout                     // StepWindow since the last step or Window since the first passed
	FailReplay                      // a one-shot sequence completed again while its refusal lasts
	NumFailReasons
)

var failNames = [NumFailReasons + 1]string{
	FailWrongPort:  "wrong_port",
	FailTimeout:    "timeout",
	FailReplay:     "replay",
	NumFailReasons: "unknown", // any value out of range
}

func (r FailReason) String() string { return failNames[min(r, NumFailReasons)] }

// MarshalText encodes r as its name.
func (r FailReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes a name written by MarshalText.
func (r *FailReason) UnmarshalText(b []byte) error {
	for i, n := range failNames[:NumFailReasons] {
		if n == string(b) {
			*r = FailReason(i)
			return nil
		}
	}
	return fmt.Errorf("decode failure reason %q: %w", b, ErrUnknownReason)
}

// Status is what knock-status shows: each source's progress, the open
// windows and the most recent failures.
type Status struct {
	Now      time.Time    `json:"now"`      // the time Status was taken at
	Progress []Progress   `json:"progress"` // by source, then sequence
	Open     []OpenWindow `json:"open"`     // by source, then sequence
	Failures []Failure    `json:"failures"` // newest first, at most 50
}

// Progress is a source's progress in a sequence.
type Progress struct {
	Source   netip.Addr    `json:"source"`
	Sequence string        `json:"sequence"`
	Step     int           `json:"step"`         // steps taken
	Steps    int           `json:"steps"`        // steps in the sequence
	TimeLeft time.Duration `json:"time_left_ns"` // until the progress times out
}

// OpenWindow is a window a completed sequence opened for a source.
type OpenWindow struct {
	Source   netip.Addr    `json:"source"`
	Sequence string        `json:"sequence"`
	Opens    string        `json:"opens"` // e.g. "tcp/22 udp/1194 to 10.0.0.0/24"
	TimeLeft time.Duration `json:"time_left_ns"`
}

// Failure is a lost progress or a refused completion.
type Failure struct {
	When     time.Time  `json:"when"`
	Source   netip.Addr `json:"source"`
	Sequence string     `json:"sequence"`
	Reason   FailReason `json:"reason"`
}

// Status reports the state at now. Progress that has timed out and windows
// that have closed by now are left out even if Expire has not run yet.
func (k *Knocker) Status(now int64) Status {
	st := Status{Now: clock.Wall(now), Progress: []Progress{}, Open: []OpenWindow{}, Failures: []Failure{}}
	for _, sh := range k.shards {
		sh.mu.Lock()
		sh.prog.each(func(e int32) {
			src := addr(sh.prog.key(e))
			for i, p := range sh.prog.values(e) {
				if s := k.seqs[i]; p.step > 0 && !s.expired(p, now) {
					st.Progress = append(st.Progress, Progress{
						Source: src, Sequence: s.name, Step: int(p.step), Steps: len(s.steps),
						TimeLeft: time.Duration(s.deadline(p) - now),
					})
				}
			}
		})
		sh.open.each(func(e int32) {
			src := addr(sh.open.key(e))
			for i, w := range sh.open.values(e) {
				if w.until > now {
					s := k.seqs[i]
					st.Open = append(st.Open, OpenWindow{
						Source: src, Sequence: s.name, Opens: s.opensText,
						TimeLeft: time.Duration(w.until - now),
					})
				}
			}
		})
		for _, f := range sh.fails {
			if f.when != 0 {
				st.Failures = append(st.Failures, Failure{
					When: clock.Wall(f.when), Source: addr(f.src), Sequence: k.seqs[f.seq].name, Reason: f.reason,
				})
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(st.Progress, func(a, b Progress) int {
		return cmp.Or(a.Source.Compare(b.Source), cmp.Compare(a.Sequence, b.Sequence))
	})
	slices.SortFunc(st.Open, func(a, b OpenWindow) int {
		return cmp.Or(a.Source.Compare(b.Source), cmp.Compare(a.Sequence, b.Sequence))
	})
	slices.SortStableFunc(st.Failures, func(a, b Failure) int {
		return cmp.Or(b.When.Compare(a.When), a.Source.Compare(b.Source), cmp.Compare(a.Sequence, b.Sequence))
	})
	if len(st.Failures) > recentFailures {
		st.Failures = st.Failures[:recentFailures]
	}
	return st
}

// addr converts a 16-byte address as the engine keeps it, IPv4 mapped.
func addr(a [16]byte) netip.Addr { return netip.AddrFrom16(a).Unmap() }

// Stats are the counters of a Knocker, for metrics.
type Stats struct {
	Sequences   []SequenceStats
	Evicted     uint64 // sources in progress evicted because their shard was full
	EvictedOpen uint64 // sources with open windows evicted because their shard was full
}

// SequenceStats are the counters and gauges of one sequence.
type SequenceStats struct {
	Name       string
	Successes  uint64                 // completions that opened a window
	Failures   [NumFailReasons]uint64 // indexed by FailReason
	InProgress int                    // sources with progress (not yet expired by Expire)
	Open       int                    // sources with an open window (not yet expired by Expire)
}

// Stats returns the counters, and gauges as of the last Expire.
func (k *Knocker) Stats() Stats {
	st := Stats{Evicted: k.evicted.Load(), EvictedOpen: k.evictedOpen.Load()}
	st.Sequences = make([]SequenceStats, len(k.seqs))
	for i, s := range k.seqs {
		ss := &st.Sequences[i]
		ss.Name = s.name
		ss.Successes = s.successes.Load()
		for r := range ss.Failures {
			ss.Failures[r] = s.failures[r].Load()
		}
	}
	for _, sh := range k.shards {
		sh.mu.Lock()
		sh.prog.each(func(e int32) {
			for i, p := range sh.prog.values(e) {
				if p.step > 0 {
					st.Sequences[i].InProgress++
				}
			}
		})
		sh.open.each(func(e int32) {
			for i, w := range sh.open.values(e) {
				if w.until != 0 {
					st.Sequences[i].Open++
				}
			}
		})
		sh.mu.Unlock()
	}
	return st
}

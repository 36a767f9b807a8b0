// Package loglimit limits log lines: at most N per window of a period,
// windows aligned to the wall clock (a period of one second: N lines per
// wall-clock second), the rest counted as suppressed and never queued. It
// is the one limiter of nfqfw's log lines: the engine's packet log, the
// queue readers' and the conntrack follower's error lines, and the FTP
// helper's.
package loglimit

import (
	"sync/atomic"
	"time"
)

// Limiter lets N lines through per period and counts the rest. The zero
// Limiter lets one line through per second. It is safe for concurrent use
// and does not allocate.
type Limiter struct {
	n      atomic.Int64 // lines per window; 0: 1
	period int64        // window length in nanoseconds; 0: one second

	window     atomic.Int64 // the current window: unix nanoseconds / period
	inWindow   atomic.Int64 // lines asked for in the current window
	since      atomic.Uint64
	suppressed atomic.Uint64
}

// New returns a Limiter of n lines per period (n <= 0: 1; period <= 0: one
// second).
func New(n int, period time.Duration) *Limiter {
	l := &Limiter{period: int64(max(period, 0))}
	l.SetN(n)
	return l
}

// SetN changes the lines allowed per window (at least 1); safe while
// other goroutines call Allow.
func (l *Limiter) SetN(n int) { l.n.Store(int64(max(n, 1))) }

// N returns the lines allowed per window.
func (l *Limiter) N() int { return int(max(l.n.Load(), 1)) }

// Allow reports whether a line at now may be written, and how many were
// suppressed since the last one allowed.
func (l *Limiter) Allow(now time.Time) (ok bool, suppressed uint64) {
	n, period := l.n.Load(), l.period
	if n <= 0 {
		n = 1
	}
	if period <= 0 {
		period = int64(time.Second)
	}
	w := now.UnixNano() / period
	if old := l.window.Load(); old != w && l.window.CompareAndSwap(old, w) {
		l.inWindow.Store(0)
	}
	if l.inWindow.Add(1) > n {
		l.since.Add(1)
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.since.Swap(0)
}

// Suppressed returns the lines suppressed since the Limiter was made.
func (l *Limiter) Suppressed() uint64 { return l.suppressed.Load() }

package nfq

import (
	"sync/atomic"
	"time"
)

// logEvery is the least time between two log lines of one kind on the
// packet path.
const logEvery = time.Second

// limiter lets one event through per interval and counts the rest. It is
// safe for concurrent use and does not allocate.
type limiter struct {
	next       atomic.Int64 // unix nanoseconds before which events are suppressed
	suppressed atomic.Uint64
}

// allow reports whether an event at now may be logged, and how many were
// suppressed since the last allowed one.
func (l *limiter) allow(now time.Time) (bool, uint64) {
	n := l.next.Load()
	if now.UnixNano() < n || !l.next.CompareAndSwap(n, now.Add(logEvery).UnixNano()) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}

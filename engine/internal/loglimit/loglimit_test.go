package loglimit

import (
	"testing"
	"time"
)

// TestLimiter: the zero Limiter lets one line through per second and
// reports the lines suppressed in between.
func TestLimiter(t *testing.T) {
	var l Limiter
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at             time.Duration
		wantOK         bool
		wantSuppressed uint64
	}{
		{0, true, 0},
		{100 * time.Millisecond, false, 0},
		{900 * time.Millisecond, false, 0},
		{time.Second, true, 2},
		{time.Second + 1, false, 0},
	}
	for i, s := range steps {
		ok, n := l.Allow(t0.Add(s.at))
		if ok != s.wantOK || n != s.wantSuppressed {
			t.Errorf("step %d at %v: allow = %v, %d; want %v, %d", i, s.at, ok, n, s.wantOK, s.wantSuppressed)
		}
	}
}

// TestLimiterRate: N lines per wall-clock second, the rest suppressed and
// counted; the next second starts afresh.
func TestLimiterRate(t *testing.T) {
	l := New(3, time.Second)
	t0 := time.Unix(2000, 0)
	var allowed int
	for i := range 10 {
		if ok, _ := l.Allow(t0.Add(time.Duration(i) * time.Millisecond)); ok {
			allowed++
		}
	}
	if allowed != 3 || l.Suppressed() != 7 {
		t.Errorf("10 lines in one second: %d allowed, %d suppressed; want 3, 7", allowed, l.Suppressed())
	}
	if ok, n := l.Allow(t0.Add(time.Second)); !ok || n != 7 {
		t.Errorf("first line of the next second: allow = %v, %d; want true, 7", ok, n)
	}
}

package clock

import (
	"math"
	"testing"
	"time"
)

func TestWallMonoAcrossSteps(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := NewFake(start)
	defer Set(f)()
	deadline := Now() + int64(10*time.Minute)
	for _, step := range []time.Duration{time.Hour, -2 * time.Hour} {
		f.StepWall(step)
		if got := Now(); got != start.UnixNano() {
			t.Fatalf("after a wall step of %v Now() = %d, want it unmoved", step, got)
		}
	}
	// The wall clock is an hour behind now: the deadline falls 10 min
	// after the (stepped) wall time, and converts back to itself.
	if got, want := Wall(deadline), start.Add(-time.Hour+10*time.Minute); !got.Equal(want) {
		t.Errorf("Wall(deadline) = %v, want %v", got, want)
	}
	if got := Mono(Wall(deadline)); got != deadline {
		t.Errorf("Mono(Wall(deadline)) = %d, want %d", got, deadline)
	}
	if Mono(time.Time{}) != 0 {
		t.Error("Mono(zero time) != 0")
	}
}

func TestAddSaturates(t *testing.T) {
	for _, tt := range []struct{ a, b, want int64 }{
		{1, 2, 3},
		{math.MaxInt64 - 1, 5, math.MaxInt64},
		{math.MinInt64 + 1, -5, math.MinInt64},
	} {
		if got := Add(tt.a, tt.b); got != tt.want {
			t.Errorf("Add(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestSystemClockIsMonotonicUnix(t *testing.T) {
	n, w := Now(), time.Now().UnixNano()
	if d := w - n; d < -int64(time.Second) || d > int64(time.Second) {
		t.Errorf("Now() = %d, wall %d: want them within a second without a wall step", n, w)
	}
	if AllocsPerRun := testing.AllocsPerRun(100, func() { Now() }); AllocsPerRun != 0 {
		t.Errorf("Now allocates %v times", AllocsPerRun)
	}
}

// TestSystemRoundTrip: on the process's own clock a deadline converted to
// wall time and back is the same nanosecond, however often, so a ban saved
// and restored (or listed twice) does not drift by the jitter between the
// wall and monotonic reads of one time.Now.
func TestSystemRoundTrip(t *testing.T) {
	want := Now() + int64(time.Minute)
	w := Wall(want)
	for i := range 10000 {
		if got := Mono(w); got != want {
			t.Fatalf("round %d: Mono(Wall(%d)) = %d, %d ns off", i, want, got, got-want)
		}
		if got := Wall(want); !got.Equal(w) {
			t.Fatalf("round %d: Wall(%d) = %v, first %v", i, want, got, w)
		}
	}
}

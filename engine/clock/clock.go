package clock

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Source is where the clock reads its time.
type Source interface {
	// Now returns monotonic nanoseconds.
	Now() int64
	// Read returns the monotonic nanoseconds and the wall time of one
	// instant.
	Read() (int64, time.Time)
}

// system is the process's own clock: time.Since on a base that carries a
// monotonic reading.
type system struct {
	base     time.Time
	baseUnix int64
	// off is the wall clock minus the monotonic one, as last taken. The
	// two readings of one time.Now are two clock reads a few tens of
	// nanoseconds apart, so a fresh difference jitters; off moves only
	// when the wall clock has stepped by more than stepTolerance, which
	// keeps Wall and Mono exact inverses of each other (a deadline saved
	// and restored, or shown twice, is the same nanosecond).
	off atomic.Int64
}

// stepTolerance is how far the wall clock must move against the monotonic
// one to count as a step.
const stepTolerance = int64(time.Millisecond)

func (s *system) Now() int64 { return s.baseUnix + int64(time.Since(s.base)) }

// Read takes both from one time.Now, which carries a wall and a monotonic
// reading; the wall time returned is the monotonic one plus the offset in
// force (see off).
//
// A thread descheduled between the two reads (a busy VM) also makes the
// difference jump, once: a new offset is taken only when a second reading
// right after agrees with it.
func (s *system) Read() (int64, time.Time) {
	mono, fresh := s.read()
	off := s.off.Load()
	if far(fresh, off) {
		if mono2, fresh2 := s.read(); !far(fresh2, fresh) {
			mono, off = mono2, fresh2
			s.off.Store(off)
		}
	}
	return mono, time.Unix(0, mono+off)
}

// read returns the monotonic time and the wall clock's difference to it.
func (s *system) read() (mono, off int64) {
	t := time.Now()
	mono = s.baseUnix + int64(t.Sub(s.base))
	return mono, t.UnixNano() - mono
}

// far reports whether two offsets differ by more than stepTolerance.
func far(a, b int64) bool { d := a - b; return d > stepTolerance || d < -stepTolerance }

type holder struct{ s Source }

var (
	sys = func() *system { t := time.Now(); return &system{base: t, baseUnix: t.UnixNano()} }()
	cur atomic.Pointer[holder]
)

func init() { cur.Store(&holder{sys}) }

// Now returns the monotonic clock in nanoseconds, equal to Unix time at
// process start. It does not allocate.
func Now() int64 { return cur.Load().s.Now() }

// Wall returns the wall time at which the deadline mono falls (or fell).
func Wall(mono int64) time.Time { return Read().Wall(mono) }

// Mono returns the deadline of the wall time t on the monotonic clock. The
// zero time stays 0.
func Mono(t time.Time) int64 { return Read().Mono(t) }

// Frame is one reading of the clock, both monotonic and wall: it converts
// many deadlines between the two at the cost of one reading (a fleet
// backlog's 100,000 decisions, each with two times to convert).
type Frame struct {
	now  int64
	wall time.Time
}

// Read reads the clock once, for Frame's conversions.
func Read() Frame {
	now, wall := cur.Load().s.Read()
	return Frame{now: now, wall: wall}
}

// Now returns the monotonic time of the reading.
func (f Frame) Now() int64 { return f.now }

// Wall returns the wall time at which the deadline mono falls (or fell),
// as Wall does at the instant of f.
func (f Frame) Wall(mono int64) time.Time {
	return f.wall.Add(time.Duration(Add(mono, -f.now)))
}

// Mono returns the deadline of the wall time t on the monotonic clock, as
// Mono does at the instant of f. The zero time stays 0.
func (f Frame) Mono(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return Add(f.now, int64(t.Sub(f.wall)))
}

// Add returns a+b, saturating at the int64 range instead of wrapping.
func Add(a, b int64) int64 {
	switch {
	case b > 0 && a > math.MaxInt64-b:
		return math.MaxInt64
	case b < 0 && a < math.MinInt64-b:
		return math.MinInt64
	}
	return a + b
}

// Set makes s the clock's source and returns a function that puts the
// previous one back. For tests.
func Set(s Source) (restore func()) {
	old := cur.Swap(&holder{s})
	return func() { cur.Store(old) }
}

// Fake is a Source for tests: its monotonic and wall times move only when
// told, together (Advance) or the wall time alone (StepWall).
type Fake struct {
	mu   sync.Mutex
	mono int64
	wall time.Time
}

// NewFake returns a Fake at wall time start, its monotonic time equal to
// start's Unix nanoseconds.
func NewFake(start time.Time) *Fake { return &Fake{mono: start.UnixNano(), wall: start} }

// Now implements Source.
func (f *Fake) Now() int64 { f.mu.Lock(); defer f.mu.Unlock(); return f.mono }

// Read implements Source.
func (f *Fake) Read() (int64, time.Time) { f.mu.Lock(); defer f.mu.Unlock(); return f.mono, f.wall }

// Advance lets d pass.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mono += int64(d)
	f.wall = f.wall.Add(d)
}

// StepWall steps the wall clock by d, as NTP or date(1) would; the
// monotonic time does not move.
func (f *Fake) StepWall(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = f.wall.Add(d)
}

// Identity is a Source for tests that build times from fixed dates: its
// monotonic time is the wall time's Unix nanoseconds, so conversions are
// exact (and a wall step would move deadlines: never use it in the daemon).
type Identity struct{}

// Now implements Source.
func (Identity) Now() int64 { return time.Now().UnixNano() }

// Read implements Source.
func (Identity) Read() (int64, time.Time) { t := time.Now().Round(0); return t.UnixNano(), t }

package guard

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nfqfw/nfqfw/rules"
)

// TestCounterSnapshotRestore is the restart of setup 7: a source's admitted
// attempts survive it with absolute times, so the guard goes on counting
// them; sources idle past the longest window and guards no longer
// configured are dropped, and sources that never completed a handshake are
// not saved.
func TestCounterSnapshotRestore(t *testing.T) {
	const a, b, idle = "192.0.2.1", "2001:db8::7", "192.0.2.9"
	g := New([]rules.Guard{ssh}, nil, nil)
	for _, s := range []float64{0, 1, 2} {
		g.Allow(0, a16(a), at(s))
	}
	g.Allow(0, a16(a), at(3)) // refused: not an attempt, but the last one
	g.Allow(0, a16(b), at(5))
	g.Confirm(a16(b))
	g.Allow(0, a16(idle), at(-1900)) // idle longer than 30 min at restore
	g.Confirm(a16(idle))
	g.Allow(0, a16("198.51.100.1"), at(5)) // a SYN only: not saved
	snap := g.Snapshot()

	ts := func(secs ...float64) []time.Time {
		var out []time.Time
		for _, s := range secs {
			out = append(out, time.Unix(0, at(s)).UTC())
		}
		return out
	}
	want := []CounterSnapshot{
		{Guard: "ssh", Addr: netip.MustParseAddr(a), Attempts: ts(0, 1, 2), Last: ts(3)[0]},
		{Guard: "ssh", Addr: netip.MustParseAddr(idle), Attempts: ts(-1900), Last: ts(-1900)[0]},
		{Guard: "ssh", Addr: netip.MustParseAddr(b), Attempts: ts(5), Last: ts(5)[0]},
	}
	if diff := cmp.Diff(want, snap, cmpOpts); diff != "" {
		t.Fatalf("Snapshot (-want +got):\n%s", diff)
	}

	// Restart at 6 s with the same guard plus one removed from the config.
	other := append(snap, CounterSnapshot{Guard: "gone", Addr: netip.MustParseAddr(a), Attempts: ts(0), Last: ts(0)[0]})
	g2 := New([]rules.Guard{ssh}, nil, nil)
	if n := g2.Restore(other, at(6)); n != 2 {
		t.Errorf("Restore restored %d sources, want 2 (a and b)", n)
	}
	steps := []struct {
		at   float64
		src  string
		want bool
		why  string
	}{
		{6, a, false, "3 attempts before the restart are within 10 s"},
		{10.5, a, true, "the attempt at 0 s left the 10 s window"},
		{11, a, false, "the 5th within 30 min"},
		{6, b, true, "b had 1 attempt"},
		{6, b, true, ""},
		{6, b, false, "b's 4th within 10 s, 1 of them before the restart"},
		{6, idle, true, "idle source forgotten"},
	}
	for k, s := range steps {
		if got := g2.Allow(0, a16(s.src), at(s.at)); got != s.want {
			t.Errorf("step %d (t=%vs %s, %s): Allow = %v, want %v", k, s.at, s.src, s.why, got, s.want)
		}
	}

	// Snapshot -> Restore -> Snapshot is stable, and Expire still forgets
	// in order of the last attempt.
	g3 := New([]rules.Guard{ssh}, nil, nil)
	g3.Restore(g2.Snapshot(), at(11))
	if diff := cmp.Diff(g2.Snapshot(), g3.Snapshot(), cmpOpts); diff != "" {
		t.Errorf("second round trip (-want +got):\n%s", diff)
	}
	// idle came back with a SYN only: in probation, not saved.
	if n := g3.Expire(at(11 + 1800)); n != 2 {
		t.Errorf("Expire 30 min after the last attempt forgot %d sources, want 2", n)
	}
}

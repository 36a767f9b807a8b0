package recent

import (
	"fmt"
	"net/netip"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/rules"
)

// t0 is the test clock's origin; at(s) is t0 + s seconds in unix nanoseconds.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec float64) int64 { return t0.UnixNano() + int64(sec*float64(time.Second)) }

// cmpOpts compares addresses and times by value.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
}

func a16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

func TestMatchSemantics(t *testing.T) {
	set := rules.RecentMatch{List: "l", Op: rules.RecentSet}
	check := func(sec time.Duration, hits int) rules.RecentMatch {
		return rules.RecentMatch{List: "l", Op: rules.RecentCheck, Seconds: sec * time.Second, HitCount: hits}
	}
	update := func(sec time.Duration, hits int) rules.RecentMatch {
		return rules.RecentMatch{List: "l", Op: rules.RecentUpdate, Seconds: sec * time.Second, HitCount: hits}
	}
	remove := rules.RecentMatch{List: "l", Op: rules.RecentRemove}
	ttlCheck := rules.RecentMatch{List: "l", Op: rules.RecentCheck, SameTTL: true}

	type step struct {
		at   float64
		m    rules.RecentMatch
		addr string
		ttl  uint8
		want bool
	}
	const a, b = "192.0.2.1", "2001:db8::2"
	tests := []struct {
		name  string
		steps []step
	}{
		{"rcheck of an absent address does not match and does not add", []step{
			{0, check(0, 0), a, 64, false},
			{1, check(0, 0), a, 64, false},
		}},
		{"set always matches, rcheck then finds the address", []step{
			{0, set, a, 64, true},
			{0, set, a, 64, true},
			{1, check(0, 0), a, 64, true},
			{1, check(0, 0), b, 64, false},
		}},
		{"rcheck --seconds: only a recent hit counts (port-scan trick)", []step{
			{0, set, a, 64, true},
			{59, check(60, 0), a, 64, true},
			{60, check(60, 0), a, 64, true},
			{60.5, check(60, 0), a, 64, false},
			{61, check(60, 0), a, 64, false},
		}},
		{"rcheck does not refresh, update does", []step{
			{0, set, a, 64, true},
			{8, check(10, 0), a, 64, true},
			{15, check(10, 0), a, 64, false},
			{16, set, a, 64, true},
			{24, update(10, 0), a, 64, true},
			{30, check(10, 0), a, 64, true}, // refreshed at 24
			{35, check(10, 0), a, 64, false},
		}},
		{"update that does not match records nothing", []step{
			{0, set, a, 64, true},
			{20, update(10, 0), a, 64, false},
			{21, check(30, 2), a, 64, false}, // still one hit
		}},
		{"hitcount counts hits within the window", []step{
			{0, set, a, 64, true},
			{1, set, a, 64, true},
			{2, check(10, 3), a, 64, false},
			{2, set, a, 64, true},
			{5, check(10, 3), a, 64, true},
			{10.5, check(10, 3), a, 64, false}, // the hit at 0 left the window
			{10.5, check(10, 2), a, 64, true},
			{10.5, check(0, 3), a, 64, true}, // no window: all hits count
		}},
		{"update with hitcount: the xt_recent ssh recipe", []step{
			{0, set, a, 64, true},
			{1, update(60, 3), a, 64, false},
			{2, set, a, 64, true},
			{3, set, a, 64, true},
			{4, update(60, 3), a, 64, true}, // and records a 4th hit
			{61.5, check(60, 3), a, 64, true},
			{62.5, check(60, 3), a, 64, false},
		}},
		{"same TTL: a different TTL is absent for rcheck", []step{
			{0, set, a, 64, true},
			{1, ttlCheck, a, 63, false},
			{1, ttlCheck, a, 64, true},
			{2, set, a, 50, true}, // set records the new TTL
			{3, ttlCheck, a, 64, false},
			{3, ttlCheck, a, 50, true},
		}},
		{"remove matches once", []step{
			{0, remove, a, 64, false},
			{0, set, a, 64, true},
			{1, remove, a, 64, true},
			{2, remove, a, 64, false},
			{2, check(0, 0), a, 64, false},
		}},
		{"IPv4 and IPv6 addresses are separate keys", []step{
			{0, set, a, 64, true},
			{1, check(0, 0), b, 64, false},
			{1, set, b, 64, true},
			{2, remove, a, 64, true},
			{3, check(0, 0), b, 64, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New([]rules.RecentList{{Name: "l"}})
			for k, s := range tt.steps {
				if got := l.Match(0, &s.m, a16(s.addr), s.ttl, at(s.at)); got != s.want {
					t.Fatalf("step %d (t=%vs op=%d %s ttl=%d seconds=%v hitcount=%d): got %v, want %v",
						k, s.at, s.m.Op, s.addr, s.ttl, s.m.Seconds, s.m.HitCount, got, s.want)
				}
			}
		})
	}
}

func TestMaxStamps(t *testing.T) {
	l := New([]rules.RecentList{{Name: "l"}})
	set := rules.RecentMatch{Op: rules.RecentSet}
	for i := range 25 {
		l.Match(0, &set, a16("192.0.2.1"), 64, at(float64(i)))
	}
	for _, tt := range []struct {
		hits int
		want bool
	}{{MaxStamps, true}, {MaxStamps + 1, false}} {
		m := rules.RecentMatch{Op: rules.RecentCheck, HitCount: tt.hits}
		if got := l.Match(0, &m, a16("192.0.2.1"), 64, at(30)); got != tt.want {
			t.Errorf("hitcount %d after 25 hits = %v, want %v (an entry keeps %d)", tt.hits, got, tt.want, MaxStamps)
		}
	}
	// The 20 kept are the last ones: t=5..24, so 10 within the last 10 s.
	m := rules.RecentMatch{Op: rules.RecentCheck, Seconds: 10*time.Second - 1, HitCount: 10}
	if !l.Match(0, &m, a16("192.0.2.1"), 64, at(24)) {
		t.Error("the most recent stamps were not kept")
	}
}

func TestIndexAndUnknownList(t *testing.T) {
	l := New([]rules.RecentList{{Name: "portscan"}, {Name: "ssh"}})
	if diff := cmp.Diff([]int{0, 1, -1}, []int{l.Index("portscan"), l.Index("ssh"), l.Index("nope")}); diff != "" {
		t.Errorf("Index (-want +got):\n%s", diff)
	}
	set := rules.RecentMatch{Op: rules.RecentSet}
	if l.Match(-1, &set, a16("192.0.2.1"), 64, 0) || l.Match(2, &set, a16("192.0.2.1"), 64, 0) {
		t.Error("Match on an out-of-range list matched")
	}
}

func TestEvictionLeastRecent(t *testing.T) {
	l := New([]rules.RecentList{{Name: "small", Size: 3}})
	set := rules.RecentMatch{Op: rules.RecentSet}
	check := rules.RecentMatch{Op: rules.RecentCheck}
	for i, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		l.Match(0, &set, a16(a), 64, at(float64(i)))
	}
	l.Match(0, &set, a16("192.0.2.1"), 64, at(3)) // .1 is now the most recent
	l.Match(0, &set, a16("192.0.2.4"), 64, at(4)) // evicts .2
	got := map[string]bool{}
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"} {
		got[a] = l.Match(0, &check, a16(a), 64, at(5))
	}
	want := map[string]bool{"192.0.2.1": true, "192.0.2.2": false, "192.0.2.3": true, "192.0.2.4": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("present after eviction (-want +got):\n%s", diff)
	}
	wantStats := []Stats{{Name: "small", Entries: 3, Capacity: 3, Hits: 5 + 3, Evictions: 1}}
	if diff := cmp.Diff(wantStats, l.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestBoundedWhenSharded(t *testing.T) {
	const size = 5000
	l := New([]rules.RecentList{{Name: "big", Size: size}})
	if n := len(l.lists[0].shards); n < 2 {
		t.Fatalf("a list of %d has %d shard(s), want several", size, n)
	}
	set := rules.RecentMatch{Op: rules.RecentSet}
	for i := range 3 * size {
		l.Match(0, &set, addrN(i), 64, at(float64(i)))
	}
	st := l.Stats()[0]
	if st.Entries != size || st.Evictions != 2*size {
		t.Errorf("after %d distinct sets: entries %d evictions %d, want %d and %d", 3*size, st.Entries, st.Evictions, size, 2*size)
	}
	// The survivors are recent ones: nothing from the first third.
	check := rules.RecentMatch{Op: rules.RecentCheck}
	for i := range size {
		if l.Match(0, &check, addrN(i), 64, at(1e5)) {
			t.Fatalf("address %d of the first third survived", i)
		}
	}
}

func addrN(i int) [16]byte {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).As16()
}

func TestWalkSnapshotRestore(t *testing.T) {
	cfg := []rules.RecentList{{Name: "portscan"}, {Name: "ssh"}}
	l := New(cfg)
	set := rules.RecentMatch{Op: rules.RecentSet}
	l.Match(0, &set, a16("192.0.2.1"), 64, at(0))
	l.Match(0, &set, a16("192.0.2.1"), 63, at(5))
	l.Match(1, &set, a16("2001:db8::9"), 57, at(7))

	var walked []Entry
	l.Walk(func(e Entry) { walked = append(walked, e) })
	sort.Slice(walked, func(i, j int) bool { return walked[i].List < walked[j].List })
	wantWalk := []Entry{
		{List: "portscan", Addr: netip.MustParseAddr("192.0.2.1"), LastSeen: t0.Add(5 * time.Second), Hits: 2, TTL: 63},
		{List: "ssh", Addr: netip.MustParseAddr("2001:db8::9"), LastSeen: t0.Add(7 * time.Second), Hits: 1, TTL: 57},
	}
	if diff := cmp.Diff(wantWalk, walked, cmpOpts); diff != "" {
		t.Errorf("Walk (-want +got):\n%s", diff)
	}

	snap := l.Snapshot()
	// A new configuration without "ssh" and with a "new" list.
	l2 := New([]rules.RecentList{{Name: "portscan"}, {Name: "new"}})
	if n := l2.Restore(snap, at(100)); n != 1 {
		t.Errorf("Restore restored %d entries, want 1 (ssh is gone)", n)
	}
	if diff := cmp.Diff(snap[:1], l2.Snapshot(), cmpOpts); diff != "" {
		t.Errorf("Snapshot after Restore (-want +got):\n%s", diff)
	}
	// Windows are judged against absolute time: the hit at t0+5s is 95 s
	// old at t0+100s.
	for _, tt := range []struct {
		sec  time.Duration
		want bool
	}{{96, true}, {94, false}} {
		m := rules.RecentMatch{Op: rules.RecentCheck, Seconds: tt.sec * time.Second}
		if got := l2.Match(0, &m, a16("192.0.2.1"), 64, at(100)); got != tt.want {
			t.Errorf("restored entry, rcheck --seconds %d = %v, want %v", tt.sec, got, tt.want)
		}
	}
}

func TestRestoreClampsAndOrders(t *testing.T) {
	l := New([]rules.RecentList{{Name: "l", Size: 2}})
	snaps := []EntrySnapshot{
		{List: "l", Addr: netip.MustParseAddr("192.0.2.3"), TTL: 64, Seen: []time.Time{t0.Add(30 * time.Second)}},
		{List: "l", Addr: netip.MustParseAddr("192.0.2.1"), TTL: 64, Seen: []time.Time{t0.Add(10 * time.Second)}},
		{List: "l", Addr: netip.MustParseAddr("192.0.2.2"), TTL: 64, Seen: []time.Time{t0.Add(time.Hour)}}, // clock went back
		{List: "l", Addr: netip.Addr{}, Seen: []time.Time{t0}},
		{List: "l", Addr: netip.MustParseAddr("192.0.2.4")},
	}
	l.Restore(snaps, at(60))
	var got []string
	l.Walk(func(e Entry) { got = append(got, fmt.Sprintf("%s %s", e.Addr, e.LastSeen.UTC().Format(time.TimeOnly))) })
	// Size 2 keeps the two most recent; the future hit is clamped to now.
	want := []string{"192.0.2.3 12:00:30", "192.0.2.2 12:01:00"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries after Restore (-want +got):\n%s", diff)
	}
}

func TestConcurrentMatch(t *testing.T) {
	l := New([]rules.RecentList{{Name: "l", Size: 4096}})
	set := rules.RecentMatch{Op: rules.RecentSet}
	update := rules.RecentMatch{Op: rules.RecentUpdate, Seconds: time.Minute, HitCount: 2}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20000 {
				a := addrN((i*7 + g) % 6000)
				if i%3 == 0 {
					l.Match(0, &update, a, 64, at(float64(i)/1000))
				} else {
					l.Match(0, &set, a, 64, at(float64(i)/1000))
				}
			}
		})
	}
	l.Walk(func(Entry) {}) // concurrently with the readers
	wg.Wait()
	if st := l.Stats()[0]; st.Entries > 4096 || st.Entries == 0 {
		t.Errorf("entries = %d, want 1..4096", st.Entries)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	l := New([]rules.RecentList{{Name: "l", Size: 1000}})
	set := rules.RecentMatch{Op: rules.RecentSet}
	update := rules.RecentMatch{Op: rules.RecentUpdate, Seconds: time.Minute, HitCount: 3}
	remove := rules.RecentMatch{Op: rules.RecentRemove}
	i := 0
	// Churn through 5000 addresses: inserts, evictions, updates, removals.
	allocs := testing.AllocsPerRun(20000, func() {
		a := addrN(i % 5000)
		switch i % 4 {
		case 0, 1:
			l.Match(0, &set, a, 64, at(float64(i)))
		case 2:
			l.Match(0, &update, a, 64, at(float64(i)))
		case 3:
			l.Match(0, &remove, addrN((i+2500)%5000), 64, at(float64(i)))
		}
		i++
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times per call, want 0", allocs)
	}
}

func BenchmarkMatch(b *testing.B) {
	tracked := benchTracked
	l := New([]rules.RecentList{{Name: "l", Size: tracked}})
	set := rules.RecentMatch{Op: rules.RecentSet}
	for i := range tracked {
		l.Match(0, &set, addrN(i), 64, at(0))
	}
	for _, bc := range []struct {
		name string
		m    rules.RecentMatch
	}{
		{"rcheck", rules.RecentMatch{Op: rules.RecentCheck, Seconds: time.Minute, HitCount: 2}},
		{"update", rules.RecentMatch{Op: rules.RecentUpdate, Seconds: time.Minute}},
		{"set", set},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				l.Match(0, &bc.m, addrN(i%tracked), 64, at(1))
				i++
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					l.Match(0, &bc.m, addrN(i%tracked), 64, at(1))
					i += 7
				}
			})
		})
	}
}

var benchTracked = 100_000

// TestMain runs the tests on the identity clock: they compare times built from fixed dates exactly.
func TestMain(m *testing.M) {
	clock.Set(clock.Identity{})
	os.Exit(m.Run())
}

package recent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nfqfw/nfqfw/rules"
)

// TestShare: sets on a list marked shared are handed over at most once per
// address per ShareEvery, the rest counted as coalesced; a full sink
// drops (counted); a list not marked shared hands nothing over.
func TestShare(t *testing.T) {
	sink := make(chan Set, 2)
	l := New([]rules.RecentList{{Name: "scan", Size: 100, Shared: true}, {Name: "own", Size: 100}}, WithShare(sink))
	set := rules.RecentMatch{Op: rules.RecentSet}
	scanner := a16("192.0.2.66")
	// A scan: 10 probes in 0.9 s, then one 1 s after the first.
	for k := range 10 {
		l.Match(0, &set, scanner, 64, at(float64(k)/10))
	}
	l.Match(0, &set, scanner, 64, at(1))
	l.Match(1, &set, scanner, 64, at(1)) // the list not shared
	want := []Set{
		{List: "scan", Addr: netip.MustParseAddr("192.0.2.66"), At: at(0)},
		{List: "scan", Addr: netip.MustParseAddr("192.0.2.66"), At: at(1)},
	}
	var got []Set
	for len(sink) > 0 {
		got = append(got, <-sink)
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("handed over (-want +got):\n%s", diff)
	}
	// The sink full: one more address is dropped, not blocked on.
	sink <- Set{}
	sink <- Set{}
	l.Match(0, &set, a16("192.0.2.67"), 64, at(2))
	st := l.Stats()
	if st[0].Shared != 2 || st[0].Coalesced != 9 || st[0].ShareDropped != 1 {
		t.Errorf("scan list stats %+v, want 2 shared, 9 coalesced, 1 dropped", st[0])
	}
	if st[1].Shared+st[1].Coalesced+st[1].ShareDropped != 0 {
		t.Errorf("the list not shared counts sharing: %+v", st[1])
	}
	// A dropped set is handed over at the address's next set.
	<-sink
	<-sink
	l.Match(0, &set, a16("192.0.2.67"), 64, at(2.1))
	if len(sink) != 1 {
		t.Errorf("the set after a dropped one is not handed over")
	}
}

// TestApply: a set made on another gateway lists the address with a hit
// at its time, so rcheck with seconds and hitcount count it; the same set
// applied twice is one hit; it is not handed over again; Walk and
// Snapshot name its origin, and Restore keeps it.
func TestApply(t *testing.T) {
	sink := make(chan Set, 8)
	l := New([]rules.RecentList{{Name: "scan", Size: 100, Shared: true}}, WithShare(sink))
	src := netip.MustParseAddr("198.51.100.7")
	check := func(sec time.Duration, hits int, now float64) bool {
		return l.Match(0, &rules.RecentMatch{Op: rules.RecentCheck, Seconds: sec, HitCount: hits}, src.As16(), 64, at(now))
	}
	if check(time.Minute, 0, 0) {
		t.Fatal("listed before any set")
	}
	if !l.Apply("scan", src, at(0), at(0.2), "gw-a") || !l.Apply("scan", src, at(0), at(0.2), "gw-a") {
		t.Fatal("Apply refused a declared list")
	}
	if l.Apply("nope", src, at(0), at(0.2), "gw-a") {
		t.Error("Apply accepted an undeclared list")
	}
	if !check(time.Minute, 1, 10) || check(time.Minute, 2, 10) {
		t.Error("one applied set is not exactly one hit within a minute")
	}
	if check(5*time.Second, 0, 10) {
		t.Error("a set 10 s ago matches a 5 s check")
	}
	l.Apply("scan", src, at(1), at(1.1), "gw-b")
	if !check(time.Minute, 2, 10) {
		t.Error("a second gateway's set is not a second hit")
	}
	// A set in the future (clock skew) counts as now.
	l.Apply("scan", netip.MustParseAddr("198.51.100.8"), at(100), at(3), "gw-b")
	if len(sink) != 0 {
		t.Errorf("applied sets handed over again: %d", len(sink))
	}
	want := map[string]string{"198.51.100.7": "gw-b", "198.51.100.8": "gw-b"}
	got := map[string]string{}
	l.Walk(func(e Entry) {
		got[e.Addr.String()] = e.Origin
		if e.Addr.String() == "198.51.100.8" && !e.LastSeen.Equal(time.Unix(0, at(3))) {
			t.Errorf("future set seen at %v, want clamped to now", e.LastSeen)
		}
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("origins (-want +got):\n%s", diff)
	}
	// A local set makes the entry this gateway's again.
	l.Match(0, &rules.RecentMatch{Op: rules.RecentSet}, src.As16(), 64, at(4))
	n := New([]rules.RecentList{{Name: "scan", Size: 100, Shared: true}})
	n.Restore(l.Snapshot(), at(5))
	got = map[string]string{}
	n.Walk(func(e Entry) { got[e.Addr.String()] = e.Origin })
	if diff := cmp.Diff(map[string]string{"198.51.100.7": "", "198.51.100.8": "gw-b"}, got); diff != "" {
		t.Errorf("origins after a local set and a restore (-want +got):\n%s", diff)
	}
}

func TestSharedMatchDoesNotAllocate(t *testing.T) {
	sink := make(chan Set, 1<<16)
	l := New([]rules.RecentList{{Name: "l", Size: 1000, Shared: true}}, WithShare(sink))
	set := rules.RecentMatch{Op: rules.RecentSet}
	i := 0
	allocs := testing.AllocsPerRun(20000, func() {
		if len(sink) > 1<<15 {
			for len(sink) > 0 {
				<-sink
			}
		}
		l.Match(0, &set, addrN(i%5000), 64, at(float64(i)/1000))
		i++
	})
	if allocs != 0 {
		t.Errorf("Match on a shared list allocates %v times per call, want 0", allocs)
	}
}

// BenchmarkSharedSet: a set on a list marked shared, a scan's probes from
// 100,000 sources, each set handed over at most once a second; a reader
// drains the sink as the daemon's publisher does.
func BenchmarkSharedSet(b *testing.B) {
	for _, shared := range []bool{false, true} {
		name := "not-shared"
		if shared {
			name = "shared"
		}
		b.Run(name, func(b *testing.B) {
			sink := make(chan Set, 4096)
			done := make(chan struct{})
			go func() {
				for range sink {
				}
				close(done)
			}()
			l := New([]rules.RecentList{{Name: "l", Size: 2 * benchTracked, Shared: shared}}, WithShare(sink))
			set := rules.RecentMatch{Op: rules.RecentSet}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				// 1 µs of scan time per probe: each source is probed every 0.1 s.
				l.Match(0, &set, addrN(i%benchTracked), 64, at(float64(i)/1e6))
				i++
			}
			b.StopTimer()
			close(sink)
			<-done
			st := l.Stats()[0]
			b.ReportMetric(float64(st.Shared)/float64(b.N), "published/op")
			b.ReportMetric(float64(st.Coalesced)/float64(b.N), "coalesced/op")
			b.ReportMetric(float64(st.ShareDropped)/float64(b.N), "dropped/op")
		})
	}
}

package guard

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/rules"
)

// TestAllows: an allow is refused when it is not one, too wide, or the
// table is full; it covers its scope until its expiry; no ban overlapping
// it is made, by a guard, by Add or by Apply, and each refusal is counted.
func TestAllows(t *testing.T) {
	now := clock.Wall(clock.Now())
	allow := func(scope string, d time.Duration) decision.Decision {
		return decision.Decision{Kind: decision.Allow, Scope: pfx(scope), Issued: now, Expires: now.Add(d)}
	}
	a := NewAllows()
	for _, tc := range []struct {
		name string
		d    decision.Decision
		ok   bool
		err  error
	}{
		{"an address", allow("192.0.2.7/32", time.Hour), true, nil},
		{"an IPv6 /64", allow("2001:db8:1:2::/64", time.Minute), true, nil},
		{"the same again", allow("192.0.2.7/32", time.Hour), false, nil},
		{"already ended", allow("192.0.2.8/32", -time.Second), false, nil},
		{"wider than a /8", allow("10.0.0.0/7", time.Hour), false, ErrBadScope},
		{"a ban", decision.Decision{Kind: decision.Ban, Scope: pfx("192.0.2.9/32"), Expires: now.Add(time.Hour)}, false, ErrKind},
	} {
		ok, err := a.Add(tc.d, now)
		if ok != tc.ok || !errors.Is(err, tc.err) {
			t.Errorf("%s: Add = %v, %v; want %v, %v", tc.name, ok, err, tc.ok, tc.err)
		}
	}
	n := clock.Now()
	a16 := func(s string) [16]byte { return netip.MustParseAddr(s).As16() }
	for addr, want := range map[string]bool{"::ffff:192.0.2.7": true, "2001:db8:1:2::99": true, "192.0.2.8": false, "2001:db8:1:3::1": false} {
		if got := a.Covers(a16(addr), n); got != want {
			t.Errorf("Covers(%s) = %v, want %v", addr, got, want)
		}
	}
	if a.Covers(a16("2001:db8:1:2::99"), n+int64(2*time.Minute)) {
		t.Error("an allow covers after its expiry")
	}

	b := NewBans(BanOptions{})
	b.SetAllows(a)
	spec := rules.BanSpec{Duration: time.Minute} // an IPv6 offender's /64
	if until := b.Ban(a16("2001:db8:1:2::1"), spec, "ssh", "r", n); !until.IsZero() || b.IsBanned(a16("2001:db8:1:2::1"), n) {
		t.Error("a guard banned a /64 an allow covers")
	}
	if _, err := b.Add(pfx("192.0.2.0/24"), time.Hour, "r", n); !errors.Is(err, ErrAllowed) {
		t.Errorf("Add of a prefix around an allow = %v, want ErrAllowed", err)
	}
	ban := decision.Decision{Kind: decision.Ban, Scope: pfx("192.0.2.7/32"), Expires: now.Add(time.Hour), Origin: "gw-c"}
	if _, err := b.Apply(ban, n); !errors.Is(err, ErrAllowed) {
		t.Errorf("Apply of a ban inside an allow = %v, want ErrAllowed", err)
	}
	if own, remote := b.AllowRefused(); own != 2 || remote != 1 {
		t.Errorf("refusals counted %d own, %d remote; want 2 and 1", own, remote)
	}
	if _, err := b.Add(pfx("192.0.2.8/32"), time.Hour, "r", n); err != nil {
		t.Errorf("a ban beside the allow: %v", err)
	}

	g := New([]rules.Guard{{Name: "g", Limits: []rules.RateLimit{{Count: 1, Window: time.Minute}}, Ban: &spec}}, nil, b)
	g.SetAllows(a)
	for i := range 5 {
		if !g.Allow(0, a16("::ffff:192.0.2.7"), n+int64(i)) {
			t.Fatalf("attempt %d of an allowed source refused", i)
		}
	}

	ended := a.Expire(now.Add(2 * time.Minute))
	if len(ended) != 1 || ended[0].Scope != pfx("2001:db8:1:2::/64") || len(a.List(now)) != 1 {
		t.Errorf("Expire ended %v, left %v", ended, a.List(now))
	}
	if !a.Del(pfx("192.0.2.7/32")) || a.Del(pfx("192.0.2.7/32")) || a.Len() != 0 {
		t.Error("Del does not end exactly one allow")
	}

	for i := range MaxAllows {
		if _, err := a.Add(allow(fmt.Sprintf("10.%d.%d.1/32", i/256, i%256), time.Hour), now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Add(allow("10.200.0.1/32", time.Hour), now); !errors.Is(err, ErrAllowsFull) {
		t.Errorf("allow %d = %v, want ErrAllowsFull", MaxAllows+1, err)
	}
	r := NewAllows()
	if got := r.Restore(a.Snapshot(), now); got != MaxAllows {
		t.Errorf("restored %d allows, want %d", got, MaxAllows)
	}
}

func TestCoversDoesNotAllocate(t *testing.T) {
	a := NewAllows()
	now := clock.Wall(clock.Now())
	a.Add(decision.Decision{Kind: decision.Allow, Scope: pfx("192.0.2.0/24"), Expires: now.Add(time.Hour)}, now)
	src := pfx("198.51.100.1/32").Addr().As16()
	if n := testing.AllocsPerRun(1000, func() { a.Covers(src, clock.Now()) }); n != 0 {
		t.Errorf("Covers allocates %v times", n)
	}
}

// BenchmarkCovers: the check of a new connection's source against the
// allows in force, none of which covers it (the scan goes to the end).
func BenchmarkCovers(b *testing.B) {
	now := clock.Wall(clock.Now())
	src := netip.MustParseAddr("198.51.100.1").As16()
	for _, n := range []int{0, 16, MaxAllows} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			a := NewAllows()
			for i := range n {
				a.Add(decision.Decision{Kind: decision.Allow, Scope: pfx(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)), Expires: now.Add(time.Hour)}, now)
			}
			t := clock.Now()
			b.ReportAllocs()
			for b.Loop() {
				a.Covers(src, t)
			}
		})
	}
}

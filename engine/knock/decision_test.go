package knock

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/rules"
)

// TestKnockDecisions: a completed sequence is reported as a window opened
// for its source until its close, a one-shot completion also as the use
// of its steps; applied on another Knocker, the window admits the source
// and the use refuses the replay there, and applying twice changes
// nothing.
func TestKnockDecisions(t *testing.T) {
	var got []decision.Decision
	a := New([]rules.Knock{seqSSH, seqOnce}, WithDecisions(func(d decision.Decision) { got = append(got, d) }))
	src := a16("192.0.2.7")
	now := t0.Add(sec(1)).UnixNano()
	for _, p := range []uint16{7300, 7400} {
		a.Observe(src, server, true, tcp, p, now)
	}
	scope := netip.MustParsePrefix("192.0.2.7/32")
	want := []decision.Decision{
		{Kind: decision.KnockUse, Scope: scope, Issued: t0.Add(sec(1)), Expires: t0.Add(sec(31)), Source: "once", Sequence: "once"},
		{Kind: decision.KnockWindow, Scope: scope, Issued: t0.Add(sec(1)), Expires: t0.Add(sec(31)), Source: "once", Sequence: "once"},
	}
	opts := cmp.Options{cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Fatalf("reported decisions (-want +got):\n%s", diff)
	}
	for _, d := range got {
		if err := d.Validate(); err != nil {
			t.Errorf("%v: %v", d, err)
		}
	}

	// Gateway B learns both; nothing is reported back.
	var echoed int
	b := New([]rules.Knock{seqSSH, seqOnce}, WithDecisions(func(decision.Decision) { echoed++ }))
	once := b.Index("once")
	later := t0.Add(sec(2)).UnixNano()
	for _, d := range got {
		for i, want := range []bool{true, false} {
			if changed, err := b.Apply(d, later); err != nil || changed != want {
				t.Errorf("Apply(%v) #%d = %v, %v; want %v", d, i+1, changed, err, want)
			}
		}
	}
	if !b.Allowed(once, src, server, tcp, 22, later) {
		t.Error("the window applied from elsewhere does not admit its source")
	}
	if b.Allowed(once, src, server, tcp, 22, t0.Add(sec(31)).UnixNano()) {
		t.Error("the applied window outlives its expiry")
	}
	// A replay on B, by another source, is refused.
	other := a16("198.51.100.1")
	for _, p := range []uint16{7300, 7400} {
		b.Observe(other, server, true, tcp, p, later)
	}
	if b.Allowed(once, other, server, tcp, 22, later) || echoed != 0 {
		t.Errorf("replay of a one-shot use made elsewhere: admitted %v, %d decisions reported", b.Allowed(once, other, server, tcp, 22, later), echoed)
	}

	for _, bad := range []struct {
		d    decision.Decision
		want error
	}{
		{decision.Decision{Kind: decision.KnockWindow, Scope: scope, Expires: t0.Add(time.Hour), Sequence: "nope"}, ErrUnknownKnock},
		{decision.Decision{Kind: decision.Ban, Scope: scope, Expires: t0.Add(time.Hour)}, ErrKind},
		{decision.Decision{Kind: decision.KnockWindow, Scope: scope, Sequence: "ssh"}, decision.ErrInvalid},
	} {
		if _, err := b.Apply(bad.d, later); !errors.Is(err, bad.want) {
			t.Errorf("Apply(%v) = %v, want %v", bad.d, err, bad.want)
		}
	}
}

// TestRotatingUseCarriesTimeStep: the use of a rotating one-shot sequence
// names the time step whose ports were used.
func TestRotatingUseCarriesTimeStep(t *testing.T) {
	rot := seqRot
	rot.OneShot = true
	var got []decision.Decision
	k := New([]rules.Knock{rot}, WithDecisions(func(d decision.Decision) { got = append(got, d) }))
	now := t0.Add(sec(1))
	for _, st := range Sequence(rot, now) {
		k.Observe(a16("192.0.2.7"), server, true, st.Proto, st.Port, now.UnixNano())
	}
	if len(got) != 2 || got[0].Kind != decision.KnockUse || got[0].TimeStep != now.UnixNano()/int64(30*time.Second) {
		t.Fatalf("decisions %+v, want a use naming time step %d first", got, now.UnixNano()/int64(30*time.Second))
	}
}

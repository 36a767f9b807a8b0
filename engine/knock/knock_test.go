package knock

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/rules"
)

const (
	tcp = 6
	udp = 17
)

// t0 is the start of every scenario, on a 30 s boundary.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ports(ps ...uint16) []rules.PortRange {
	var rs []rules.PortRange
	for _, p := range ps {
		rs = append(rs, rules.PortRange{First: p, Last: p})
	}
	return rs
}

// The sequences of the scenarios.
var (
	// ssh: tcp/7000 udp/8000 tcp/9000 opens tcp/22 for 30 s.
	seqSSH = rules.Knock{
		Name:       "ssh",
		Steps:      []rules.KnockStep{{Proto: tcp, Port: 7000}, {Proto: udp, Port: 8000}, {Proto: tcp, Port: 9000}},
		StepWindow: 5 * time.Second,
		Window:     8 * time.Second,
		Open:       []rules.Open{{Proto: tcp, Ports: ports(22)}},
		OpenFor:    30 * time.Second,
	}
	// web: tcp/1111 tcp/2222 opens tcp/80 to 10.9.0.0/24 only (a gateway).
	seqWeb = rules.Knock{
		Name:       "web",
		Steps:      []rules.KnockStep{{Proto: tcp, Port: 1111}, {Proto: tcp, Port: 2222}},
		StepWindow: 5 * time.Second,
		Open:       []rules.Open{{Proto: tcp, Ports: ports(80), Dst: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")}}},
		OpenFor:    30 * time.Second,
	}
	// keep: like ssh on 7100/7200, with keep_open.
	seqKeep = rules.Knock{
		Name:       "keep",
		Steps:      []rules.KnockStep{{Proto: tcp, Port: 7100}, {Proto: tcp, Port: 7200}},
		StepWindow: 5 * time.Second,
		Open:       []rules.Open{{Proto: tcp, Ports: ports(22)}},
		OpenFor:    30 * time.Second,
		KeepOpen:   true,
	}
	// once: one-shot on 7300/7400.
	seqOnce = rules.Knock{
		Name:       "once",
		Steps:      []rules.KnockStep{{Proto: tcp, Port: 7300}, {Proto: tcp, Port: 7400}},
		StepWindow: 5 * time.Second,
		Open:       []rules.Open{{Proto: tcp, Ports: ports(22)}},
		OpenFor:    30 * time.Second,
		OneShot:    true,
	}
	// rot: three rotating steps (tcp, udp, tcp), 30 s period, skew 1.
	seqRot = rules.Knock{
		Name:       "rot",
		Steps:      []rules.KnockStep{{Proto: tcp}, {Proto: udp}, {Proto: tcp}},
		StepWindow: 5 * time.Second,
		Window:     10 * time.Second,
		Open:       []rules.Open{{Proto: tcp, Ports: ports(22)}},
		OpenFor:    30 * time.Second,
		Secret:     "correct horse battery staple",
		Period:     30 * time.Second,
		Skew:       1,
		OneShot:    true,
	}
)

func a16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

func withResetAny(k rules.Knock) rules.Knock { k.ResetOnAnyPort = true; return k }

func withTarget(k rules.Knock, prefix string) rules.Knock {
	k.Dst = []netip.Prefix{netip.MustParsePrefix(prefix)}
	return k
}

var (
	srcA   = "192.0.2.10"
	srcB   = "198.51.100.7"
	srcV6  = "2001:db8::42"
	server = a16("10.9.0.1")
)

// event is one step of a scenario: a NEW packet given to Observe (seq
// empty) or a NEW connection given to Allowed for sequence seq.
type event struct {
	at    time.Duration // since t0
	src   string
	seq   string // "" for Observe
	proto uint8
	port  uint16
	dst   string // "" means server; for Observe, a packet to dst is routed through, not addressed to the host
	want  bool   // Observe: a knock; Allowed: admitted
}

func knockAt(at time.Duration, src string, proto uint8, port uint16, want bool) event {
	return event{at: at, src: src, proto: proto, port: port, want: want}
}

func connAt(at time.Duration, src, seq string, port uint16, want bool) event {
	return event{at: at, src: src, seq: seq, proto: tcp, port: port, want: want}
}

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// run plays events through k and reports mismatches.
func run(t *testing.T, k *Knocker, events []event) {
	t.Helper()
	for n, ev := range events {
		now := t0.Add(ev.at).UnixNano()
		dst := server
		if ev.dst != "" {
			dst = a16(ev.dst)
		}
		var got bool
		var what string
		if ev.seq == "" {
			got = k.Observe(a16(ev.src), dst, ev.dst == "", ev.proto, ev.port, now)
			what = fmt.Sprintf("Observe(%s %s/%d)", ev.src, protoName(ev.proto), ev.port)
		} else {
			got = k.Allowed(k.Index(ev.seq), a16(ev.src), dst, ev.proto, ev.port, now)
			what = fmt.Sprintf("Allowed(%s, %s %s/%d)", ev.seq, ev.src, protoName(ev.proto), ev.port)
		}
		if got != ev.want {
			t.Errorf("event %d at %v: %s = %v, want %v", n, ev.at, what, got, ev.want)
		}
	}
}

// failures renders Status failures as "src sequence reason", oldest first.
func failures(st Status) []string {
	out := []string{}
	for i := len(st.Failures) - 1; i >= 0; i-- {
		f := st.Failures[i]
		out = append(out, fmt.Sprintf("%s %s %s", f.Source, f.Sequence, f.Reason))
	}
	return out
}

func TestSequences(t *testing.T) {
	tests := []struct {
		name         string
		knocks       []rules.Knock
		events       []event
		wantFailures []string
	}{
		{
			name:   "right order opens for that source only",
			knocks: []rules.Knock{seqSSH},
			events: []event{
				connAt(0, srcA, "ssh", 22, false),
				knockAt(sec(1), srcA, tcp, 7000, true),
				knockAt(sec(2), srcA, udp, 8000, true),
				knockAt(sec(3), srcA, tcp, 9000, true),
				connAt(sec(4), srcA, "ssh", 22, true),
				connAt(sec(4), srcA, "ssh", 23, false),
				{at: sec(4), src: srcA, seq: "ssh", proto: udp, port: 22, want: false},
				connAt(sec(4), srcB, "ssh", 22, false),
				knockAt(sec(5), srcA, tcp, 22, false), // the admitted connection itself is no knock
			},
		},
		{
			name:   "a port that is not a knock goes to the policy",
			knocks: []rules.Knock{seqSSH},
			events: []event{
				knockAt(0, srcA, tcp, 22, false),
				knockAt(0, srcA, udp, 7000, false), // right port, wrong protocol
				knockAt(0, srcA, tcp, 8000, false), // second step without the first
				knockAt(0, srcA, 1, 0, false),      // ICMP
			},
		},
		{
			name:   "a step out of order resets",
			knocks: []rules.Knock{seqSSH},
			events: []event{
				knockAt(sec(1), srcA, tcp, 7000, true),
				knockAt(sec(2), srcA, tcp, 9000, false),
				knockAt(sec(3), srcA, udp, 8000, false),
				connAt(sec(4), srcA, "ssh", 22, false),
			},
			wantFailures: []string{"192.0.2.10 ssh wrong_port"},
		},
		{
			name:   "ordinary traffic to ports of no step leaves the progress alone",
			knocks: []rules.Knock{seqSSH},
			events: []event{
				knockAt(sec(1), srcA, tcp, 7000, true),
				knockAt(sec(2), srcA, udp, 8000, true),
				knockAt(sec(2.5), srcA, tcp, 80, false),
				knockAt(sec(2.6), srcA, udp, 53, false),
				knockAt(sec(3), srcA, tcp, 9000, true),
				connAt(sec(4), srcA, "ssh", 22, true),
			},
		},
		{
			name:   "reset: any resets on any other port",
			knocks: []rules.Knock{withResetAny(seqSSH)},
			events: []event{
				knockAt(sec(1), srcA, tcp, 7000, true),
				knockAt(sec(2), srcA, udp, 8000, true),
				knockAt(sec(2.5), srcA, tcp, 80, false),
				knockAt(sec(3), srcA, tcp, 9000, false),
				connAt(sec(4), srcA, "ssh", 22, false),
			},
			wantFailures: []string{"192.0.2.10 ssh wrong_port"},
		},
		{
			name:   "forwarded packets are no steps of a sequence for the host",
			knocks: []rules.Knock{seqSSH},
			events: []event{
				{at: sec(1), src: srcA, proto: tcp, port: 7000, dst: "10.8.0.9", want: false},
				knockAt(sec(2), srcA, tcp, 7000, true),
				{at: sec(2.5), src: srcA, proto: udp, port: 8000, dst: "10.8.0.9", want: false},
				{at: sec(2.6), src: srcA, proto: tcp, port: 9000, dst: "10.8.0.9", want: false}, // no reset either
				knockAt(sec(3), srcA, udp, 8000, true),
				knockAt(sec(4), srcA, tcp, 9000, true),
				connAt(sec(5), srcA, "ssh", 22, true),
			},
		},
		{
			name:   "a sequence with a target counts only what is addressed to it",
			knocks: []rules.Knock{withTarget(seqSSH, "10.8.0.9/32")},
			events: []event{
				knockAt(sec(1), srcA, tcp, 7000, false), // to the gateway itself
				{at: sec(2), src: srcA, proto: tcp, port: 7000, dst: "10.8.0.9", want: true},
				{at: sec(3), src: srcA, proto: udp, port: 8000, dst: "10.8.0.10", want: false},
				{at: sec(3.5), src: srcA, proto: udp, port: 8000, dst: "10.8.0.9", want: true},
				{at: sec(4), src: srcA, proto: tcp, port: 9000, dst: "10.8.0.9", want: true},
				connAt(sec(5), srcA, "ssh", 22, true),
			},
		},
		{
			name:   "first step again restarts the sequence",
			knocks: []rules.Knock{seqSSH},
			events: []event{
				knockAt(sec(1), srcA, tcp, 7000, true),
				knockAt(sec(2), srcA, udp, 8000, true),
				knockAt(sec(3), srcA, tcp, 7000, true),
				knockAt(sec(4), srcA, udp, 8000, true),
				knockAt(sec(5), srcA, tcp, 9000, true),
				connAt(sec(6), srcA, "ssh", 22, true),
			},
			wantFailures: []string{"192.0.2.10 ssh wrong_port"},
		},
		{
			name:   "step timeout resets",
			knocks: []rules.Knock{seqSSH},
			events: []event{
				knockAt(sec(1), srcA, tcp, 7000, true),
				knockAt(sec(6), srcA, udp, 8000, false), // 5 s after the first step
				knockAt(sec(7), srcA, tcp, 9000, false),
				connAt(sec(7), srcA, "ssh", 22, false),
			},
			wantFailures: []string{"192.0.2.10 ssh timeout"},
		},
		{
			name:   "whole window timeout resets",
			knocks: []rules.Knock{seqSSH},
			events: []event{
				knockAt(sec(1), srcA, tcp, 7000, true),
				knockAt(sec(5), srcA, udp, 8000, true),
				knockAt(sec(9), srcA, tcp, 9000, false), // 8 s after the first step
				connAt(sec(9), srcA, "ssh", 22, false),
			},
			wantFailures: []string{"192.0.2.10 ssh timeout"},
		},
		{
			name:   "retransmitted SYNs do not reset",
			knocks: []rules.Knock{seqSSH},
			events: []event{
				knockAt(sec(1), srcA, tcp, 7000, true),
				knockAt(sec(2), srcA, tcp, 7000, true),
				knockAt(sec(2.5), srcA, udp, 8000, true),
				knockAt(sec(3), srcA, udp, 8000, true),
				knockAt(sec(4), srcA, tcp, 9000, true),
				connAt(sec(5), srcA, "ssh", 22, true),
			},
		},
		{
			name:   "two sequences interleaved both open",
			knocks: []rules.Knock{seqSSH, seqWeb},
			events: []event{
				knockAt(sec(1), srcA, tcp, 7000, true),
				knockAt(sec(1.5), srcA, tcp, 1111, true),
				knockAt(sec(2), srcA, udp, 8000, true),
				knockAt(sec(2.5), srcA, tcp, 2222, true),
				knockAt(sec(3), srcA, tcp, 9000, true),
				connAt(sec(4), srcA, "ssh", 22, true),
				connAt(sec(4), srcA, "web", 80, true),
				connAt(sec(4), srcA, "web", 22, false),
				{at: sec(4), src: srcA, seq: "web", proto: tcp, port: 80, dst: "10.8.0.1", want: false},
				connAt(sec(4), srcA, "nosuch", 22, false),
			},
		},
		{
			name:   "two sources progress independently",
			knocks: []rules.Knock{seqSSH},
			events: []event{
				knockAt(sec(1), srcA, tcp, 7000, true),
				knockAt(sec(1), srcB, tcp, 7000, true),
				knockAt(sec(2), srcB, tcp, 9000, false), // a step out of order: resets B only
				knockAt(sec(2), srcA, udp, 8000, true),
				knockAt(sec(3), srcA, tcp, 9000, true),
				connAt(sec(4), srcA, "ssh", 22, true),
				connAt(sec(4), srcB, "ssh", 22, false),
			},
			wantFailures: []string{"198.51.100.7 ssh wrong_port"},
		},
		{
			name:   "IPv6 source",
			knocks: []rules.Knock{seqSSH},
			events: []event{
				knockAt(sec(1), srcV6, tcp, 7000, true),
				knockAt(sec(2), srcV6, udp, 8000, true),
				knockAt(sec(3), srcV6, tcp, 9000, true),
				{at: sec(4), src: srcV6, seq: "ssh", proto: tcp, port: 22, dst: "2001:db8::1", want: true},
				connAt(sec(4), srcA, "ssh", 22, false),
			},
		},
		{
			name:   "window closes after open_for",
			knocks: []rules.Knock{seqSSH},
			events: []event{
				knockAt(sec(1), srcA, tcp, 7000, true),
				knockAt(sec(2), srcA, udp, 8000, true),
				knockAt(sec(3), srcA, tcp, 9000, true), // open until 33 s
				connAt(sec(20), srcA, "ssh", 22, true),
				connAt(sec(32.9), srcA, "ssh", 22, true),
				connAt(sec(33), srcA, "ssh", 22, false),
			},
		},
		{
			name:   "keep_open refreshes the window with each admitted connection",
			knocks: []rules.Knock{seqKeep},
			events: []event{
				knockAt(sec(1), srcA, tcp, 7100, true),
				knockAt(sec(2), srcA, tcp, 7200, true),   // open until 32 s
				connAt(sec(30), srcA, "keep", 22, true),  // now until 60 s
				connAt(sec(59), srcA, "keep", 22, true),  // now until 89 s
				connAt(sec(88), srcA, "keep", 23, false), // not admitted: no refresh
				connAt(sec(89), srcA, "keep", 22, false),
			},
		},
		{
			name:   "one_shot refuses a replay by any source until the window closes",
			knocks: []rules.Knock{seqOnce},
			events: []event{
				knockAt(sec(1), srcA, tcp, 7300, true),
				knockAt(sec(2), srcA, tcp, 7400, true), // open until 32 s
				knockAt(sec(3), srcB, tcp, 7300, true), // the replay is still dropped
				knockAt(sec(4), srcB, tcp, 7400, true),
				connAt(sec(5), srcB, "once", 22, false),
				knockAt(sec(6), srcA, tcp, 7300, true), // the owner cannot extend it either
				knockAt(sec(7), srcA, tcp, 7400, true),
				connAt(sec(8), srcA, "once", 22, true),
				knockAt(sec(40), srcB, tcp, 7300, true), // after the window
				knockAt(sec(41), srcB, tcp, 7400, true),
				connAt(sec(42), srcB, "once", 22, true),
				connAt(sec(42), srcA, "once", 22, false),
			},
			wantFailures: []string{"198.51.100.7 once replay", "192.0.2.10 once replay"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := New(tt.knocks)
			run(t, k, tt.events)
			last := tt.events[len(tt.events)-1].at
			want := tt.wantFailures
			if want == nil {
				want = []string{}
			}
			if diff := cmp.Diff(want, failures(k.Status(t0.Add(last).UnixNano()))); diff != "" {
				t.Errorf("failures (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRotatingSequence(t *testing.T) {
	period := seqRot.Period
	// rot returns the event knocking step i of the sequence valid at t0+at+shift.
	rot := func(at time.Duration, shift time.Duration, i int, src string, want bool) event {
		st := Sequence(seqRot, t0.Add(at+shift))[i]
		return knockAt(at, src, st.Proto, st.Port, want)
	}
	all := func(at, shift time.Duration, src string, want bool) []event {
		return []event{
			rot(at, shift, 0, src, want),
			rot(at+sec(1), shift, 1, src, want),
			rot(at+sec(2), shift, 2, src, want),
		}
	}
	tests := []struct {
		name   string
		events []event
		open   bool // srcA admitted at the end
	}{
		{"current time step opens", all(sec(1), 0, srcA, true), true},
		{"previous time step accepted within skew", all(sec(1), -period, srcA, true), true},
		{"next time step accepted within skew", all(sec(1), period, srcA, true), true},
		{"two time steps old is refused", all(sec(1), -2*period, srcA, false), false},
		{
			name: "a sequence started before a time step boundary completes after it",
			events: []event{
				rot(sec(28), 0, 0, srcA, true),
				rot(sec(29), 0, 1, srcA, true),
				rot(sec(31), -sec(31), 2, srcA, true), // ports of the time step it started in
			},
			open: true,
		},
		{
			name: "a sniffed sequence replayed by another source is refused",
			events: append(all(sec(1), 0, srcA, true),
				append(all(sec(10), -sec(10), srcB, true),
					connAt(sec(15), srcB, "rot", 22, false))...),
			open: true,
		},
		{
			name: "a sniffed sequence is useless once its time step is past the skew",
			events: append(all(sec(1), 0, srcA, true),
				all(sec(60), -sec(60), srcB, false)...),
			open: false, // srcA's window (30 s) has closed by then
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := New([]rules.Knock{seqRot})
			run(t, k, tt.events)
			end := tt.events[len(tt.events)-1].at + sec(1)
			if got := k.Allowed(k.Index("rot"), a16(srcA), server, tcp, 22, t0.Add(end).UnixNano()); got != tt.open {
				t.Errorf("Allowed(srcA) at %v = %v, want %v", end, got, tt.open)
			}
		})
	}
}

func TestSequenceDerivation(t *testing.T) {
	a := Sequence(seqRot, t0)
	if diff := cmp.Diff(a, Sequence(seqRot, t0.Add(29*time.Second))); diff != "" {
		t.Errorf("same time step, different sequence (-want +got):\n%s", diff)
	}
	if b := Sequence(seqRot, t0.Add(30*time.Second)); cmp.Equal(a, b) {
		t.Errorf("next time step gives the same sequence %v", a)
	}
	other := seqRot
	other.Secret = "another secret"
	if b := Sequence(other, t0); cmp.Equal(a, b) {
		t.Errorf("another secret gives the same sequence %v", a)
	}
	for i, st := range a {
		if st.Proto != seqRot.Steps[i].Proto || st.Port < RotatingPortLow || st.Port > RotatingPortHigh {
			t.Errorf("step %d = %+v, want proto %d and a port in %d-%d", i, st, seqRot.Steps[i].Proto, RotatingPortLow, RotatingPortHigh)
		}
	}
	if diff := cmp.Diff(seqSSH.Steps, Sequence(seqSSH, t0)); diff != "" {
		t.Errorf("static sequence (-want +got):\n%s", diff)
	}
}

func TestSnapshotRestore(t *testing.T) {
	old := New([]rules.Knock{seqSSH, seqWeb, seqOnce})
	run(t, old, []event{
		knockAt(sec(1), srcA, tcp, 7000, true),
		knockAt(sec(2), srcA, udp, 8000, true),
		knockAt(sec(3), srcA, tcp, 9000, true),  // ssh open until 33 s
		knockAt(sec(4), srcV6, tcp, 7000, true), // in progress until 9 s
		knockAt(sec(4), srcB, tcp, 1111, true),  // web in progress until 9 s
		knockAt(sec(5), srcB, tcp, 7300, true),
		knockAt(sec(6), srcB, tcp, 7400, true), // once open until 36 s, replay refused until then
	})
	// Through JSON, as the daemon writes it to its state directory.
	b, err := json.Marshal(old.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var snap Snap
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}

	now := t0.Add(sec(7)).UnixNano()
	t.Run("same configuration keeps remaining times", func(t *testing.T) {
		k := New([]rules.Knock{seqSSH, seqWeb, seqOnce})
		k.Restore(snap, now)
		want, got := old.Status(now), k.Status(now)
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Status{}, "Failures"), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
			t.Errorf("Status after Restore (-want +got):\n%s", diff)
		}
		run(t, k, []event{
			knockAt(sec(8), srcV6, udp, 8000, true),
			knockAt(sec(8), srcV6, tcp, 9000, true),
			connAt(sec(9), srcV6, "ssh", 22, true),
			knockAt(sec(10), srcA, tcp, 7300, true),
			knockAt(sec(10), srcA, tcp, 7400, true), // replay refusal survived
			connAt(sec(11), srcA, "once", 22, false),
			connAt(sec(32), srcA, "ssh", 22, true),
			connAt(sec(33), srcA, "ssh", 22, false),
		})
	})
	t.Run("reload drops removed sequences and progress of changed ones", func(t *testing.T) {
		changed := seqSSH
		changed.Steps = []rules.KnockStep{{Proto: tcp, Port: 7000}, {Proto: tcp, Port: 7777}}
		k := New([]rules.Knock{changed})
		k.Restore(snap, now)
		want := Status{
			Now:      time.Unix(0, now),
			Progress: []Progress{},
			Open:     []OpenWindow{{Source: netip.MustParseAddr(srcA), Sequence: "ssh", Opens: "tcp/22", TimeLeft: 26 * time.Second}},
			Failures: []Failure{},
		}
		if diff := cmp.Diff(want, k.Status(now), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
			t.Errorf("Status after Restore (-want +got):\n%s", diff)
		}
	})
	t.Run("restart after the windows closed restores nothing", func(t *testing.T) {
		k := New([]rules.Knock{seqSSH, seqWeb, seqOnce})
		later := t0.Add(sec(40)).UnixNano()
		k.Restore(snap, later)
		st := k.Status(later)
		if len(st.Progress)+len(st.Open) != 0 {
			t.Errorf("Status = %+v, want nothing", st)
		}
	})
}

func TestExpireAndStats(t *testing.T) {
	k := New([]rules.Knock{seqSSH, withResetAny(seqWeb)})
	run(t, k, []event{
		knockAt(sec(1), srcA, tcp, 7000, true),
		knockAt(sec(2), srcA, udp, 8000, true),
		knockAt(sec(3), srcA, tcp, 9000, true),
		knockAt(sec(3), srcB, tcp, 7000, true),
		knockAt(sec(3), srcV6, tcp, 1111, true),
		knockAt(sec(4), srcV6, tcp, 9999, false), // web resets on any port
	})
	type counts struct {
		Successes        uint64
		Failures         [NumFailReasons]uint64
		InProgress, Open int
	}
	get := func() map[string]counts {
		m := map[string]counts{}
		for _, s := range k.Stats().Sequences {
			m[s.Name] = counts{s.Successes, s.Failures, s.InProgress, s.Open}
		}
		return m
	}
	want := map[string]counts{
		"ssh": {Successes: 1, InProgress: 1, Open: 1},
		"web": {Failures: [NumFailReasons]uint64{FailWrongPort: 1}},
	}
	if diff := cmp.Diff(want, get()); diff != "" {
		t.Errorf("Stats before Expire (-want +got):\n%s", diff)
	}
	k.Expire(t0.Add(sec(40)).UnixNano())
	want = map[string]counts{
		"ssh": {Successes: 1, Failures: [NumFailReasons]uint64{FailTimeout: 1}},
		"web": {Failures: [NumFailReasons]uint64{FailWrongPort: 1}},
	}
	if diff := cmp.Diff(want, get()); diff != "" {
		t.Errorf("Stats after Expire (-want +got):\n%s", diff)
	}
	// The timeout is recorded when it happened, not when Expire noticed.
	st := k.Status(t0.Add(sec(40)).UnixNano())
	if len(st.Failures) != 2 || !st.Failures[0].When.Equal(t0.Add(sec(8))) || st.Failures[0].Reason != FailTimeout {
		t.Errorf("failures = %+v, want the timeout of %s at 8 s first", st.Failures, srcB)
	}
}

func TestEviction(t *testing.T) {
	k := New([]rules.Knock{seqSSH}, WithMaxSources(16))
	src := func(i int) string { return fmt.Sprintf("10.0.0.%d", i) }
	for i := range 20 {
		run(t, k, []event{knockAt(sec(1), src(i), tcp, 7000, true)})
	}
	if got := k.Stats().Evicted; got != 4 {
		t.Errorf("Evicted = %d, want 4", got)
	}
	// The four least recently active sources lost their progress.
	run(t, k, []event{
		knockAt(sec(2), src(0), udp, 8000, false),
		knockAt(sec(2), src(3), udp, 8000, false),
		knockAt(sec(2), src(4), udp, 8000, true),
		knockAt(sec(2), src(19), udp, 8000, true),
	})
}

func TestAllocs(t *testing.T) {
	for _, max := range []int{DefaultMaxSources, 256} { // 256: every insert evicts
		t.Run(fmt.Sprintf("max %d sources", max), func(t *testing.T) { testAllocs(t, max) })
	}
}

func testAllocs(t *testing.T, maxSources int) {
	k := New([]rules.Knock{seqSSH, seqWeb, seqKeep, seqOnce, seqRot}, WithMaxSources(maxSources))
	now := t0.Add(sec(1)).UnixNano()
	k.Expire(now)
	rot := Sequence(seqRot, t0)
	srcs := make([][16]byte, 4096)
	for i := range srcs {
		srcs[i] = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).As16()
	}
	n := 0
	observe := func() {
		src := srcs[n%len(srcs)]
		n++
		k.Observe(src, server, true, tcp, 7000, now)
		k.Observe(src, server, true, udp, 8000, now)
		k.Observe(src, server, true, tcp, 9000, now)
		k.Observe(src, server, true, tcp, 1111, now)
		k.Observe(src, server, true, tcp, 443, now) // wrong port: resets web
		k.Observe(src, server, true, rot[0].Proto, rot[0].Port, now)
		k.Observe(src, server, true, rot[1].Proto, rot[1].Port, now)
	}
	// Grow the tables to the working set first: they start small.
	for range 2 * len(srcs) {
		observe()
	}
	if a := testing.AllocsPerRun(10000, observe); a != 0 {
		t.Errorf("Observe: %v allocations per run, want 0", a)
	}
	if m := exactMallocs(20000, observe); m != 0 {
		t.Errorf("Observe: %d allocations in 20000 runs, want 0", m)
	}
	ssh := k.Index("ssh")
	allowed := func() {
		src := srcs[n%len(srcs)]
		n++
		k.Allowed(ssh, src, server, tcp, 22, now)
		k.Allowed(ssh, src, server, tcp, 23, now)
	}
	if a := testing.AllocsPerRun(10000, allowed); a != 0 {
		t.Errorf("Allowed: %v allocations per run, want 0", a)
	}
	if m := exactMallocs(20000, allowed); m != 0 {
		t.Errorf("Allowed: %d allocations in 20000 runs, want 0", m)
	}
}

// exactMallocs counts every allocation of runs calls of f, where
// testing.AllocsPerRun rounds the average down and so hides an allocation
// every few calls.
func exactMallocs(runs int, f func()) uint64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// benchSources returns n distinct sources, IPv4 and IPv6 mixed.
func benchSources(n int) [][16]byte {
	srcs := make([][16]byte, n)
	for i := range srcs {
		if i%4 == 3 {
			srcs[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}).As16()
		} else {
			srcs[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).As16()
		}
	}
	return srcs
}

// BenchmarkObserve100k: 100k sources knock the ssh sequence, one step per
// operation in turn, all tracked (capacity above 100k); every third
// operation completes a sequence and opens a window.
func BenchmarkObserve100k(b *testing.B) {
	benchObserve(b, 100_000, WithMaxSources(1<<17))
}

// BenchmarkObserveFlood100k: 100k sources send first knocks to a Knocker
// with the default capacity (65536): every operation evicts a source, as
// under a flood of spoofed knocks.
func BenchmarkObserveFlood100k(b *testing.B) {
	benchObserve(b, 100_000)
}

func benchObserve(b *testing.B, sources int, opts ...Option) {
	k := New([]rules.Knock{seqSSH, seqWeb, seqOnce}, opts...)
	srcs := benchSources(sources)
	steps := seqSSH.Steps
	now := t0.UnixNano()
	i := 0
	op := func() {
		src := srcs[i%len(srcs)]
		st := steps[(i/len(srcs))%len(steps)]
		k.Observe(src, server, true, st.Proto, st.Port, now)
		i++
	}
	for range len(srcs) * len(steps) { // grow the tables to the working set
		op()
	}
	b.ReportAllocs()
	for b.Loop() {
		op()
	}
}

// BenchmarkObserveNotKnock is the common case: a NEW packet to a service
// from a source without progress.
func BenchmarkObserveNotKnock(b *testing.B) {
	k := New([]rules.Knock{seqSSH, seqWeb, seqOnce, seqRot})
	srcs := benchSources(100_000)
	now := t0.UnixNano()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k.Observe(srcs[i%len(srcs)], server, true, tcp, 443, now)
		i++
	}
}

func BenchmarkObserveParallel100k(b *testing.B) {
	k := New([]rules.Knock{seqSSH, seqWeb, seqOnce})
	srcs := benchSources(100_000)
	now := t0.UnixNano()
	for i, src := range srcs { // grow the tables to the working set
		st := seqSSH.Steps[i%3]
		k.Observe(src, server, true, st.Proto, st.Port, now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			st := seqSSH.Steps[(i/len(srcs))%3]
			k.Observe(srcs[i%len(srcs)], server, true, st.Proto, st.Port, now)
			i += 7
		}
	})
}

func BenchmarkAllowed100k(b *testing.B) {
	k := New([]rules.Knock{seqSSH})
	srcs := benchSources(100_000)
	now := t0.UnixNano()
	for _, src := range srcs[:50_000] {
		for _, st := range seqSSH.Steps {
			k.Observe(src, server, true, st.Proto, st.Port, now)
		}
	}
	ssh := k.Index("ssh")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k.Allowed(ssh, srcs[i%len(srcs)], server, tcp, 22, now)
		i++
	}
}

// TestConcurrent runs the packet path, Expire, Status, Stats and Snapshot
// at once (run with -race): every source completes its sequence.
func TestConcurrent(t *testing.T) {
	k := New([]rules.Knock{seqSSH, seqWeb, seqRot}, WithMaxSources(1<<14))
	srcs := benchSources(4096)
	now := t0.Add(sec(1)).UnixNano()
	ssh := k.Index("ssh")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			k.Expire(now)
			k.Status(now)
			k.Stats()
			k.Snapshot()
		}
	}()
	const workers = 4
	errs := make(chan string, workers)
	for w := range workers {
		go func() {
			bad := ""
			for i := w; i < len(srcs); i += workers {
				for _, st := range seqSSH.Steps {
					k.Observe(srcs[i], server, true, st.Proto, st.Port, now)
				}
				if !k.Allowed(ssh, srcs[i], server, tcp, 22, now) && bad == "" {
					bad = netip.AddrFrom16(srcs[i]).Unmap().String()
				}
			}
			errs <- bad
		}()
	}
	for range workers {
		if bad := <-errs; bad != "" {
			t.Errorf("%s completed ssh but is not admitted", bad)
		}
	}
	<-done
	if got := k.Stats().Sequences[ssh].Successes; got != uint64(len(srcs)) {
		t.Errorf("ssh successes = %d, want %d", got, len(srcs))
	}
}

// TestShardSpread: consecutive IPv4 and IPv6 sources spread evenly over the
// shards, so a shard fills (and evicts) only when the whole Knocker is full.
func TestShardSpread(t *testing.T) {
	k := New(nil)
	for _, tt := range []struct {
		name string
		src  func(i int) [16]byte
	}{
		{"IPv4 10.0.x.y", func(i int) [16]byte { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).As16() }},
		{"IPv6 2001:db8::x", func(i int) [16]byte {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}).As16()
		}},
		{"IPv6 /64 prefixes", func(i int) [16]byte {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 6: byte(i >> 8), 7: byte(i), 15: 1}).As16()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := 64 * len(k.shards)
			load := map[*shard]int{}
			for i := range n {
				load[k.shard(tt.src(i))]++
			}
			for i, sh := range k.shards {
				if l := load[sh]; l < 32 || l > 112 {
					t.Errorf("shard %d holds %d of %d sources, want about 64", i, l, n)
				}
			}
		})
	}
}

// BenchmarkInProgress10k: 10,000 sources each part-way through the ssh
// sequence. It reports a step's cost on the packet path among them, the
// housekeeping sweep over them (Expire, nothing due), the status listing
// nfqfw knock-status asks for, and the heap per source in progress.
func BenchmarkInProgress10k(b *testing.B) {
	const n = 10_000
	srcs := benchSources(n)
	now := t0.UnixNano()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	k := New([]rules.Knock{seqSSH, seqWeb, seqOnce})
	first := seqSSH.Steps[0]
	for _, src := range srcs {
		k.Observe(src, server, true, first.Proto, first.Port, now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSource := float64(after.HeapAlloc-before.HeapAlloc) / n
	if got := k.Stats().Sequences[k.Index(seqSSH.Name)].InProgress; got != n {
		b.Fatalf("%d sources in progress, want %d", got, n)
	}
	b.Run("observe", func(b *testing.B) {
		// Each source repeats its first step: it stays in progress.
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k.Observe(srcs[i%n], server, true, first.Proto, first.Port, now)
			i++
		}
	})
	b.Run("expire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k.Expire(now)
		}
	})
	b.Run("status", func(b *testing.B) {
		for b.Loop() {
			k.Status(now)
		}
	})
	b.Run("stats", func(b *testing.B) {
		for b.Loop() {
			k.Stats()
		}
	})
	b.Run("memory", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(perSource, "B/source")
	})
}

// TestMain runs the tests on the identity clock: they compare times built from fixed dates exactly.
func TestMain(m *testing.M) {
	clock.Set(clock.Identity{})
	os.Exit(m.Run())
}

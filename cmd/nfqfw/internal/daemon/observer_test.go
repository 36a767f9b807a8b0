package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/metrics"
	"github.com/nfqfw/nfqfw/rules"
)

// observerConfig has one of each stateful mechanism, small enough to drive
// by hand: a guard that admits one attempt and bans the next.
const observerConfig = `
recent:
  - name: scanners
knocks:
  - name: door
    steps: [tcp/7000, udp/8000]
    reset: any
    open:
      - {proto: tcp, ports: [2222]}
    open_for: 60s
guards:
  - name: ssh
    limits:
      - {count: 1, window: 1m}
    ban: {duration: 1m}
input:
  policy: drop
  rules:
    - {name: door, proto: tcp, dport: 2222, knock: door, action: accept}
    - {name: ssh, proto: tcp, dport: 22, guard: ssh, action: accept}
`

// stateCounts is what the stateful sources report, in one comparable value.
type stateCounts struct {
	Recent   []metrics.RecentList
	Guards   map[string]uint64 // guard/result
	Active   int
	Issued   map[string]uint64
	Knocks   []metrics.KnockSequence
	Failures map[string]uint64 // sequence/reason
}

func observe(o *observer) stateCounts {
	c := stateCounts{Guards: map[string]uint64{}, Issued: map[string]uint64{}, Failures: map[string]uint64{}}
	recentSource{o}.RecentLists(func(l metrics.RecentList) { c.Recent = append(c.Recent, l) })
	guardSource{o}.GuardAttempts(func(g, r string, n uint64) { c.Guards[g+"/"+r] = n })
	c.Active = banSource{o}.BansActive()
	banSource{o}.BansIssued(func(s string, n uint64) { c.Issued[s] = n })
	knockSource{o}.KnockSequences(func(k metrics.KnockSequence) { c.Knocks = append(c.Knocks, k) })
	knockSource{o}.KnockFailures(func(s, r string, n uint64) { c.Failures[s+"/"+r] = n })
	return c
}

// TestStatefulSourcesAcrossReload drives each stateful mechanism, reloads
// (which rebuilds the matchers with fresh counters) and drives them again:
// the exported counters go on from where they were, the gauges follow the
// matchers in force, and manual bans are told apart from guard bans.
func TestStatefulSourcesAcrossReload(t *testing.T) {
	cfg, err := rules.Parse("observer.yaml", []byte(observerConfig+"state: {dir: "+filepath.Join(t.TempDir(), "state")+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := rules.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := newStateful(cfg, pol, log, nil, hostKernel{})
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{state: st, log: log}
	t.Cleanup(func() { d.currentState().close() })
	o := &observer{d: d}

	a16 := func(s string) [16]byte { return netip.MustParseAddr(s).As16() }
	host := a16("::ffff:10.0.0.1")
	set := &rules.RecentMatch{List: "scanners", Op: rules.RecentSet}
	// drive records one scanner hit, one knock (door's first step, then a
	// wrong port), one complete knock sequence from another source, and
	// two SSH attempts of a source (the second one limited and banned).
	drive := func(st *stateful, scanner, knocker, opener, ssh string) {
		now := time.Now().UnixNano()
		st.recent.Match(st.recent.Index("scanners"), set, a16(scanner), 64, now)
		st.knock.Observe(a16(knocker), host, true, 6, 7000, now)
		st.knock.Observe(a16(knocker), host, true, 17, 9000, now)
		st.knock.Observe(a16(opener), host, true, 6, 7000, now)
		st.knock.Observe(a16(opener), host, true, 17, 8000, now)
		g := st.guards.Index("ssh")
		st.guards.Allow(g, a16(ssh), now)
		st.guards.Allow(g, a16(ssh), now)
		st.expire(time.Now())
	}

	drive(st, "::ffff:192.0.2.1", "::ffff:192.0.2.2", "::ffff:192.0.2.3", "::ffff:192.0.2.4")
	addBan := o.countManualBan(control.BanHandlers(st.shared.bans, nil, nil)[control.CmdAddBan])
	args, _ := json.Marshal(control.AddBanRequest{Addr: netip.MustParseAddr("198.51.100.1"), ForSeconds: 60})
	if _, err := addBan(context.Background(), args); err != nil {
		t.Fatalf("bans.add: %v", err)
	}
	if _, err := addBan(context.Background(), []byte(`{"addr":"198.51.100.2","for_seconds":0}`)); err == nil {
		t.Fatal("bans.add with for_seconds 0 succeeded")
	}
	first := stateCounts{
		Recent:   []metrics.RecentList{{List: "scanners", Entries: 1, Hits: 1}},
		Guards:   map[string]uint64{"ssh/allowed": 1, "ssh/limited": 1},
		Active:   2,
		Issued:   map[string]uint64{"guard": 1, "manual": 1},
		Knocks:   []metrics.KnockSequence{{Sequence: "door", InProgress: 0, WindowsOpen: 1, Successes: 1}},
		Failures: map[string]uint64{"door/wrong_port": 1, "door/timeout": 0, "door/replay": 0},
	}
	if diff := cmp.Diff(first, observe(o)); diff != "" {
		t.Errorf("after the first round (-want +got):\n%s", diff)
	}

	// The reload carries entries, windows and guard state over; the
	// new matchers count from zero, the exported counters must not.
	d.mu.Lock()
	d.state = d.state.reloaded(cfg, pol)
	d.mu.Unlock()
	if diff := cmp.Diff(first, observe(o)); diff != "" {
		t.Errorf("right after the reload (-want +got):\n%s", diff)
	}

	drive(d.currentState(), "::ffff:192.0.2.11", "::ffff:192.0.2.12", "::ffff:192.0.2.13", "::ffff:192.0.2.14")
	second := stateCounts{
		Recent:   []metrics.RecentList{{List: "scanners", Entries: 2, Hits: 2}},
		Guards:   map[string]uint64{"ssh/allowed": 2, "ssh/limited": 2},
		Active:   3,
		Issued:   map[string]uint64{"guard": 2, "manual": 1},
		Knocks:   []metrics.KnockSequence{{Sequence: "door", InProgress: 0, WindowsOpen: 2, Successes: 2}},
		Failures: map[string]uint64{"door/wrong_port": 2, "door/timeout": 0, "door/replay": 0},
	}
	if diff := cmp.Diff(second, observe(o)); diff != "" {
		t.Errorf("after a round on the reloaded matchers (-want +got):\n%s", diff)
	}
}

package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/engine/recent"
	"github.com/nfqfw/nfqfw/rules"
)

const recentFleetConfig = `
recent:
  - {name: portscan, size: 100, shared: true}
  - {name: seen, size: 100, shared: true}
  - {name: own, size: 100}
input:
  policy: drop
  rules:
    - {proto: tcp, recent: {list: portscan, op: check, seconds: 60}, action: drop}
    - {proto: tcp, recent: {list: portscan, op: update, seconds: 300}, action: drop}
    - {proto: udp, recent: {list: seen, op: check, hitcount: 3}, action: drop}
    - {proto: tcp, dport: 1, recent: {list: portscan, op: set}, action: drop}
fleet:
  servers: [nats://127.0.0.1:4222]
  gateway: gw-c
  share: [bans, recent]
`

// TestRecentRetention: a shared set expires when no rule of its list can
// count it any more: the longest seconds of a check or update, or the
// stream's age for a check without seconds.
func TestRecentRetention(t *testing.T) {
	cfg, err := rules.Parse("t.yaml", []byte(recentFleetConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{"portscan": 5 * time.Minute, "seen": fleetMaxAge(cfg)}
	if diff := cmp.Diff(want, recentRetention(cfg)); diff != "" {
		t.Errorf("retention (-want +got):\n%s", diff)
	}
}

// TestApplyRecent: a recent decision of another gateway lists its address
// in the shared list of that name, from its origin; one for a list this
// gateway does not share is not applied, and counted.
func TestApplyRecent(t *testing.T) {
	cfg, err := rules.Parse("t.yaml", []byte(recentFleetConfig))
	if err != nil {
		t.Fatal(err)
	}
	sh := &sharedState{recentSets: make(chan recent.Set, 8)}
	st := &stateful{cfg: cfg, recent: recent.New(cfg.Recent, recent.WithShare(sh.recentSets))}
	m := &fleetMember{cfg: cfg.Fleet, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	now := clock.Wall(clock.Now())
	d := decision.Decision{Kind: decision.Recent, Scope: netip.MustParsePrefix("192.0.2.66/32"), Issued: now.Add(-time.Second),
		Expires: now.Add(time.Minute), Origin: "gw-a", List: "portscan"}
	m.applyRecent(st, d)
	d.List = "own"
	m.applyRecent(st, d)
	m.applyRecent(st, d)
	var got []string
	st.recent.Walk(func(e recent.Entry) { got = append(got, e.List+" "+e.Addr.String()+" "+e.Origin) })
	if diff := cmp.Diff([]string{"portscan 192.0.2.66 gw-a"}, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if n := m.unsharedN.Load(); n != 2 {
		t.Errorf("%d entries of a list not shared counted, want 2", n)
	}
	if len(sh.recentSets) != 0 {
		t.Errorf("a remote set was queued to be published again")
	}
}

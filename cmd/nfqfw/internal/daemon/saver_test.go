package daemon

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/cmd/nfqfw/internal/store"
	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/rules"
)

// saverConfig declares a recent list and a knock sequence; the state
// directory is dir.
func saverConfig(t *testing.T, dir string) (*rules.Config, *rules.Policy) {
	t.Helper()
	cfg, err := rules.Parse("saver.yaml", []byte(`
input: {policy: drop}
recent:
  - {name: scan, size: 100}
knocks:
  - name: ssh-knock
    steps: [tcp/7000, udp/8000, tcp/9000]
    step_window: 5s
    open: [{proto: tcp, ports: [22]}]
    open_for: 30s
state: {dir: `+dir+`}
`))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := rules.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, pol
}

// TestStateSavedOnChange: a ban, a recent-list entry and a knock step each
// reach the state file without the saver's timer (set to an hour here):
// the saver sees the change and saves within about a second.
func TestStateSavedOnChange(t *testing.T) {
	dir := t.TempDir()
	cfg, pol := saverConfig(t, dir)
	s, err := newStateful(cfg, pol, slog.New(slog.DiscardHandler), nil, hostKernel{})
	if err != nil {
		t.Fatal(err)
	}
	s.shared.every = time.Hour
	if err := s.restore(); err != nil {
		t.Fatal(err)
	}
	defer s.close()

	src := netip.MustParseAddr("192.0.2.7")
	host := netip.MustParseAddr("192.0.2.1").As16()
	saved := func() persisted {
		var p persisted
		if err := store.Load(filepath.Join(dir, stateFile), &p); err != nil {
			return persisted{}
		}
		return p
	}
	changes := []struct {
		name  string
		do    func()
		saved func(persisted) bool
	}{
		{"a ban", func() {
			if _, err := s.shared.bans.Add(netip.MustParsePrefix("198.51.100.9/32"), time.Hour, "test", clock.Now()); err != nil {
				t.Fatal(err)
			}
		}, func(p persisted) bool { return len(p.Bans) == 1 }},
		{"a recent-list entry", func() {
			s.recent.Match(s.recent.Index("scan"), &rules.RecentMatch{Op: rules.RecentSet}, src.As16(), 64, clock.Now())
		}, func(p persisted) bool { return len(p.Recent) == 1 && p.Recent[0].Addr == src }},
		{"a knock step", func() {
			s.knock.Observe(src.As16(), host, true, 6, 7000, clock.Now())
		}, func(p persisted) bool { return len(p.Knock.Sequences) == 1 && len(p.Knock.Sequences[0].Progress) == 1 }},
	}
	for _, c := range changes {
		c.do()
		start := time.Now()
		for i := 0; i < 200 && !c.saved(saved()); i++ { // at most 10 s
			time.Sleep(50 * time.Millisecond)
		}
		if !c.saved(saved()) {
			t.Fatalf("%s: not in the state file after %v (the timer is an hour)", c.name, time.Since(start).Round(time.Millisecond))
		}
		t.Logf("%s: in the state file after %v", c.name, time.Since(start).Round(10*time.Millisecond))
	}
}

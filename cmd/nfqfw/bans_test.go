package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/engine/guard"
	"github.com/nfqfw/nfqfw/engine/recent"
	"github.com/nfqfw/nfqfw/rules"
)

// stateT0 is the daemon's (stopped) clock in the bans and recent tests.
var stateT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// stateDaemon is a control server with the real bans and recent handlers.
type stateDaemon struct {
	sock, config string
	bans         *guard.Bans
	lists        *recent.Lists
	allows       *guard.Allows
}

// cliAllows is the allow table of the state daemon: an allow lifts the
// bans it overlaps, as the daemon's does.
type cliAllows struct{ d *stateDaemon }

func (c cliAllows) AddAllow(scope netip.Prefix, d time.Duration, reason string) (decision.Decision, []netip.Prefix, error) {
	a := decision.Decision{Kind: decision.Allow, Scope: scope, Issued: stateT0, Expires: stateT0.Add(d), Source: decision.SourceManual, Reason: reason}
	if _, err := c.d.allows.Add(a, stateT0); err != nil {
		return decision.Decision{}, nil, err
	}
	var lifted []netip.Prefix
	for _, b := range c.d.bans.List(stateT0.UnixNano()) {
		if b.Scope.Overlaps(scope) && c.d.bans.Del(b.Scope) {
			lifted = append(lifted, b.Scope)
		}
	}
	return a, lifted, nil
}

func (c cliAllows) DelAllow(scope netip.Prefix) bool { return c.d.allows.Del(scope) }
func (c cliAllows) ListAllows() []decision.Decision  { return c.d.allows.List(stateT0) }

// startStateDaemon serves the bans and recent handlers on a socket under a
// temp directory, with the daemon's clock at stateT0. Its state: an SSH
// guard banned a source twice (the second time now, 20 minutes), the
// operator banned another, and two recent lists hold three entries.
func startStateDaemon(t *testing.T) *stateDaemon {
	t.Helper()
	dir := t.TempDir()
	d := &stateDaemon{sock: filepath.Join(dir, "run", "nfqfw.sock"), config: filepath.Join(dir, "nfqfw.yaml")}
	if err := os.WriteFile(d.config, []byte("control:\n  socket: "+d.sock+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) int64 { return stateT0.Add(d).UnixNano() }
	a := func(s string) [16]byte { return netip.MustParseAddr(s).As16() }

	d.bans = guard.NewBans(guard.BanOptions{})
	spec := rules.BanSpec{Duration: 10 * time.Minute, Factor: 2, Max: 24 * time.Hour}
	d.bans.Ban(a("192.0.2.66"), spec, "ssh", "more than 3 new connections in 10s", at(-2*time.Hour))
	d.bans.Expire(at(-time.Hour))
	d.bans.Ban(a("192.0.2.66"), spec, "ssh", "more than 4 new connections in 30m", at(-5*time.Minute))
	if _, err := d.bans.Add(netip.MustParsePrefix("2001:db8:bad::/48"), 26*time.Hour, "scanner", at(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A ban another gateway of the fleet made.
	if _, err := d.bans.Apply(decision.Decision{Kind: decision.Ban, Scope: netip.MustParsePrefix("2001:db8:7::/64"),
		Issued: stateT0.Add(-time.Minute), Expires: stateT0.Add(9 * time.Minute), Origin: "gw-b", Source: "ssh",
		Reason: "more than 3 new connections in 10s"}, at(0)); err != nil {
		t.Fatal(err)
	}

	d.lists = recent.New([]rules.RecentList{{Name: "portscan"}, {Name: "ssh"}})
	set := rules.RecentMatch{Op: rules.RecentSet}
	d.lists.Match(0, &set, a("203.0.113.9"), 52, at(-90*time.Second))
	d.lists.Match(0, &set, a("203.0.113.9"), 52, at(-30*time.Second))
	d.lists.Match(0, &set, a("2001:db8::7"), 61, at(-2*time.Hour))
	d.lists.Match(1, &set, a("198.51.100.4"), 64, at(0))
	// An address another gateway of the fleet set in a shared list.
	d.lists.Apply("portscan", netip.MustParseAddr("203.0.113.20"), at(-10*time.Second), at(0), "gw-b")

	srv := control.NewServer(d.sock, nil)
	clock := func() time.Time { return stateT0 }
	d.allows = guard.NewAllows()
	d.bans.SetAllows(d.allows)
	// An allow another gateway of the fleet made.
	d.allows.Add(decision.Decision{Kind: decision.Allow, Scope: netip.MustParsePrefix("203.0.113.0/28"), Issued: stateT0.Add(-time.Hour),
		Expires: stateT0.Add(3 * time.Hour), Origin: "gw-b", Reason: "vendor maintenance"}, stateT0)
	for _, hs := range []map[string]control.Handler{control.BanHandlers(d.bans, clock, func() string { return "gw-a" }), control.RecentHandlers(d.lists, clock),
		control.AllowHandlers(cliAllows{d}, clock, func() string { return "gw-a" })} {
		for cmd, h := range hs {
			srv.Handle(cmd, h)
		}
	}
	serveControl(t, srv)
	return d
}

// checkGolden compares got with testdata/name, rewriting it with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden := filepath.Join("testdata", name)
	if updateGolden() {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestBansListTable(t *testing.T) {
	d := startStateDaemon(t)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"socket flag", []string{"bans", "-s", d.sock, "list"}},
		{"socket from config", []string{"bans", "-c", d.config, "list"}},
		{"flags after the action", []string{"bans", "list", "-s", d.sock}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			checkGolden(t, "bans-list.golden", out)
		})
	}
}

func TestBansListJSON(t *testing.T) {
	d := startStateDaemon(t)
	out, errOut, code := runCLI(t, "bans", "list", "--json", "-s", d.sock)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got control.ListBansResponse
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	want := control.ListBansResponse{Now: stateT0, Gateway: "gw-a", Bans: d.bans.List(stateT0.UnixNano())}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}), cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("bans list --json (-want +got):\n%s", diff)
	}
	for _, field := range []string{`"scope": "192.0.2.66/32"`, `"origin": "gw-b"`, `"gateway": "gw-a"`, `"source": "ssh"`, `"offences": 2`, `"until": "2026-03-01T12:15:00Z"`} {
		if !strings.Contains(out, field) {
			t.Errorf("JSON lacks %s:\n%s", field, out)
		}
	}
}

// cliStep is one CLI run and what it must give.
type cliStep struct {
	name     string
	args     []string
	wantCode int
	wantOut  string
	wantErr  string // contained in stderr
}

// runCLISteps runs the steps in order.
func runCLISteps(t *testing.T, steps []cliStep) {
	t.Helper()
	for _, s := range steps {
		out, errOut, code := runCLI(t, s.args...)
		if code != s.wantCode || out != s.wantOut || !strings.Contains(errOut, s.wantErr) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q",
				s.name, code, out, errOut, s.wantCode, s.wantOut, s.wantErr)
		}
	}
}

func TestBansAddDel(t *testing.T) {
	d := startStateDaemon(t)
	steps := []cliStep{
		{"add with flags after the address", []string{"bans", "-s", d.sock, "add", "198.51.100.23", "--for", "2h", "--reason", "port scan"}, 0,
			"banned 198.51.100.23 for 2h (offence 1)\n", ""},
		{"add with the default duration", []string{"bans", "add", "-s", d.sock, "2001:db8::1"}, 0,
			"banned 2001:db8::1 for 1h (offence 1)\n", ""},
		{"add a bad address", []string{"bans", "-s", d.sock, "add", "198.51.100.300"}, 1, "",
			"nfqfw bans: add: \"198.51.100.300\" is not an IPv4 or IPv6 address or prefix\n"},
		{"add an IPv4 prefix", []string{"bans", "-s", d.sock, "add", "10.99.1.0/24"}, 0,
			"banned 10.99.1.0/24 for 1h (offence 1)\n", ""},
		{"add an IPv6 prefix", []string{"bans", "-s", d.sock, "add", "2001:db8:1::/64", "--reason", "a whole host"}, 0,
			"banned 2001:db8:1::/64 for 1h (offence 1)\n", ""},
		{"add a prefix with host bits", []string{"bans", "-s", d.sock, "add", "2001:db8:1::1/64"}, 1, "",
			"has bits set past /64: did you mean 2001:db8:1::/64?"},
		{"add a prefix wider than /8", []string{"bans", "-s", d.sock, "add", "10.0.0.0/7"}, 1, "", "is wider than /8"},
		{"del an IPv6 prefix", []string{"bans", "-s", d.sock, "del", "2001:db8:1::/64"}, 0, "unbanned 2001:db8:1::/64\n", ""},
		{"del an address inside a banned prefix", []string{"bans", "-s", d.sock, "del", "10.99.1.7"}, 1, "", "10.99.1.7 is not banned"},
		{"add for no time", []string{"bans", "-s", d.sock, "add", "198.51.100.1", "--for", "0s"}, 1, "", "at least 1s"},
		{"add without an address", []string{"bans", "-s", d.sock, "add"}, 2, "", "nfqfw bans: add needs the address or prefix\n\nUsage: nfqfw bans"},
		{"add two addresses", []string{"bans", "-s", d.sock, "add", "192.0.2.1", "192.0.2.2"}, 2, "", `nfqfw bans: add takes one address, got "192.0.2.1 192.0.2.2"`},
		{"list with an argument", []string{"bans", "-s", d.sock, "list", "all"}, 2, "", `nfqfw bans: list takes no argument, got "all"`},
		{"unknown flag", []string{"bans", "-s", d.sock, "add", "198.51.100.1", "--forever"}, 1, "", "flag provided but not defined: -forever"},
		{"del", []string{"bans", "-s", d.sock, "del", "2001:db8:bad::/48"}, 0, "unbanned 2001:db8:bad::/48\n", ""},
		{"del again", []string{"bans", "-s", d.sock, "del", "2001:db8:bad::/48"}, 1, "", "2001:db8:bad::/48 is not banned"},
		{"unknown action", []string{"bans", "-s", d.sock, "flush"}, 2, "", "nfqfw bans: unknown action \"flush\": want list, add ADDR|PREFIX or del ADDR|PREFIX\n\nUsage: nfqfw bans"},
	}
	runCLISteps(t, steps)
	out, _, _ := runCLI(t, "bans", "-s", d.sock, "list")
	checkGolden(t, "bans-list-after-add-del.golden", out)
}

func TestBansNotRunning(t *testing.T) {
	_, errOut, code := runCLI(t, "bans", "-s", filepath.Join(t.TempDir(), "none.sock"), "list")
	if code != 1 || !strings.Contains(errOut, "daemon is not running") {
		t.Errorf("exit %d, stderr %q; want 1 and a not-running message", code, errOut)
	}
}

func TestRecentTable(t *testing.T) {
	d := startStateDaemon(t)
	for _, tt := range []struct {
		name, golden string
		args         []string
	}{
		{"all lists", "recent.golden", []string{"recent", "-s", d.sock}},
		{"all lists, socket from config", "recent.golden", []string{"recent", "-c", d.config}},
		{"one list", "recent-portscan.golden", []string{"recent", "portscan", "-s", d.sock}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			checkGolden(t, tt.golden, out)
		})
	}
}

func TestRecentJSON(t *testing.T) {
	d := startStateDaemon(t)
	out, errOut, code := runCLI(t, "recent", "--json", "-s", d.sock, "ssh")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got control.RecentListResponse
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	want := control.RecentListResponse{Now: stateT0, Entries: []recent.Entry{
		{List: "ssh", Addr: netip.MustParseAddr("198.51.100.4"), LastSeen: stateT0, Hits: 1, TTL: 64},
	}}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("recent --json (-want +got):\n%s", diff)
	}
}

func TestRecentErrors(t *testing.T) {
	d := startStateDaemon(t)
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown list", []string{"recent", "-s", d.sock, "nope"}, 1, `unknown recent list "nope"`},
		{"two lists", []string{"recent", "-s", d.sock, "ssh", "portscan"}, 2, "Usage: nfqfw recent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runCLI(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tt.wantCode, tt.wantErr)
			}
		})
	}
}

package guard

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/rules"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// TestGuardBansPrefix: a guard bans an IPv6 offender's /64 by default and
// an IPv4 one alone; ban.prefix4/prefix6 widen or narrow that, and
// offences count per scope, so a host walking through its /64 is one
// offender.
func TestGuardBansPrefix(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spec    rules.BanSpec
		src     string
		scope   string
		covered []string // banned with src
		spared  []string // not banned
	}{
		{name: "IPv6 defaults to the /64", spec: rules.BanSpec{Duration: time.Minute},
			src: "2001:db8:1:2::77", scope: "2001:db8:1:2::/64",
			covered: []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"}, spared: []string{"2001:db8:1:3::77"}},
		{name: "IPv4 defaults to the address", spec: rules.BanSpec{Duration: time.Minute},
			src: "192.0.2.77", scope: "192.0.2.77/32", spared: []string{"192.0.2.76", "192.0.2.78"}},
		{name: "prefix6 128 bans one IPv6 address", spec: rules.BanSpec{Duration: time.Minute, Prefix6: 128},
			src: "2001:db8:1:2::77", scope: "2001:db8:1:2::77/128", spared: []string{"2001:db8:1:2::78"}},
		{name: "prefix6 48", spec: rules.BanSpec{Duration: time.Minute, Prefix6: 48},
			src: "2001:db8:1:2::77", scope: "2001:db8:1::/48", covered: []string{"2001:db8:1:ffff::1"}, spared: []string{"2001:db8:2::1"}},
		{name: "prefix4 24", spec: rules.BanSpec{Duration: time.Minute, Prefix4: 24},
			src: "192.0.2.77", scope: "192.0.2.0/24", covered: []string{"192.0.2.1", "192.0.2.255"}, spared: []string{"192.0.3.1", "::ffff:c000:301"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBans(BanOptions{})
			b.Ban(a16(tc.src), tc.spec, "ssh", "r", at(0))
			list := b.List(at(1))
			if len(list) != 1 || list[0].Scope != pfx(tc.scope) {
				t.Fatalf("List = %+v, want one ban of %s", list, tc.scope)
			}
			for _, a := range append([]string{tc.src}, tc.covered...) {
				if !b.IsBanned(a16(a), at(1)) {
					t.Errorf("%s is not banned by %s", a, tc.scope)
				}
			}
			for _, a := range tc.spared {
				if b.IsBanned(a16(a), at(1)) {
					t.Errorf("%s is banned by %s", a, tc.scope)
				}
			}
			if b.IsBanned(a16(tc.src), at(61)) {
				t.Errorf("%s still banned after the ban's minute", tc.src)
			}
		})
	}

	// Two addresses of one /64 are one offender: the second offence (after
	// the first ban ended) doubles.
	b := NewBans(BanOptions{})
	spec := rules.BanSpec{Duration: time.Minute, Factor: 2, Max: time.Hour}
	b.Ban(a16("2001:db8::1"), spec, "ssh", "r", at(0))
	b.Expire(at(60))
	until := b.Ban(a16("2001:db8::2"), spec, "ssh", "r", at(100))
	if got := until.Sub(time.Unix(0, at(100))); got != 2*time.Minute {
		t.Errorf("second offence of the /64 from another address banned for %v, want 2m", got)
	}
}

// TestOverlappingPrefixes: bans of nested scopes are separate entries; an
// address is banned while any of them covers it; del lifts exactly the
// scope named; the families never mix.
func TestOverlappingPrefixes(t *testing.T) {
	var rec recorder
	b := runBans(t, rec.opts())
	for _, a := range []struct {
		scope string
		d     time.Duration
	}{{"2001:db8::/48", time.Hour}, {"2001:db8:0:1::/64", 2 * time.Hour}, {"2001:db8:0:1::5/128", 3 * time.Hour}, {"192.0.2.0/24", time.Hour}} {
		if _, err := b.Add(pfx(a.scope), a.d, "", at(0)); err != nil {
			t.Fatal(err)
		}
	}
	inner := a16("2001:db8:0:1::5")
	if bn, ok := b.Covering(inner, at(1)); !ok || !bn.Until.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("Covering(inner) = %+v, %v; want the longest covering ban, 3h", bn, ok)
	}
	if bn, ok := b.Covering(inner, at(1)); !ok || bn.Scope != pfx("2001:db8:0:1::5/128") {
		t.Errorf("Covering(inner) = %+v, %v; want the /128, the longest", bn, ok)
	}
	if !b.Del(pfx("2001:db8:0:1::5/128")) || !b.IsBanned(inner, at(1)) {
		t.Error("deleting the /128 must leave the /64 and the /48 covering it")
	}
	if b.Del(pfx("2001:db8:0:1::/63")) {
		t.Error("deleting a scope never banned reports a ban")
	}
	if bn, ok := b.Covering(inner, at(1)); !ok || bn.Scope != pfx("2001:db8:0:1::/64") {
		t.Errorf("Covering(inner) after deleting the /128 = %+v, %v; want the /64", bn, ok)
	}
	if !b.Del(pfx("2001:db8::/48")) || !b.IsBanned(inner, at(1)) || b.IsBanned(a16("2001:db8:0:2::1"), at(1)) {
		t.Error("after deleting the /48: the /64 must still ban inner, the rest of the /48 must be free")
	}
	if b.IsBanned(inner, at(2*3600)) {
		t.Error("the /64 outlived its two hours")
	}
	// 192.0.2.0/24 covers IPv4 sources only, never an IPv6 address with
	// the same bytes.
	if !b.IsBanned(a16("192.0.2.200"), at(1)) || b.IsBanned(a16("::c000:2c8"), at(1)) || b.IsBanned(a16("c000:2c8::"), at(1)) {
		t.Error("an IPv4 prefix ban must cover its IPv4 addresses and nothing of IPv6")
	}
	b.Expire(at(2 * 3600))
	if st := b.Stats(); st.Active != 0 {
		t.Errorf("Stats after every ban ended: %+v", st)
	}
	if b.lens.Load().v4 != nil || b.lens.Load().v6 != nil {
		t.Errorf("prefix lengths still looked up with no ban in force: %+v", *b.lens.Load())
	}
	want := []string{
		"ban 2001:db8::/48 until 13:00:00",
		"ban 2001:db8:0:1::/64 until 14:00:00",
		"ban 2001:db8:0:1::5/128 until 15:00:00",
		"ban 192.0.2.0/24 until 13:00:00",
		"unban 2001:db8:0:1::5/128",
		"unban 2001:db8::/48",
	}
	got := rec.wait(t, len(want)+2)
	if diff := cmp.Diff(want, got[:len(want)]); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
}

// decisions collects what OnDecision reports.
type decisions struct {
	mu  sync.Mutex
	got []decision.Decision
}

func (d *decisions) add(x decision.Decision) { d.mu.Lock(); d.got = append(d.got, x); d.mu.Unlock() }

func (d *decisions) wait(t *testing.T, n int) []decision.Decision {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		d.mu.Lock()
		if len(d.got) >= n {
			out := append([]decision.Decision(nil), d.got...)
			d.mu.Unlock()
			return out
		}
		d.mu.Unlock()
	}
	t.Fatalf("got %d decisions, want %d", len(d.got), n)
	return nil
}

// TestDecisionsAndApply: every local decision (guard ban, manual ban,
// manual unban) is reported as a decision; a decision from elsewhere is
// applied with its own expiry, idempotently, never shortening a longer
// ban, and is not reported back.
func TestDecisionsAndApply(t *testing.T) {
	var dec decisions
	var rec recorder
	opts := rec.opts()
	opts.OnDecision = dec.add
	b := runBans(t, opts)

	b.Ban(a16("2001:db8:7::9"), rules.BanSpec{Duration: 10 * time.Minute}, "ssh", "more than 3 new connections in 10s", at(0))
	if _, err := b.Add(pfx("198.51.100.0/24"), time.Hour, "scanners", at(1)); err != nil {
		t.Fatal(err)
	}
	b.Del(pfx("198.51.100.0/24"))
	b.Expire(at(3600)) // an expiry is no decision
	got := dec.wait(t, 3)
	want := []decision.Decision{
		{Kind: decision.Ban, Scope: pfx("2001:db8:7::/64"), Issued: t0, Expires: t0.Add(10 * time.Minute), Source: "ssh", Reason: "more than 3 new connections in 10s"},
		{Kind: decision.Ban, Scope: pfx("198.51.100.0/24"), Issued: t0.Add(time.Second), Expires: t0.Add(time.Second + time.Hour), Source: SourceManual, Reason: "scanners"},
		{Kind: decision.Unban, Scope: pfx("198.51.100.0/24"), Source: SourceManual},
	}
	if diff := cmp.Diff(want, got, cmpOpts, cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".Issued" && p.Index(-2).(cmp.SliceIndex).Key() == 2
	}, cmp.Ignore())); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	for _, d := range got {
		if err := d.Validate(); err != nil {
			t.Errorf("reported decision %v does not validate: %v", d, err)
		}
	}

	// From elsewhere: a ban of gw-b, applied twice, then an older one.
	remote := decision.Decision{Kind: decision.Ban, Scope: pfx("203.0.113.0/24"), Issued: t0.Add(time.Hour),
		Expires: t0.Add(2 * time.Hour), Origin: "gw-b", Source: "ssh", Reason: "r"}
	for i, want := range []bool{true, false} {
		if changed, err := b.Apply(remote, at(3601)); err != nil || changed != want {
			t.Errorf("Apply #%d = %v, %v; want %v", i+1, changed, err, want)
		}
	}
	older := remote
	older.Expires = t0.Add(90 * time.Minute)
	if changed, _ := b.Apply(older, at(3602)); changed {
		t.Error("an older decision shortened a longer ban")
	}
	newer := remote
	newer.Expires = t0.Add(3 * time.Hour)
	if changed, _ := b.Apply(newer, at(3603)); !changed {
		t.Error("a later expiry was not applied")
	}
	list := b.List(at(3604))
	if len(list) != 1 || list[0].Origin != "gw-b" || !list[0].Until.Equal(t0.Add(3*time.Hour)) || !list[0].Since.Equal(t0.Add(time.Hour)) {
		t.Fatalf("List = %+v, want the /24 of gw-b until 3h since 1h", list)
	}
	if !b.IsBanned(a16("203.0.113.50"), at(3604)) {
		t.Error("an applied prefix ban does not ban its addresses")
	}
	if changed, _ := b.Apply(decision.Decision{Kind: decision.Ban, Scope: pfx("192.0.2.1/32"), Expires: t0, Origin: "gw-b"}, at(3604)); changed {
		t.Error("a ban that ended before it arrived was applied")
	}
	// An unban from elsewhere lifts it, whatever the expiries.
	if changed, err := b.Apply(decision.Decision{Kind: decision.Unban, Scope: pfx("203.0.113.0/24"), Origin: "gw-c"}, at(3605)); err != nil || !changed {
		t.Errorf("Apply(unban) = %v, %v; want true", changed, err)
	}
	if b.IsBanned(a16("203.0.113.50"), at(3606)) {
		t.Error("unbanned from elsewhere, still banned")
	}
	for _, bad := range []decision.Decision{
		{Kind: decision.KnockWindow, Scope: pfx("192.0.2.1/32"), Expires: t0, Sequence: "k"},
		{Kind: decision.Ban, Scope: pfx("10.0.0.0/7"), Expires: t0.Add(time.Hour)},
		{Kind: decision.Ban, Scope: pfx("192.0.2.1/32")},
	} {
		if _, err := b.Apply(bad, at(3606)); err == nil {
			t.Errorf("Apply(%v) accepted", bad)
		}
	}
	if _, err := b.Apply(decision.Decision{Kind: decision.Allow, Scope: pfx("192.0.2.1/32"), Expires: t0.Add(time.Hour)}, at(1)); !errors.Is(err, ErrKind) {
		t.Errorf("Apply(allow) = %v, want ErrKind", err)
	}
	// Nothing applied was reported as this gateway's decision.
	time.Sleep(10 * time.Millisecond)
	if n := len(dec.wait(t, 3)); n != 3 {
		t.Errorf("%d decisions reported, want the 3 local ones", n)
	}
}

// TestSnapshotKeepsScopeAndOrigin: prefix bans and their origin survive a
// restart; a state file of an older version (addresses only) restores as
// single-address bans.
func TestSnapshotKeepsScopeAndOrigin(t *testing.T) {
	b := NewBans(BanOptions{})
	b.Ban(a16("2001:db8:9::1"), rules.BanSpec{Duration: time.Hour}, "ssh", "r", at(0))
	if _, err := b.Apply(decision.Decision{Kind: decision.Ban, Scope: pfx("203.0.113.0/24"), Issued: t0, Expires: t0.Add(time.Hour), Origin: "gw-b", Source: "ssh", Reason: "r"}, at(0)); err != nil {
		t.Fatal(err)
	}
	snap := b.Snapshot()
	old := BanSnapshot{Addr: netip.MustParseAddr("192.0.2.9"), Source: SourceManual, Since: t0, Until: t0.Add(time.Hour), Offences: 1, LastOffence: t0, Forget: t0.Add(48 * time.Hour)}
	b2 := NewBans(BanOptions{})
	if n := b2.Restore(append(snap, old), at(60)); n != 3 {
		t.Fatalf("Restore = %d bans, want 3", n)
	}
	want := []Ban{
		{Scope: pfx("192.0.2.9/32"), Source: SourceManual, Since: t0, Until: t0.Add(time.Hour), Offences: 1},
		{Scope: pfx("203.0.113.0/24"), Source: "ssh", Reason: "r", Origin: "gw-b", Since: t0, Until: t0.Add(time.Hour), Offences: 1},
		{Scope: pfx("2001:db8:9::/64"), Source: "ssh", Reason: "r", Since: t0, Until: t0.Add(time.Hour), Offences: 1},
	}
	if diff := cmp.Diff(want, b2.List(at(60)), cmpOpts); diff != "" {
		t.Errorf("List after Restore (-want +got):\n%s", diff)
	}
	if !b2.IsBanned(a16("2001:db8:9::ffff"), at(60)) || !b2.IsBanned(a16("203.0.113.1"), at(60)) {
		t.Error("restored prefix bans do not cover their addresses")
	}
}

// TestIsBannedAllocatesNothing with prefix bans of several lengths.
func TestIsBannedAllocatesNothing(t *testing.T) {
	b := NewBans(BanOptions{})
	for _, p := range []string{"2001:db8::/48", "2001:db8:1::/64", "192.0.2.0/24", "198.51.100.7/32"} {
		b.Add(pfx(p), time.Hour, "", at(0))
	}
	src := a16("2001:db8:2::1")
	if n := testing.AllocsPerRun(100, func() { b.IsBanned(src, at(1)) }); n != 0 {
		t.Errorf("IsBanned allocates %v times", n)
	}
}

// TestApplyBatch: a batch of decisions from elsewhere is applied as Apply
// would, in order, without notifications; it returns what changed for the
// kernel sets (a repeat or an older expiry changes nothing).
func TestApplyBatch(t *testing.T) {
	var rec recorder
	b := runBans(t, rec.opts())
	ban := func(scope string, until time.Duration) decision.Decision {
		return decision.Decision{Kind: decision.Ban, Scope: pfx(scope), Issued: t0, Expires: t0.Add(until), Origin: "gw-b", Source: "ssh"}
	}
	ds := []decision.Decision{
		ban("192.0.2.1/32", time.Hour),
		ban("192.0.2.2/32", time.Hour),
		ban("192.0.2.1/32", time.Hour),   // a repeat
		ban("192.0.2.2/32", time.Minute), // older
		{Kind: decision.Unban, Scope: pfx("192.0.2.2/32"), Origin: "gw-c"},
		{Kind: decision.Unban, Scope: pfx("192.0.2.9/32"), Origin: "gw-c"}, // not banned
		{Kind: decision.KnockWindow, Scope: pfx("192.0.2.3/32"), Expires: t0.Add(time.Hour), Sequence: "k"},
	}
	banned, lifted, err := b.ApplyBatch(ds, at(1))
	if !errors.Is(err, ErrKind) {
		t.Errorf("err %v, want ErrKind for the knock window", err)
	}
	var scopes []string
	for _, x := range banned {
		scopes = append(scopes, x.Scope.String()+" "+x.Origin)
	}
	if diff := cmp.Diff([]string{"192.0.2.1/32 gw-b", "192.0.2.2/32 gw-b"}, scopes); diff != "" {
		t.Errorf("banned (-want +got):\n%s", diff)
	}
	if len(lifted) != 1 || lifted[0] != pfx("192.0.2.2/32") {
		t.Errorf("lifted %v, want 192.0.2.2/32", lifted)
	}
	if !b.IsBanned(a16("192.0.2.1"), at(2)) || b.IsBanned(a16("192.0.2.2"), at(2)) {
		t.Error("table after the batch: want .1 banned, .2 not")
	}
	time.Sleep(20 * time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.events) != 0 {
		t.Errorf("notifications %v, want none", rec.events)
	}
}

// TestStatsCountApplied: bans applied from elsewhere are counted apart, so
// the metrics do not take them for guard bans.
func TestStatsCountApplied(t *testing.T) {
	b := NewBans(BanOptions{})
	b.Ban(a16("192.0.2.1"), rules.BanSpec{Duration: time.Minute}, "ssh", "r", at(0))
	d := decision.Decision{Kind: decision.Ban, Scope: pfx("198.51.100.0/24"), Expires: t0.Add(time.Hour), Origin: "gw-b"}
	b.Apply(d, at(0))
	b.Apply(d, at(0)) // no change: not counted again
	if st := b.Stats(); st.Banned != 2 || st.Applied != 1 {
		t.Errorf("Stats = %+v, want 2 banned of which 1 applied", st)
	}
}

// TestReserve: sizing the table for a backlog keeps what it holds and
// changes nothing of what a batch then does, and the table's bound
// still holds.
func TestReserve(t *testing.T) {
	b := NewBans(BanOptions{MaxEntries: 256})
	b.Ban(a16("198.51.100.7"), rules.BanSpec{Duration: time.Hour}, "ssh", "r", at(0))
	b.Ban(a16("2001:db8:1::1"), rules.BanSpec{Duration: time.Hour}, "ssh", "r", at(0))
	var ds []decision.Decision
	for i := range 1000 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32)
		if i%2 == 1 {
			p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 2, byte(i >> 8), byte(i)}), 64)
		}
		ds = append(ds, decision.Decision{Kind: decision.Ban, Scope: p, Issued: t0, Expires: t0.Add(time.Hour), Origin: "gw-b", Source: "ssh"})
	}
	b.Reserve(ds[:10], 100_000) // far more than the bound
	b.Reserve(ds[:10], 100_000) // sized already: nothing to do
	for _, s := range []string{"198.51.100.7", "2001:db8:1::1"} {
		if !b.IsBanned(a16(s), at(1)) {
			t.Errorf("%s no longer banned after Reserve", s)
		}
	}
	banned, _, err := b.ApplyBatch(ds, at(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(banned) != len(ds) {
		t.Errorf("%d bans applied, want %d", len(banned), len(ds))
	}
	if st := b.Stats(); st.Records > 256 {
		t.Errorf("%d records after Reserve and a batch of %d, want at most the bound 256", st.Records, len(ds))
	}
	if !b.IsBanned(ds[999].Scope.Addr().As16(), at(1)) || !b.IsBanned(ds[998].Scope.Addr().As16(), at(1)) {
		t.Error("the batch's last bans are not in force")
	}
	for i := range b.shards {
		if s := &b.shards[i]; s.room > b.perCap {
			t.Errorf("shard %d sized for %d records, beyond its bound %d", i, s.room, b.perCap)
		}
	}
	// A few decisions more than a large table was sized for: no shard
	// is copied for them.
	big := NewBans(BanOptions{MaxEntries: 1 << 16})
	backlog := make([]decision.Decision, 20_000)
	for i := range backlog {
		backlog[i] = decision.Decision{Kind: decision.Ban, Scope: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 32),
			Issued: t0, Expires: t0.Add(time.Hour), Origin: "gw-b", Source: "ssh"}
	}
	big.Reserve(backlog[:100], len(backlog))
	if _, _, err := big.ApplyBatch(backlog, at(1)); err != nil {
		t.Fatal(err)
	}
	rooms := make([]int, len(big.shards))
	for i := range big.shards {
		big.shards[i].room = len(big.shards[i].m) // filled up to its size
		rooms[i] = big.shards[i].room
	}
	big.Reserve(ds[:10], 70)
	for i := range big.shards {
		if big.shards[i].room != rooms[i] {
			t.Errorf("shard %d holding %d records was sized again for a batch of 70", i, len(big.shards[i].m))
			break
		}
	}
}

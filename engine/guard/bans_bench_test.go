package guard

import (
	"net/netip"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/rules"
)

// BenchmarkIsBannedFamilies is the per-packet ban check with 10,000 IPv4 and
// 10,000 IPv6 guard bans in force, for a banned and for an innocent
// source of each family.
func BenchmarkIsBannedFamilies(b *testing.B) {
	bans := guardBans()
	for _, c := range []struct {
		name   string
		addr   [16]byte
		banned bool
	}{
		{"IPv4 banned", addrN(77), true},
		{"IPv4 innocent", a16("198.51.100.1"), false},
		{"IPv6 banned", netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 77, 15: 1}).As16(), true},
		{"IPv6 innocent", a16("2001:db8:ffff::1"), false},
	} {
		benchLookup(b, bans, c.name, c.addr, c.banned)
	}
}

// BenchmarkIsBannedPrefixes is BenchmarkIsBannedFamilies with manual
// prefix bans of three more lengths per family in force: every lookup of
// an innocent source then probes four prefix lengths.
func BenchmarkIsBannedPrefixes(b *testing.B) {
	bans := guardBans()
	for _, p := range []string{"203.0.113.0/24", "172.16.0.0/16", "100.64.0.0/10", "2001:db8:2::/48", "2001:db8:3:400::/56", "2001:db8:5::1/128"} {
		if _, err := bans.Add(netip.MustParsePrefix(p), time.Hour, "", at(0)); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		addr   [16]byte
		banned bool
	}{
		{"IPv4 in a /24", a16("203.0.113.9"), true},
		{"IPv4 innocent", a16("198.51.100.1"), false},
		{"IPv6 in a /48", a16("2001:db8:2:77::1"), true},
		{"IPv6 innocent", a16("2001:db8:ffff::1"), false},
	} {
		benchLookup(b, bans, c.name, c.addr, c.banned)
	}
}

// guardBans returns a table with 10,000 IPv4 and 10,000 IPv6 guard bans
// (default prefixes: /32 and /64) in force.
func guardBans() *Bans {
	bans := NewBans(BanOptions{MaxEntries: 1 << 16})
	spec := rules.BanSpec{Duration: time.Hour}
	for i := range 10000 {
		bans.Ban(addrN(i), spec, "ssh", "r", at(0))
		bans.Ban(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, byte(i >> 8), byte(i), 15: 1}).As16(), spec, "ssh", "r", at(0))
	}
	return bans
}

// benchLookup measures IsBanned of addr, which must answer banned.
func benchLookup(b *testing.B, bans *Bans, name string, addr [16]byte, banned bool) {
	b.Run(name, func(b *testing.B) {
		if got := bans.IsBanned(addr, at(1)); got != banned {
			b.Fatalf("IsBanned = %v, want %v", got, banned)
		}
		b.ReportAllocs()
		for b.Loop() {
			bans.IsBanned(addr, at(1))
		}
	})
}

// fleetBacklog returns n ban decisions of another gateway, one per
// address, as a fleet link hands them over at start.
func fleetBacklog(n int) []decision.Decision {
	now := time.Now()
	ds := make([]decision.Decision, n)
	for i := range ds {
		ds[i] = decision.Decision{Kind: decision.Ban, Scope: decision.ScopeOf(netip.AddrFrom4([4]byte{172, 16 + byte(i>>16), byte(i >> 8), byte(i)})),
			Issued: now, Expires: now.Add(time.Hour), Origin: "gw-x", Source: "ssh-guard", Reason: "more than 3 new connections in 10s"}
	}
	return ds
}

// BenchmarkApplyBatch applies a backlog of 100,000 remote bans to an
// empty table in batches of 4,096, as a fleet gateway does at start.
// "reserved": each batch is preceded by Reserve with what is still
// pending, as the daemon does; "grown": the maps grow as they fill.
func BenchmarkApplyBatch(b *testing.B) {
	ds := fleetBacklog(100_000)
	for _, reserve := range []bool{false, true} {
		name := "grown"
		if reserve {
			name = "reserved"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bans := NewBans(BanOptions{MaxEntries: 1 << 18})
				now := clock.Now()
				for i := 0; i < len(ds); i += 4096 {
					batch := ds[i:min(i+4096, len(ds))]
					if reserve {
						bans.Reserve(batch, len(ds)-i)
					}
					if _, _, err := bans.ApplyBatch(batch, now); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkSnapshot takes the snapshot of 100,000 bans a state save
// encodes.
func BenchmarkSnapshot(b *testing.B) {
	bans := NewBans(BanOptions{MaxEntries: 1 << 18})
	if _, _, err := bans.ApplyBatch(fleetBacklog(100_000), clock.Now()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if n := len(bans.Snapshot()); n != 100_000 {
			b.Fatalf("%d records", n)
		}
	}
}

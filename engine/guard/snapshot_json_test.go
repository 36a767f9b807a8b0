package guard

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// TestBanSnapshotAppendJSON: AppendJSON writes the bytes json.Marshal
// writes, for plain records and for those it hands to json.Marshal.
func TestBanSnapshotAppendJSON(t *testing.T) {
	at := time.Date(2026, 12, 5, 9, 0, 0, 123456789, time.UTC)
	plain := BanSnapshot{Scope: netip.MustParsePrefix("192.0.2.7/32"), Addr: netip.MustParseAddr("192.0.2.7"),
		Source: "ssh", Reason: "4 connections in 1m0s", Origin: "gw-a", Since: at, Until: at.Add(time.Hour),
		Offences: 3, LastOffence: at, Forget: at.Add(24 * time.Hour)}
	for _, tc := range []struct {
		name string
		sn   func(BanSnapshot) BanSnapshot
	}{
		{"plain", func(s BanSnapshot) BanSnapshot { return s }},
		{"IPv6 prefix", func(s BanSnapshot) BanSnapshot {
			s.Scope, s.Addr = netip.MustParsePrefix("2001:db8::/64"), netip.MustParseAddr("2001:db8::")
			return s
		}},
		{"no origin, not banned", func(s BanSnapshot) BanSnapshot { s.Origin, s.Until = "", time.Time{}; return s }},
		{"older file: address only", func(s BanSnapshot) BanSnapshot { s.Scope = netip.Prefix{}; return s }},
		{"no scope or address", func(s BanSnapshot) BanSnapshot { s.Scope, s.Addr = netip.Prefix{}, netip.Addr{}; return s }},
		{"text to escape", func(s BanSnapshot) BanSnapshot { s.Reason = `"<b>" & \ é` + "\n"; return s }},
		{"empty text", func(s BanSnapshot) BanSnapshot { s.Source, s.Reason = "", ""; return s }},
		{"whole seconds", func(s BanSnapshot) BanSnapshot { s.Since = at.Truncate(time.Second); return s }},
		{"local time", func(s BanSnapshot) BanSnapshot { s.Since = at.In(time.FixedZone("X", 3600)); return s }},
		{"from the clock", func(s BanSnapshot) BanSnapshot { s.Until = clock.Wall(clock.Now()).UTC(); return s }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sn := tc.sn(plain)
			want, err := json.Marshal(&sn)
			if err != nil {
				t.Fatal(err)
			}
			got, err := sn.AppendJSON([]byte("x"))
			if err != nil || string(got) != "x"+string(want) {
				t.Errorf("AppendJSON = %s, %v\n         want x%s", got, err, want)
			}
		})
	}
}

// BenchmarkBanSnapshotJSON encodes the 100,000 records of a state save:
// "marshal" by reflection, "append" by AppendJSON.
func BenchmarkBanSnapshotJSON(b *testing.B) {
	bans := NewBans(BanOptions{MaxEntries: 1 << 18})
	if _, _, err := bans.ApplyBatch(fleetBacklog(100_000), clock.Now()); err != nil {
		b.Fatal(err)
	}
	sns := bans.Snapshot()
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for i := 0; i < len(sns); i += 1024 {
				if _, err := json.Marshal(sns[i:min(i+1024, len(sns))]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			for i := range sns {
				if i%1024 == 0 {
					buf = buf[:0]
				}
				var err error
				if buf, err = sns[i].AppendJSON(buf); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

package decision

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	t0 = time.Date(2026, 12, 4, 20, 0, 0, 123, time.UTC)
	t1 = t0.Add(10 * time.Minute)
)

func TestParseScope(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     netip.Prefix
		err      bool
	}{
		{name: "IPv4 address", in: "192.0.2.7", want: netip.MustParsePrefix("192.0.2.7/32")},
		{name: "IPv6 address", in: "2001:db8::1", want: netip.MustParsePrefix("2001:db8::1/128")},
		{name: "IPv4-mapped address is IPv4", in: "::ffff:192.0.2.7", want: netip.MustParsePrefix("192.0.2.7/32")},
		{name: "IPv6 /64", in: "2001:db8:1::/64", want: netip.MustParsePrefix("2001:db8:1::/64")},
		{name: "IPv4 /24", in: "192.0.2.0/24", want: netip.MustParsePrefix("192.0.2.0/24")},
		{name: "IPv4-mapped /120 is an IPv4 /24", in: "::ffff:192.0.2.0/120", want: netip.MustParsePrefix("192.0.2.0/24")},
		{name: "whole IPv4 space", in: "0.0.0.0/0", want: netip.MustParsePrefix("0.0.0.0/0")},
		{name: "host bits set", in: "2001:db8::1/64", err: true},
		{name: "IPv4-mapped shorter than /96", in: "::ffff:0.0.0.0/80", err: true},
		{name: "zone", in: "fe80::1%eth0", err: true},
		{name: "garbage", in: "banana", err: true},
		{name: "prefix too long", in: "192.0.2.0/33", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseScope(tc.in)
			if tc.err {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("ParseScope(%q) = %v, %v; want ErrInvalid", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseScope(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func validBan() Decision {
	return Decision{Kind: Ban, Scope: netip.MustParsePrefix("2001:db8:1::/64"), Issued: t0, Expires: t1,
		Origin: "gw-a", Source: "ssh", Reason: "more than 3 new connections in 10s"}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Decision)
		ok   bool
	}{
		{name: "a guard's prefix ban", edit: func(*Decision) {}, ok: true},
		{name: "unban without expiry", edit: func(d *Decision) { d.Kind, d.Expires = Unban, time.Time{} }, ok: true},
		{name: "unallow without expiry", edit: func(d *Decision) { d.Kind, d.Expires = Unallow, time.Time{} }, ok: true},
		{name: "unallow with expiry", edit: func(d *Decision) { d.Kind = Unallow }},
		{name: "knock window of one address", edit: func(d *Decision) {
			d.Kind, d.Sequence, d.Scope = KnockWindow, "ssh-knock", netip.MustParsePrefix("192.0.2.7/32")
		}, ok: true},
		{name: "allow", edit: func(d *Decision) { d.Kind = Allow }, ok: true},
		{name: "recent entry", edit: func(d *Decision) {
			d.Kind, d.List, d.Scope = Recent, "portscan", netip.MustParsePrefix("192.0.2.7/32")
		}, ok: true},
		{name: "recent without a list", edit: func(d *Decision) { d.Kind, d.Scope = Recent, netip.MustParsePrefix("192.0.2.7/32") }},
		{name: "recent of a prefix", edit: func(d *Decision) { d.Kind, d.List = Recent, "portscan" }},
		{name: "recent without issue time", edit: func(d *Decision) {
			d.Kind, d.List, d.Scope, d.Issued = Recent, "portscan", netip.MustParsePrefix("192.0.2.7/32"), time.Time{}
		}},
		{name: "ban with a list", edit: func(d *Decision) { d.List = "portscan" }},
		{name: "long list name", edit: func(d *Decision) {
			d.Kind, d.List, d.Scope = Recent, strings.Repeat("l", MaxList+1), netip.MustParsePrefix("192.0.2.7/32")
		}},
		{name: "time step of a ban", edit: func(d *Decision) { d.TimeStep = 7 }},
		{name: "negative time step", edit: func(d *Decision) {
			d.Kind, d.Sequence, d.Scope, d.TimeStep = KnockUse, "k", netip.MustParsePrefix("192.0.2.7/32"), -1
		}},
		{name: "unknown kind", edit: func(d *Decision) { d.Kind = 9 }},
		{name: "zero kind", edit: func(d *Decision) { d.Kind = 0 }},
		{name: "zero scope", edit: func(d *Decision) { d.Scope = netip.Prefix{} }},
		{name: "unmasked scope", edit: func(d *Decision) { d.Scope = netip.MustParsePrefix("2001:db8::1/64") }},
		{name: "mapped scope", edit: func(d *Decision) { d.Scope = netip.MustParsePrefix("::ffff:192.0.2.7/128") }},
		{name: "ban without expiry", edit: func(d *Decision) { d.Expires = time.Time{} }},
		{name: "unban with expiry", edit: func(d *Decision) { d.Kind = Unban }},
		{name: "ban with a sequence", edit: func(d *Decision) { d.Sequence = "x" }},
		{name: "knock use without a sequence", edit: func(d *Decision) {
			d.Kind, d.Scope = KnockUse, netip.MustParsePrefix("192.0.2.7/32")
		}},
		{name: "knock window of a prefix", edit: func(d *Decision) { d.Kind, d.Sequence = KnockWindow, "k" }},
		{name: "expiry before 1970", edit: func(d *Decision) { d.Expires = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{name: "expiry after 2262", edit: func(d *Decision) { d.Expires = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{name: "long reason", edit: func(d *Decision) { d.Reason = strings.Repeat("x", MaxReason+1) }},
		{name: "long origin", edit: func(d *Decision) { d.Origin = strings.Repeat("x", MaxOrigin+1) }},
		{name: "control character", edit: func(d *Decision) { d.Reason = "a\nb" }},
		{name: "not UTF-8", edit: func(d *Decision) { d.Source = "\xff" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := validBan()
			tc.edit(&d)
			err := d.Validate()
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Fatalf("Validate(%v) = %v; want ok %v", d, err, tc.ok)
			}
		})
	}
}

func TestWireRoundTrip(t *testing.T) {
	for _, d := range []Decision{
		validBan(),
		{Kind: Ban, Scope: netip.MustParsePrefix("192.0.2.0/24"), Expires: t1, Source: SourceManual},
		{Kind: Unban, Scope: netip.MustParsePrefix("192.0.2.7/32"), Issued: t0, Source: SourceManual},
		{Kind: KnockWindow, Scope: netip.MustParsePrefix("2001:db8::7/128"), Issued: t0, Expires: t1, Source: "ssh-knock", Sequence: "ssh-knock"},
		{Kind: KnockUse, Scope: netip.MustParsePrefix("198.51.100.1/32"), Expires: t1, Sequence: "ssh-knock"},
		{Kind: KnockUse, Scope: netip.MustParsePrefix("198.51.100.1/32"), Expires: t1, Sequence: "rot", TimeStep: 59012345},
		{Kind: Recent, Scope: netip.MustParsePrefix("198.51.100.9/32"), Issued: t0, Expires: t1, Origin: "gw-a", List: "portscan"},
		{Kind: Unallow, Scope: netip.MustParsePrefix("192.0.2.0/24"), Issued: t0, Origin: "gw-a", Source: SourceManual},
		{Kind: Recent, Scope: netip.MustParsePrefix("2001:db8::9/128"), Issued: t0, Expires: t1, Origin: strings.Repeat("o", MaxOrigin),
			Source: strings.Repeat("s", MaxSource), Reason: strings.Repeat("r", MaxReason), List: strings.Repeat("l", MaxList)},
		{Kind: Ban, Scope: netip.MustParsePrefix("::/0"), Expires: t1, Origin: strings.Repeat("o", MaxOrigin),
			Source: strings.Repeat("s", MaxSource), Reason: strings.Repeat("r", MaxReason)},
	} {
		t.Run(d.String(), func(t *testing.T) {
			b, err := d.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MaxSize {
				t.Fatalf("encoded %d bytes, more than MaxSize %d", len(b), MaxSize)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal(Marshal(%v)): %v", d, err)
			}
			if diff := cmp.Diff(d, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
	// A /64 ban as the fleet link carries it: 36 bytes of header and
	// address, then its texts.
	b, _ := (&Decision{Kind: Ban, Scope: netip.MustParsePrefix("2001:db8:1::/64"), Expires: t1}).Marshal()
	if len(b) != 4+16+16+4 {
		t.Errorf("a bare IPv6 ban encodes to %d bytes, want %d", len(b), 4+16+16+4)
	}
}

// TestWireEarlierKinds pins the bytes of the kinds that existed before
// Recent: adding a kind must leave them as they were, so that every
// gateway reads what the others publish during a rolling upgrade, and the
// outbox a state file kept is still read after one.
func TestWireEarlierKinds(t *testing.T) {
	for _, tc := range []struct {
		name string
		hex  string
		want Decision
	}{
		{
			// A manual IPv4 /24 ban made at gw-a: header, 4 address
			// bytes, issued 0, expires t1, four strings.
			name: "ban",
			hex:  "01010418c0000200" + "0000000000000000" + "18ee25ecb82ef07b" + "04" + "67772d61" + "066d616e75616c" + "00" + "0172",
			want: Decision{Kind: Ban, Scope: netip.MustParsePrefix("192.0.2.0/24"), Expires: t1, Origin: "gw-a", Source: SourceManual, Reason: "r"},
		},
		{
			// A one-shot use of a rotating sequence: the time step
			// follows the times.
			name: "knock-use",
			hex:  "01040420c6336401" + "0000000000000000" + "18ee25ecb82ef07b" + "0000000000000007" + "00" + "00" + "016b" + "00",
			want: Decision{Kind: KnockUse, Scope: netip.MustParsePrefix("198.51.100.1/32"), Expires: t1, Sequence: "k", TimeStep: 7},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := hex.DecodeString(tc.hex)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tc.hex, err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
			again, _ := got.Marshal()
			if !bytes.Equal(again, b) {
				t.Errorf("re-encoded %x, want %s", again, tc.hex)
			}
		})
	}
}

func TestUnmarshalRefuses(t *testing.T) {
	good, _ := (&Decision{Kind: Ban, Scope: netip.MustParsePrefix("192.0.2.0/24"), Expires: t1, Reason: "r"}).Marshal()
	with := func(i int, v byte) []byte { b := append([]byte(nil), good...); b[i] = v; return b }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version 2", with(0, 2)},
		{"kind 0", with(1, 0)},
		{"kind 200", with(1, 200)},
		{"family 5", with(2, 5)},
		{"prefix /33 of IPv4", with(3, 33)},
		{"host bits past the prefix", with(7, 1)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
		{"string longer than the rest", with(len(good)-2, 9)},
		{"oversized", make([]byte, MaxSize+1)},
		{"recent without its list", func() []byte {
			b, _ := (&Decision{Kind: Recent, Scope: netip.MustParsePrefix("192.0.2.7/32"), Issued: t0, Expires: t1, List: "p"}).Marshal()
			return b[:len(b)-2]
		}()},
		{"recent with an empty list", func() []byte {
			b, _ := (&Decision{Kind: Recent, Scope: netip.MustParsePrefix("192.0.2.7/32"), Issued: t0, Expires: t1, List: "p"}).Marshal()
			return append(b[:len(b)-2], 0)
		}()},
		{"recent with a list longer than the rest", func() []byte {
			b, _ := (&Decision{Kind: Recent, Scope: netip.MustParsePrefix("192.0.2.7/32"), Issued: t0, Expires: t1, List: "p"}).Marshal()
			b[len(b)-2] = 2
			return b
		}()},
		{"mapped IPv6", func() []byte {
			b := []byte{Version, byte(Ban), 6, 128}
			b = append(b, netip.MustParseAddr("::ffff:192.0.2.7").AsSlice()...)
			b = append(b, good[8:]...)
			return b
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d, err := Unmarshal(tc.b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Unmarshal = %v, %v; want ErrMalformed", d, err)
			}
		})
	}
}

func TestKindText(t *testing.T) {
	for k := Kind(1); k <= maxKind; k++ {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Kind
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Errorf("kind %d: %q -> %v, %v", k, b, back, err)
		}
	}
	if _, err := Kind(0).MarshalText(); err == nil {
		t.Error("kind 0 marshals")
	}
}

// BenchmarkUnmarshal decodes a remote ban as the fleet link does for each
// message of a backlog.
func BenchmarkUnmarshal(b *testing.B) {
	d := Decision{Kind: Ban, Scope: ScopeOf(netip.MustParseAddr("172.16.1.2")), Issued: time.Now(),
		Expires: time.Now().Add(time.Hour), Origin: "gw-x", Source: "ssh", Reason: "4 connections in 1m0s"}
	m, err := d.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(m); err != nil {
			b.Fatal(err)
		}
	}
}

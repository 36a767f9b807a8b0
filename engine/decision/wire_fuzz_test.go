package decision

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzUnmarshal feeds the fleet link's decoder arbitrary bytes: it must
// never panic, never accept more than MaxSize bytes, and what it accepts
// must validate and encode back to exactly the same bytes (the encoding is
// canonical).
func FuzzUnmarshal(f *testing.F) {
	for _, d := range []Decision{
		validBan(),
		{Kind: Ban, Scope: netip.MustParsePrefix("192.0.2.0/24"), Expires: t1, Source: SourceManual},
		{Kind: Unban, Scope: netip.MustParsePrefix("192.0.2.7/32"), Issued: t0},
		{Kind: KnockWindow, Scope: netip.MustParsePrefix("2001:db8::7/128"), Expires: t1, Sequence: "ssh-knock"},
		{Kind: KnockUse, Scope: netip.MustParsePrefix("198.51.100.1/32"), Expires: t1, Sequence: "k", TimeStep: 1234},
		{Kind: Allow, Scope: netip.MustParsePrefix("10.0.0.0/8"), Expires: t1, Origin: "gw-b"},
		{Kind: Recent, Scope: netip.MustParsePrefix("198.51.100.9/32"), Issued: t0, Expires: t1, Origin: "gw-b", List: "portscan"},
		{Kind: Recent, Scope: netip.MustParsePrefix("2001:db8::9/128"), Issued: t0, Expires: t1, List: "l"},
		{Kind: Unallow, Scope: netip.MustParsePrefix("10.0.0.0/8"), Issued: t0, Origin: "gw-b"},
	} {
		b, err := d.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{Version, byte(Ban), 6, 64})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Unmarshal(b)
		if err != nil {
			return
		}
		if len(b) > MaxSize {
			t.Fatalf("accepted %d bytes, more than MaxSize", len(b))
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("accepted an invalid decision %v: %v", d, err)
		}
		again, err := d.Marshal()
		if err != nil {
			t.Fatalf("re-encode %v: %v", d, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical:\n in  %x\n out %x", b, again)
		}
	})
}

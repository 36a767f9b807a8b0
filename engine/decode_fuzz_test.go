package engine

import (
	"testing"
)

// FuzzDecode feeds the decoder arbitrary bytes, seeded with every fixture
// (and the corpus under testdata/fuzz/FuzzDecode). Whatever the input, Decode
// must not panic and must leave a Parsed whose offsets stay inside the packet.
func FuzzDecode(f *testing.F) {
	for _, tt := range decodeFixtures() {
		f.Add(tt.b)
	}
	d := NewDecoder()
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Parsed
		d.Decode(b, &p)
		checkDecoded(t, b, &p)
		// Deterministic: a second decode with the same decoder agrees.
		q := p
		d.Decode(b, &p)
		if p != q {
			t.Fatalf("second Decode differs: %+v, then %+v", q, p)
		}
	})
}

// checkDecoded asserts the invariants every decoded packet holds.
func checkDecoded(t *testing.T, b []byte, p *Parsed) {
	t.Helper()
	if p.Kind > KindUnsupported {
		t.Fatalf("Kind %d is not a valid kind", p.Kind)
	}
	if p.PayloadStart < 0 || p.PayloadLen < 0 || p.PayloadStart+p.PayloadLen > len(b) {
		t.Fatalf("payload [%d, +%d) outside the %d-byte packet", p.PayloadStart, p.PayloadLen, len(b))
	}
	if p.IPHeaderLen < 0 || p.IPHeaderLen > len(b) {
		t.Fatalf("IPHeaderLen %d outside the %d-byte packet", p.IPHeaderLen, len(b))
	}
	if p.PayloadLen > 0 && p.PayloadStart < p.IPHeaderLen {
		t.Fatalf("payload starts at %d, inside the %d-byte IP header", p.PayloadStart, p.IPHeaderLen)
	}
	if p.Hook != 0 || p.InIface != "" || p.OutIface != "" || p.Mark != 0 {
		t.Fatalf("Decode set caller fields: %+v", p.Packet)
	}
	if p.Kind != KindOK {
		if p.SrcPort != 0 || p.DstPort != 0 || p.TCPFlags != 0 || p.PayloadLen != 0 || p.HasInner || p.ICMPID != 0 {
			t.Fatalf("Kind %d with transport fields: %+v", p.Kind, p)
		}
	}
	if p.Kind == KindUnsupported && *p != (Parsed{Kind: KindUnsupported}) {
		t.Fatalf("unsupported packet with fields: %+v", p)
	}
	if p.Kind != KindUnsupported && len(b) > 0 {
		switch b[0] >> 4 {
		case 4:
			if p.Family != 4 {
				t.Fatalf("IPv4 packet with Family %d", p.Family)
			}
			if p.Src != ([16]byte{}) && (p.Src[10] != 0xff || p.Src[11] != 0xff) {
				t.Fatalf("IPv4 source %x not IPv4-mapped", p.Src)
			}
		case 6:
			if p.Family != 6 {
				t.Fatalf("IPv6 packet with Family %d", p.Family)
			}
		}
	}
}

// TestDecodeCutAndCorrupted runs, without the fuzzer, the inputs a
// truncating or bit-flipping network makes of every fixture: each prefix,
// and each byte set to 0x00 and to 0xff. Every one decodes without a panic,
// keeps the invariants and allocates nothing.
func TestDecodeCutAndCorrupted(t *testing.T) {
	var inputs [][]byte
	for _, tt := range decodeFixtures() {
		for n := range len(tt.b) {
			inputs = append(inputs, tt.b[:n])
		}
		for i := range tt.b {
			for _, v := range []byte{0x00, 0xff} {
				inputs = append(inputs, decEdit(tt.b, func(b []byte) []byte { b[i] = v; return b }))
			}
		}
	}
	d := NewDecoder()
	var p Parsed
	for _, b := range inputs {
		d.Decode(b, &p)
		checkDecoded(t, b, &p)
	}
	if n := testing.AllocsPerRun(3, func() {
		for _, b := range inputs {
			d.Decode(b, &p)
		}
	}); n != 0 {
		t.Errorf("decoding %d cut and corrupted packets allocates %v times, want 0", len(inputs), n)
	}
}

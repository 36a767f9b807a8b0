package rules

import "testing"

func TestMarkBits(t *testing.T) {
	tests := []struct {
		name string
		mask uint32
		want uint32
	}{
		{name: "default mask", mask: 0x00ff0000, want: 0x00070000},
		{name: "exactly three bits", mask: 0x00000038, want: 0x00000038},
		{name: "top bits", mask: 0xe0000000, want: 0xe0000000},
		{name: "too few bits at the top", mask: 0xc0000000, want: 0},
		{name: "one bit", mask: 0x00010000, want: 0},
		{name: "hole in the low bits", mask: 0x000000f5, want: 0},
		{name: "zero", mask: 0, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Queue{MarkMask: tt.mask}).MarkBits(); got != tt.want {
				t.Errorf("MarkBits(%#x) = %#x, want %#x", tt.mask, got, tt.want)
			}
		})
	}
}

func TestRejectMark(t *testing.T) {
	q := Queue{MarkMask: 0x00ff0000}
	want := map[RejectKind]uint32{
		RejectNone:                 0,
		RejectTCPReset:             0x00010000,
		RejectICMPPortUnreachable:  0x00020000,
		RejectICMPProtoUnreachable: 0x00030000,
		RejectICMPHostUnreachable:  0x00040000,
		RejectICMP6AdmProhibited:   0x00050000,
		RejectICMP6PortUnreachable: 0x00060000,
		NumRejectKinds:             0,
	}
	for k, w := range want {
		if got := q.RejectMark(k); got != w {
			t.Errorf("RejectMark(%v) = %#x, want %#x", k, got, w)
		}
	}
	// Every kind is distinct, non-zero and inside the mask bits, so the
	// engine's (old &^ mask) | mark round-trips through the kernel's
	// --mark V/MarkBits match.
	seen := map[uint32]RejectKind{}
	for k := RejectNone + 1; k < NumRejectKinds; k++ {
		m := q.RejectMark(k)
		if m == 0 || m&^q.MarkBits() != 0 {
			t.Errorf("RejectMark(%v) = %#x, outside MarkBits %#x", k, m, q.MarkBits())
		}
		if o, dup := seen[m]; dup {
			t.Errorf("RejectMark(%v) = RejectMark(%v) = %#x", k, o, m)
		}
		seen[m] = k
		old := uint32(0xdead00be) // other users' bits survive
		got := (old&^q.MarkMask | m) & q.MarkBits()
		if got != m {
			t.Errorf("mark of %v after repeat = %#x, want %#x", k, got, m)
		}
	}
	if got := (Queue{MarkMask: 1}).RejectMark(RejectTCPReset); got != 0 {
		t.Errorf("RejectMark with an unusable mask = %#x, want 0", got)
	}
}

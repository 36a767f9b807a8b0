package rules

import "math/bits"

// rejectKindBits is how many mark bits name a reject kind: enough for every
// RejectKind below NumRejectKinds.
var rejectKindBits = bits.Len(uint(NumRejectKinds - 1))

// MarkBits returns the bits of q.MarkMask that carry a reject kind: the
// lowest rejectKindBits bits of the mask, starting at its lowest set bit.
// The kernel's REJECT rules match `--mark V/MarkBits()`.
//
// MarkBits returns 0 when the mask has no such run of contiguous bits at its
// low end (for example 0, or 0x00010000); such a mask cannot name reject
// kinds and is refused by validation and by the ruleset generator.
func (q Queue) MarkBits() uint32 {
	if q.MarkMask == 0 {
		return 0
	}
	shift := bits.TrailingZeros32(q.MarkMask)
	if shift+rejectKindBits > 32 {
		return 0
	}
	field := uint32(1)<<rejectKindBits - 1
	field <<= shift
	if field&q.MarkMask != field {
		return 0
	}
	return field
}

// RejectMark returns the packet mark value, within q.MarkBits, that names
// reject kind k: the kind's number shifted to the mask's lowest set bit. The
// engine answers NF_REPEAT with mark = (old &^ q.MarkMask) | q.RejectMark(k)
// and the kernel chain answers the repeated packet with REJECT.
//
// RejectMark returns 0 (no reject) for RejectNone, for an unknown kind and
// when MarkBits is 0.
func (q Queue) RejectMark(k RejectKind) uint32 {
	field := q.MarkBits()
	if field == 0 || k == RejectNone || k >= NumRejectKinds {
		return 0
	}
	return uint32(k) << bits.TrailingZeros32(field)
}

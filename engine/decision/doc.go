// Package decision is the one description of a firewall decision that the
// ban table (engine/guard), the knock windows (engine/knock), the daemon's
// state file, the CLI and the fleet link share: who it is about (Scope, one
// address or a prefix), what it is (Kind: a ban, its lifting, a knock
// window, a one-shot knock use, an allowance and its end, a recent-list
// entry), until when (Expires, wall
// time), where it was made (Origin, a gateway name; empty for this one),
// who made it (Source: a guard's name, "manual", "kernel") and why
// (Reason).
//
// It is a leaf package: it imports only the standard library, so that
// engine/guard, engine/knock, engine/control and the daemon can all import
// it without one of them importing another, and so that the fleet link can
// carry exactly what the engine produces.
//
// Times are wall times (time.Time): a decision outlives the process that
// made it and travels between hosts. The engine keeps its deadlines on its
// own monotonic clock (engine/clock) and converts at the edges with
// clock.Mono and clock.Wall.
//
// # Wire encoding
//
// Marshal and Unmarshal give a compact binary form, the one the fleet link
// publishes. Version 1, big-endian:
//
//	byte 0        version (1)
//	byte 1        kind
//	byte 2        address family: 4 or 6
//	byte 3        prefix length
//	4 or 16 bytes the prefix's address (masked)
//	8 bytes       Issued, unix nanoseconds (0: unknown)
//	8 bytes       Expires, unix nanoseconds (0: none)
//	8 bytes       TimeStep, for KnockUse only (absent for other kinds)
//	4 strings     Origin, Source, Sequence, Reason: one length byte, then
//	              that many bytes of UTF-8
//	1 string      List, for Recent only (absent for other kinds)
//
// Fields that only one kind has (TimeStep, List) are written only for it,
// so adding a kind changes nothing of the others' bytes: a decoder of this
// version reads every message of the kinds it knew before, and an older
// decoder refuses a kind it does not know (the fleet link drops and counts
// it) instead of misreading it. The version changes only if an existing
// kind's layout does.
//
// Unmarshal is strict: a message longer than MaxSize, of another version,
// with trailing bytes, an unknown kind, a prefix length beyond the family,
// an address with bits set past the prefix, an over-long or non-UTF-8 or
// control-character string, or a field its kind forbids or requires is
// refused with an error wrapping ErrMalformed; it never panics (a native
// fuzz test feeds it arbitrary bytes).
package decision

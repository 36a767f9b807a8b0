package guard

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/rules"
)

// Prefix lengths of a guard's ban when its spec names none: one IPv4
// address; the /64 of an IPv6 offender, which one host owns whole (SLAAC,
// privacy addresses) and can walk through at will.
const (
	DefaultPrefix4 = 32
	DefaultPrefix6 = 64
)

// The widest bans accepted. A ban wider than these is a policy: write a
// rule. hash:net sets take no /0 at all.
const (
	MinPrefix4 = rules.BanMinPrefix4
	MinPrefix6 = rules.BanMinPrefix6
)

// key is a ban's scope as the table keys it: the masked address in its
// 16-byte form (IPv4 mapped) and the prefix length over those 16 bytes
// (an IPv4 /24 is 120). Scopes are canonical (decision.Canonical), so an
// IPv4 key and an IPv6 key never collide.
type key struct {
	a    [16]byte
	bits uint8
}

// v4InV6 is the first 12 bytes of an IPv4-mapped address.
var v4InV6 = [12]byte{10: 0xff, 11: 0xff}

// isV4 reports whether the 16-byte address a is an IPv4 one.
func isV4(a *[16]byte) bool { return [12]byte(a[:12]) == v4InV6 }

// mask returns a with the bits past bits (0..128) cleared.
func mask(a *[16]byte, bits uint8) [16]byte {
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	if bits < 64 {
		hi &= ^uint64(0) << (64 - bits)
		lo = 0
	} else {
		lo &= ^uint64(0) << (128 - bits) // bits 128: shift 0, all kept
	}
	var out [16]byte
	binary.BigEndian.PutUint64(out[:8], hi)
	binary.BigEndian.PutUint64(out[8:], lo)
	return out
}

// scopeKey returns the key of the scope p, refusing invalid scopes,
// prefixes with bits set past their length, and scopes wider than
// MinPrefix4/MinPrefix6.
func scopeKey(p netip.Prefix) (key, error) {
	c, ok := decision.Canonical(p)
	if !ok {
		return key{}, fmt.Errorf("%w: %v", ErrBadScope, p)
	}
	if p.Masked() != p {
		return key{}, fmt.Errorf("%w: %s has bits set past /%d (%s?)", ErrBadScope, p, p.Bits(), c)
	}
	if c.Addr().Is4() {
		if c.Bits() < MinPrefix4 {
			return key{}, fmt.Errorf("%w: %s is wider than /%d", ErrBadScope, c, MinPrefix4)
		}
		return key{a: c.Addr().As16(), bits: uint8(96 + c.Bits())}, nil
	}
	if c.Bits() < MinPrefix6 {
		return key{}, fmt.Errorf("%w: %s is wider than /%d", ErrBadScope, c, MinPrefix6)
	}
	return key{a: c.Addr().As16(), bits: uint8(c.Bits())}, nil
}

// guardKey returns the key a guard with spec bans when src offends: its
// /Prefix4 (IPv4) or /Prefix6 (IPv6).
func guardKey(src [16]byte, spec *rules.BanSpec) key {
	if isV4(&src) {
		bits := spec.Prefix4
		if bits == 0 {
			bits = DefaultPrefix4
		}
		bits = min(max(bits, MinPrefix4), 32) + 96
		return key{a: mask(&src, uint8(bits)), bits: uint8(bits)}
	}
	bits := spec.Prefix6
	if bits == 0 {
		bits = DefaultPrefix6
	}
	bits = min(max(bits, MinPrefix6), 128)
	return key{a: mask(&src, uint8(bits)), bits: uint8(bits)}
}

// v4 reports whether the key is an IPv4 scope.
func (k key) v4() bool { return k.bits >= 96 && isV4(&k.a) }

// prefix returns the scope k stands for, canonical.
func (k key) prefix() netip.Prefix {
	a := netip.AddrFrom16(k.a)
	if k.v4() {
		return netip.PrefixFrom(a.Unmap(), int(k.bits)-96)
	}
	return netip.PrefixFrom(a, int(k.bits))
}

// lengths are the prefix lengths (over 16 bytes) of the bans in force,
// per family, longest first: IsBanned looks up only these.
type lengths struct {
	v4, v6 []uint8
}

// lengthCounts counts the bans in force per family and prefix length; it
// rebuilds the lengths IsBanned reads when a length comes into or goes out
// of use. Its owner serializes the calls.
type lengthCounts struct {
	n [2][129]int32
}

// add counts delta bans of k and returns the new lengths when the set of
// lengths in use changed, else nil.
func (c *lengthCounts) add(k key, delta int32) *lengths {
	fam := 0
	if k.v4() {
		fam = 1
	}
	before := c.n[fam][k.bits] > 0
	c.n[fam][k.bits] += delta
	if before == (c.n[fam][k.bits] > 0) {
		return nil
	}
	l := &lengths{}
	for bits := 128; bits >= 0; bits-- {
		if c.n[0][bits] > 0 {
			l.v6 = append(l.v6, uint8(bits))
		}
		if c.n[1][bits] > 0 {
			l.v4 = append(l.v4, uint8(bits))
		}
	}
	return l
}

// lessScope orders scopes by address, then shorter prefixes first.
func lessScope(a, b netip.Prefix) bool {
	if a.Addr() != b.Addr() {
		return a.Addr().Less(b.Addr())
	}
	return a.Bits() < b.Bits()
}

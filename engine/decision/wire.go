package decision

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// Version is the wire encoding's version, its first byte.
const Version = 1

// MaxSize bounds an encoded decision: the header, an IPv6 address, two
// times, a time step and the four strings at their longest (a Recent
// decision's list, which has no sequence nor time step, fits in less).
const MaxSize = 4 + 16 + 8 + 8 + 8 + 4 + MaxOrigin + MaxSource + MaxSequence + MaxReason

// Marshal returns the wire encoding of d (see the package documentation),
// or an error wrapping ErrInvalid when d does not Validate.
func (d *Decision) Marshal() ([]byte, error) {
	return d.AppendBinary(make([]byte, 0, 64))
}

// AppendBinary appends the wire encoding of d to b
// (encoding.BinaryAppender).
func (d *Decision) AppendBinary(b []byte) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return b, err
	}
	a := d.Scope.Addr()
	fam := byte(6)
	if a.Is4() {
		fam = 4
	}
	b = append(b, Version, byte(d.Kind), fam, byte(d.Scope.Bits()))
	b = append(b, a.AsSlice()...)
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(d.Issued)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(d.Expires)))
	if d.Kind == KnockUse {
		b = binary.BigEndian.AppendUint64(b, uint64(d.TimeStep))
	}
	strs := [...]string{d.Origin, d.Source, d.Sequence, d.Reason, d.List}
	n := len(strs) - 1 // the list is written for Recent only
	if d.Kind == Recent {
		n++
	}
	for _, s := range strs[:n] {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (d Decision) MarshalBinary() ([]byte, error) { return d.Marshal() }

// UnmarshalBinary implements encoding.BinaryUnmarshaler (see Unmarshal).
func (d *Decision) UnmarshalBinary(b []byte) error {
	v, err := Unmarshal(b)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Unmarshal decodes one decision, strictly: anything but exactly one valid
// version-1 decision of at most MaxSize bytes is an error wrapping
// ErrMalformed. It never panics.
func Unmarshal(b []byte) (Decision, error) {
	var d Decision
	if len(b) > MaxSize {
		return d, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxSize)
	}
	r := reader{b: b}
	hdr := r.take(4)
	if hdr == nil {
		return d, fmt.Errorf("%w: %d bytes, shorter than a header", ErrMalformed, len(b))
	}
	if hdr[0] != Version {
		return d, fmt.Errorf("%w: version %d, want %d", ErrMalformed, hdr[0], Version)
	}
	d.Kind = Kind(hdr[1])
	var alen int
	switch hdr[2] {
	case 4:
		alen = 4
	case 6:
		alen = 16
	default:
		return d, fmt.Errorf("%w: address family %d", ErrMalformed, hdr[2])
	}
	raw := r.take(alen)
	if raw == nil {
		return d, fmt.Errorf("%w: truncated address", ErrMalformed)
	}
	addr, _ := netip.AddrFromSlice(raw)
	if int(hdr[3]) > addr.BitLen() {
		return d, fmt.Errorf("%w: prefix length %d for IPv%d", ErrMalformed, hdr[3], hdr[2])
	}
	d.Scope = netip.PrefixFrom(addr, int(hdr[3]))
	times := r.take(16)
	if times == nil {
		return d, fmt.Errorf("%w: truncated times", ErrMalformed)
	}
	d.Issued = fromUnixNano(int64(binary.BigEndian.Uint64(times[:8])))
	d.Expires = fromUnixNano(int64(binary.BigEndian.Uint64(times[8:])))
	if d.Kind == KnockUse {
		ts := r.take(8)
		if ts == nil {
			return d, fmt.Errorf("%w: truncated time step", ErrMalformed)
		}
		d.TimeStep = int64(binary.BigEndian.Uint64(ts))
	}
	strs := [...]*string{&d.Origin, &d.Source, &d.Sequence, &d.Reason, &d.List}
	nstr := len(strs) - 1
	if d.Kind == Recent {
		nstr++
	}
	// The strings are cut from one copy of the rest of the message: one
	// allocation per decision instead of one per string (a backlog of
	// 100,000 decodes in the link).
	rest := string(r.b)
	for _, s := range strs[:nstr] {
		n := r.take(1)
		if n == nil {
			return d, fmt.Errorf("%w: truncated strings", ErrMalformed)
		}
		at := len(rest) - len(r.b)
		if r.take(int(n[0])) == nil {
			return d, fmt.Errorf("%w: truncated string", ErrMalformed)
		}
		*s = rest[at : at+int(n[0])]
	}
	if len(r.b) != 0 {
		return d, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(r.b))
	}
	if addr.Is4In6() {
		return d, fmt.Errorf("%w: IPv4-mapped address in an IPv6 scope", ErrMalformed)
	}
	if err := d.Validate(); err != nil {
		return d, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return d, nil
}

type reader struct{ b []byte }

// take returns the next n bytes, or nil when fewer are left.
func (r *reader) take(n int) []byte {
	if n > len(r.b) {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// unixNano is t in unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromUnixNano is the inverse of unixNano, in UTC.
func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

package decision

import (
	"fmt"
	"math"
	"net/netip"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind is what a decision decides.
type Kind uint8

// Kinds. Their numbers are part of the wire encoding: never renumber.
const (
	// Ban: traffic from Scope is dropped until Expires.
	Ban Kind = 1
	// Unban lifts the ban on exactly Scope (not on prefixes inside or
	// around it); it has no expiry.
	Unban Kind = 2
	// KnockWindow: Scope (one address) completed knock sequence Sequence
	// and may open what it opens until Expires.
	KnockWindow Kind = 3
	// KnockUse: Scope used the one-shot sequence Sequence; the same
	// steps are refused for anyone until Expires (no replay).
	KnockUse Kind = 4
	// Allow: Scope is admitted (never banned) until Expires.
	Allow Kind = 5
	// Recent: Scope (one address) was set in the recent list List at
	// Issued; the entry is of no use to any rule after Expires.
	Recent Kind = 6
	// Unallow ends the allow of exactly Scope before its expiry; it has
	// no expiry.
	Unallow Kind = 7

	// MaxKind is the highest kind: arrays indexed by kind have
	// MaxKind+1 slots.
	MaxKind = Unallow
	maxKind = MaxKind
)

var kindNames = [...]string{Ban: "ban", Unban: "unban", KnockWindow: "knock-window", KnockUse: "knock-use", Allow: "allow", Recent: "recent", Unallow: "unallow"}

// String returns the kind's name as logs, metrics labels and the CLI show
// it: ban, unban, knock-window, knock-use, allow, recent, unallow.
func (k Kind) String() string {
	if k >= 1 && k <= maxKind {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// lifts reports whether k ends an earlier decision (Unban, Unallow): a
// kind without an expiry.
func (k Kind) lifts() bool { return k == Unban || k == Unallow }

// Blocks reports whether a decision of kind k can refuse someone's
// traffic: every kind but the liftings and an allow. The fleet refuses
// those that would over a protected source.
func (k Kind) Blocks() bool { return !k.lifts() && k != Allow }

// Valid reports whether k is one of the kinds above.
func (k Kind) Valid() bool { return k >= 1 && k <= maxKind }

// ParseKind returns the kind called name (as String prints it).
func ParseKind(name string) (Kind, bool) {
	for k := Kind(1); k <= maxKind; k++ {
		if kindNames[k] == name {
			return k, true
		}
	}
	return 0, false
}

// MarshalText implements encoding.TextMarshaler (JSON shows the name).
func (k Kind) MarshalText() ([]byte, error) {
	if !k.Valid() {
		return nil, fmt.Errorf("%w: kind %d", ErrInvalid, uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	v, ok := ParseKind(string(b))
	if !ok {
		return fmt.Errorf("%w: unknown kind %q", ErrInvalid, b)
	}
	*k = v
	return nil
}

// Sources of decisions that no guard made.
const (
	// SourceManual: an operator (the CLI, over the control socket).
	SourceManual = "manual"
	// SourceKernel: found in a kernel ban set at start, not in the saved
	// state (a ban made just before a crash).
	SourceKernel = "kernel"
)

// OriginLocal is how this gateway's own decisions may name their origin;
// the empty Origin means the same.
const OriginLocal = "local"

// Bounds of the text fields, in bytes.
const (
	MaxOrigin   = 64
	MaxSource   = 64
	MaxSequence = 64
	MaxList     = 64
	MaxReason   = 200
)

// The times a decision may carry: after 1970, before 2262 (unix
// nanoseconds in an int64).
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Unix(0, math.MaxInt64)
)

// Decision is one firewall decision. The zero value is not valid; build
// one with the fields its Kind needs and check it with Validate.
type Decision struct {
	Kind Kind `json:"kind"`
	// Scope is what the decision is about: one address (a /32 or /128)
	// or a prefix. It is kept masked (Scope.Masked()), IPv4 addresses
	// unmapped.
	Scope netip.Prefix `json:"scope"`
	// Issued is when the decision was made (zero: unknown); the fleet
	// measures propagation from it.
	Issued time.Time `json:"issued,omitzero"`
	// Expires is when the decision ends. Required for every kind but
	// Unban and Unallow, which must leave it zero.
	Expires time.Time `json:"expires,omitzero"`
	// Origin is the gateway that made the decision; empty or OriginLocal
	// for this one.
	Origin string `json:"origin,omitempty"`
	// Source is who made it: a guard's name, SourceManual, SourceKernel,
	// or for knock decisions the sequence's name.
	Source string `json:"source,omitempty"`
	// Sequence is the knock sequence of KnockWindow and KnockUse; empty
	// for the other kinds.
	Sequence string `json:"sequence,omitempty"`
	// TimeStep is, for a KnockUse of a rotating sequence, the time step
	// whose ports were used (the replay refused is of that step's
	// ports); 0 for a static sequence and for every other kind.
	TimeStep int64 `json:"time_step,omitempty"`
	// List is the recent list of a Recent decision; empty for the other
	// kinds.
	List string `json:"list,omitempty"`
	// Reason says why, for people.
	Reason string `json:"reason,omitempty"`
}

// Local reports whether the decision was made on this gateway.
func (d *Decision) Local() bool { return d.Origin == "" || d.Origin == OriginLocal }

// Single reports whether Scope is one address.
func (d *Decision) Single() bool { return d.Scope.Bits() == d.Scope.Addr().BitLen() }

// ScopeOf returns the canonical scope of addr: the address alone, unmapped.
func ScopeOf(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	return netip.PrefixFrom(addr, addr.BitLen())
}

// Canonical returns p masked, an IPv4-mapped IPv6 prefix of at least 96
// bits turned into the IPv4 prefix it is, and whether p is usable as a
// scope (valid, and not an IPv4-mapped prefix shorter than 96 bits, which
// would mix the families).
func Canonical(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() {
		return netip.Prefix{}, false
	}
	a := p.Addr()
	if a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	if a.Zone() != "" {
		p = netip.PrefixFrom(a.WithZone(""), p.Bits())
	}
	return p.Masked(), true
}

// ParseScope reads an address ("192.0.2.7", "2001:db8::1") or a prefix
// ("2001:db8::/64") into a canonical scope. A prefix with host bits set
// (2001:db8::1/64) is refused rather than silently widened.
func ParseScope(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%w: %q: an address with a zone", ErrInvalid, s)
		}
		return ScopeOf(a), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %q is neither an address nor a prefix", ErrInvalid, s)
	}
	c, ok := Canonical(p)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("%w: %q: an IPv4-mapped prefix shorter than /96", ErrInvalid, s)
	}
	if c.Addr() != p.Addr().Unmap() {
		return netip.Prefix{}, fmt.Errorf("%w: %q has bits set past /%d: did you mean %s?", ErrInvalid, s, p.Bits(), c)
	}
	return c, nil
}

// Validate reports what is wrong with d, wrapping ErrInvalid: an unknown
// kind, a scope that is not canonical, a missing or forbidden expiry or
// sequence, a knock decision about more than one address, an over-long
// or unprintable text field.
func (d *Decision) Validate() error {
	if !d.Kind.Valid() {
		return fmt.Errorf("%w: unknown kind %d", ErrInvalid, uint8(d.Kind))
	}
	if c, ok := Canonical(d.Scope); !ok || c != d.Scope {
		return fmt.Errorf("%w: %s: scope %v is not a masked prefix", ErrInvalid, d.Kind, d.Scope)
	}
	switch {
	case d.Kind.lifts() && !d.Expires.IsZero():
		return fmt.Errorf("%w: %s with an expiry", ErrInvalid, d.Kind)
	case !d.Kind.lifts() && d.Expires.IsZero():
		return fmt.Errorf("%w: %s without an expiry", ErrInvalid, d.Kind)
	}
	for _, t := range [...]struct {
		name string
		t    time.Time
	}{{"issued", d.Issued}, {"expires", d.Expires}} {
		if !t.t.IsZero() && (!t.t.After(minTime) || !t.t.Before(maxTime)) {
			return fmt.Errorf("%w: %s %v out of range", ErrInvalid, t.name, t.t)
		}
	}
	knock := d.Kind == KnockWindow || d.Kind == KnockUse
	switch {
	case knock && d.Sequence == "":
		return fmt.Errorf("%w: %s without a sequence", ErrInvalid, d.Kind)
	case !knock && d.Sequence != "":
		return fmt.Errorf("%w: %s with a sequence", ErrInvalid, d.Kind)
	case d.TimeStep < 0 || (d.TimeStep != 0 && d.Kind != KnockUse):
		return fmt.Errorf("%w: %s with time step %d", ErrInvalid, d.Kind, d.TimeStep)
	case knock && !d.Single():
		return fmt.Errorf("%w: %s of a prefix (%s): knock decisions are about one address", ErrInvalid, d.Kind, d.Scope)
	case d.Kind == Recent && d.List == "":
		return fmt.Errorf("%w: recent without a list", ErrInvalid)
	case d.Kind != Recent && d.List != "":
		return fmt.Errorf("%w: %s with a list", ErrInvalid, d.Kind)
	case d.Kind == Recent && !d.Single():
		return fmt.Errorf("%w: recent of a prefix (%s): a recent-list entry is one address", ErrInvalid, d.Scope)
	case d.Kind == Recent && d.Issued.IsZero():
		return fmt.Errorf("%w: recent without the time it was set (issued)", ErrInvalid)
	}
	for _, f := range [...]struct {
		name, v string
		max     int
	}{{"origin", d.Origin, MaxOrigin}, {"source", d.Source, MaxSource}, {"sequence", d.Sequence, MaxSequence}, {"list", d.List, MaxList}, {"reason", d.Reason, MaxReason}} {
		if err := checkText(f.v, f.max); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalid, f.name, err)
		}
	}
	return nil
}

// checkText accepts printable UTF-8 of at most max bytes.
func checkText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%d bytes, at most %d", len(s), max)
	}
	if printableASCII(s) {
		return nil
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("not UTF-8")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("unprintable character %U", r)
		}
	}
	return nil
}

// printableASCII reports whether s holds only printable ASCII (space to
// tilde): the common case, valid UTF-8 and printable without decoding.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// String prints d for logs: "ban 2001:db8::/64 until 2026-12-04T20:00:00Z
// by ssh at gw-a: reason".
func (d Decision) String() string {
	s := d.Kind.String() + " " + d.Scope.String()
	if d.Sequence != "" {
		s += " sequence " + d.Sequence
	}
	if d.List != "" {
		s += " list " + d.List
	}
	if !d.Expires.IsZero() {
		s += " until " + d.Expires.UTC().Format(time.RFC3339)
	}
	if d.Source != "" {
		s += " by " + d.Source
	}
	if !d.Local() {
		s += " at " + d.Origin
	}
	if d.Reason != "" {
		s += ": " + d.Reason
	}
	return s
}

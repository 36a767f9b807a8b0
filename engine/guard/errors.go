package guard

import "errors"

// Sentinel errors.
var (
	// ErrBadAddress is returned for an invalid address.
	ErrBadAddress = errors.New("invalid address")
	// ErrBadDuration is returned for a ban duration that is not positive
	// or longer than MaxBan.
	ErrBadDuration = errors.New("ban duration must be positive and at most 3650 days")
)

// ErrBadScope is returned for a ban scope that is not a valid address or
// prefix, or is wider than MinPrefix4/MinPrefix6.
var ErrBadScope = errors.New("invalid ban scope")

// ErrKind is returned by Bans.Apply for a decision that is not a ban or
// an unban.
var ErrKind = errors.New("not a ban decision")

// ErrAllowed is wrapped by Bans.Add and Bans.Apply for a ban whose scope
// overlaps an allow in force: an allowed source is never banned.
var ErrAllowed = errors.New("an allow in force covers it")

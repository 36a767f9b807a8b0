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

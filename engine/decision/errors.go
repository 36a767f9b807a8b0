package decision

import "errors"

// Sentinel errors.
var (
	// ErrMalformed is wrapped by Unmarshal for bytes that are not a valid
	// encoded decision.
	ErrMalformed = errors.New("malformed decision")
	// ErrInvalid is wrapped by Validate (and Marshal) for a decision whose
	// fields do not fit together.
	ErrInvalid = errors.New("invalid decision")
)

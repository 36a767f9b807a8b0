package knock

import "errors"

// Sentinel errors.
var (
	// ErrUnknownReason is returned when decoding a failure reason that has
	// no name.
	ErrUnknownReason = errors.New("unknown failure reason")
	// ErrUnknownKnock is returned by Find for a name no sequence has.
	ErrUnknownKnock = errors.New("unknown knock sequence")
	// ErrKind is returned by Apply for a decision that is no knock
	// decision.
	ErrKind = errors.New("not a knock decision")
)

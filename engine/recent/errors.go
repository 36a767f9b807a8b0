package recent

import "errors"

// Sentinel errors.
var (
	// ErrUnknownList is returned for a list name
	// the configuration does not declare.
	ErrUnknownList = errors.New("unknown recent list")
)

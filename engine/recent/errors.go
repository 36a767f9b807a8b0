package recent

import "errors"

// Sentinel errors.
var (
	// ErrUnknownList is returned by the control handlers for a list name
	// the configuration does not declare.
	ErrUnknownList = errors.New("unknown recent list")
	// ErrBadRequest is returned by the control handlers for arguments that
	// do not decode.
	ErrBadRequest = errors.New("bad request")
)

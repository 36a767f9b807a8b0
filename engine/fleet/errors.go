package fleet

import "errors"

// Sentinel errors.
var (
	// ErrCredentials is wrapped by Run's error for a credential file that
	// cannot be read or used.
	ErrCredentials = errors.New("fleet credentials")
	// ErrConfig is wrapped by New's error for an unusable configuration.
	ErrConfig = errors.New("fleet configuration")
)

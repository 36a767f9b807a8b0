package store

import "errors"

// Sentinel errors.
var (
	// ErrCorrupt means a state file could not be decoded (truncated,
	// garbage or not the expected shape). The file has been moved aside.
	ErrCorrupt = errors.New("corrupt state file")
	// ErrVersion means a state file has an envelope version this binary
	// does not read. The file has been moved aside.
	ErrVersion = errors.New("unsupported state file version")
)

package ipset

import "errors"

// Sentinel errors.
var (
	// ErrNoSet means the named set does not exist.
	ErrNoSet = errors.New("no such set")
	// ErrSetMismatch means a set of that name exists with another type,
	// family or options.
	ErrSetMismatch = errors.New("set exists with other options")
	// ErrInUse means the set is referenced by a kernel rule.
	ErrInUse = errors.New("set in use by a kernel rule")
	// ErrFamily means an address does not fit the set's family.
	ErrFamily = errors.New("address family does not match the set")
)

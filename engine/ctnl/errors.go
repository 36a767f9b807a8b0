package ctnl

import "errors"

var (
	// ErrClosed is returned by Run when the follower was closed under it.
	ErrClosed = errors.New("conntrack follower closed")

	// ErrTooManyErrors is returned by Run when the event socket returned
	// only errors MaxConsecutiveErrors times in a row.
	ErrTooManyErrors = errors.New("too many consecutive conntrack receive errors")

	// ErrRunTwice is returned by a second call to Run.
	ErrRunTwice = errors.New("follower already ran")

	// ErrInvalidAddr is returned by DeleteBySource for the zero Addr.
	ErrInvalidAddr = errors.New("invalid address")
)

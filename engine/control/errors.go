package control

import "errors"

// Sentinel errors.
var (
	// ErrNotRunning means no daemon answers on the control socket.
	ErrNotRunning = errors.New("nfqfw daemon is not running")
	// ErrUnknownCommand is returned for a request naming no handler.
	ErrUnknownCommand = errors.New("unknown command")
	// ErrBadRequest is returned for a request that is not valid JSON or too
	// long, and by the handlers for arguments that do not decode.
	ErrBadRequest = errors.New("bad request")
	// ErrPeer is returned when a peer is not allowed to use the socket.
	ErrPeer = errors.New("peer not allowed")
)

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

// DaemonError is the error a daemon answered a request with. Its message is
// the daemon's own, which names what it refused: the client adds nothing,
// so "nfqfw reload" prints "nfqfw reload: FILE:LINE: ...", not the
// command's name once more.
type DaemonError struct {
	Cmd string // the request's command
	Msg string // the daemon's message
}

// Error returns the daemon's message.
func (e *DaemonError) Error() string { return e.Msg }

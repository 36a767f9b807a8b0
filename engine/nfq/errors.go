package nfq

import "errors"

var (
	// ErrQueueInUse is returned by Open when another socket, in this or
	// another process, is already bound to the queue.
	ErrQueueInUse = errors.New("queue already bound by another socket")

	// ErrPermission is returned by Open and CheckPermission when the
	// process lacks CAP_NET_ADMIN.
	ErrPermission = errors.New("needs root (CAP_NET_ADMIN)")

	// ErrReaderStopped is returned by Run when the socket was closed
	// under the reader.
	ErrReaderStopped = errors.New("queue socket closed")

	// ErrTooManyErrors is returned by Run when the socket returned only
	// errors, no packet, MaxConsecutiveErrors times in a row.
	ErrTooManyErrors = errors.New("too many consecutive receive errors")

	// ErrRunTwice is returned by a second call to Run.
	ErrRunTwice = errors.New("reader already ran")

	// ErrProcFormat is returned by ReadProcStats for a line it cannot read.
	ErrProcFormat = errors.New("bad nfnetlink_queue line")
)

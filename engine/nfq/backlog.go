package nfq

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// backlog tells whether the queue socket holds more messages, so the
// reader knows when the kernel's burst of queued packets has been read and
// held accepts must be answered. go-nfqueue calls the hook once per
// message from its own receive loop and never says when a burst ends; a
// zero-timeout poll(2) on the socket does, for about the cost of one
// system call, far less than the verdict message a flush saves. Only the
// receive goroutine uses a backlog.
type backlog struct {
	rc    syscall.RawConn
	fds   [1]unix.PollFd
	ready bool
	check func(fd uintptr) // bound once: Control then allocates nothing
}

func newBacklog(c syscall.Conn) (*backlog, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &backlog{rc: rc}
	b.check = b.poll
	return b, nil
}

// pending reports whether a message waits on the socket. An error (the
// socket is closing) reports false: held accepts are then flushed.
func (b *backlog) pending() bool {
	b.ready = false
	if err := b.rc.Control(b.check); err != nil {
		return false
	}
	return b.ready
}

func (b *backlog) poll(fd uintptr) {
	b.fds[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	n, err := unix.Poll(b.fds[:], 0)
	b.ready = err == nil && n > 0 && b.fds[0].Revents&unix.POLLIN != 0
}

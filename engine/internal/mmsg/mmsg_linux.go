// Package mmsg reads many datagrams with one recvmmsg(2) into buffers
// allocated once, for the netlink sockets whose every message is a
// datagram of its own (queued packets, conntrack events): one system call
// and one wake-up of the runtime's poller for a whole burst instead of one
// each.
package mmsg

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Vector is a set of receive buffers and the recvmmsg headers pointing at
// them. It is used by one goroutine at a time.
type Vector struct {
	size int    // bytes per buffer
	bufs []byte // n buffers of size bytes
	iovs []unix.Iovec
	hdrs []unix.Mmsghdr

	got  int // datagrams read by the last Recv
	rerr error
	fn   func(fd uintptr) bool // bound once: Recv allocates nothing
}

// NewVector returns a Vector of n buffers of size bytes each. The memory
// is only touched as datagrams fill it.
func NewVector(n, size int) *Vector {
	v := &Vector{size: size, bufs: make([]byte, n*size), iovs: make([]unix.Iovec, n), hdrs: make([]unix.Mmsghdr, n)}
	for i := range v.hdrs {
		v.iovs[i].Base = &v.bufs[i*size]
		v.iovs[i].SetLen(size)
		v.hdrs[i].Hdr.Iov = &v.iovs[i]
		v.hdrs[i].Hdr.SetIovlen(1)
	}
	v.fn = v.recv
	return v
}

// Recv reads the datagrams waiting on rc's socket, at least one and at
// most the vector's length, parking in the poller while there are none
// (rc must be a non-blocking descriptor the runtime polls, e.g. from an
// *os.File). Deadlines set on the file apply. It returns how many it read.
func (v *Vector) Recv(rc syscall.RawConn) (int, error) {
	v.got, v.rerr = 0, nil
	if err := rc.Read(v.fn); err != nil {
		return 0, err
	}
	return v.got, v.rerr
}

func (v *Vector) recv(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&v.hdrs[0])),
			uintptr(len(v.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			v.got = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until readable
		}
		v.rerr = e
		return true
	}
}

// Datagram returns the i-th datagram of the last Recv, as far as it fit
// in its buffer. It aliases the buffer: valid until the next Recv.
func (v *Vector) Datagram(i int) []byte {
	n := min(int(v.hdrs[i].Len), v.size)
	return v.bufs[i*v.size : i*v.size+n]
}

// Truncated reports whether the i-th datagram was longer than its buffer
// (MSG_TRUNC): its end is lost.
func (v *Vector) Truncated(i int) bool { return v.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 }

// RecvBlocking reads the datagrams waiting on fd, a descriptor in blocking
// mode, at least one and at most the vector's length: the calling thread
// sleeps in recvmmsg(2) until the first arrives and the kernel wakes it
// directly, with no trip through the runtime's poller (MSG_WAITFORONE: the
// rest are taken only if already there). It returns 0 and no error when
// the socket's receive timeout (SO_RCVTIMEO) expired or a signal came
// first, so the caller can look at its stop flag.
func (v *Vector) RecvBlocking(fd int) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&v.hdrs[0])),
		uintptr(len(v.hdrs)), unix.MSG_WAITFORONE, 0, 0)
	switch e {
	case 0:
		v.got = int(n)
		return v.got, nil
	case unix.EAGAIN, unix.EINTR:
		v.got = 0
		return 0, nil
	}
	v.got = 0
	return 0, e
}

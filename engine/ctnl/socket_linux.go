package ctnl

import (
	"fmt"
	"os"
	"runtime"
	"syscall"

	"github.com/nfqfw/nfqfw/engine/internal/mmsg"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// eventSocket is the ctnetlink event socket: a netlink socket bound to the
// conntrack new, update and destroy groups, read a burst of datagrams at a
// time into the caller's buffers. It is an *os.File so that reads park in the
// runtime's poller and honour deadlines.
type eventSocket struct {
	f  *os.File
	rc syscall.RawConn
}

// recv reads the waiting events into v (see mmsg.Vector.Recv).
func (s *eventSocket) recv(v *mmsg.Vector) (int, error) { return v.Recv(s.rc) }

// Conntrack multicast groups (NFNLGRP_CONNTRACK_NEW, _UPDATE, _DESTROY),
// as bind mask bits.
const (
	groupNew     = 1 << (1 - 1)
	groupUpdate  = 1 << (2 - 1)
	groupDestroy = 1 << (3 - 1)
)

// openEventSocket opens the event socket in the network namespace netnsFD
// (0: the caller's) with a receive buffer of readBuffer bytes, joined to the
// update and destroy groups, and to the new-flow group unless skipNew.
func openEventSocket(netnsFD, readBuffer int, skipNew bool) (*eventSocket, error) {
	groups := uint32(groupNew | groupUpdate | groupDestroy)
	if skipNew {
		groups &^= groupNew
	}
	if netnsFD != 0 {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return nil, fmt.Errorf("get current namespace: %w", err)
		}
		defer orig.Close()
		if err := netns.Set(netns.NsHandle(netnsFD)); err != nil {
			return nil, fmt.Errorf("enter namespace: %w", err)
		}
		defer netns.Set(orig)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, readBuffer); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, readBuffer); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("set read buffer %d: %w", readBuffer, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind conntrack event groups: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ctnetlink-events")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	return &eventSocket{f: f, rc: rc}, nil
}

// nfnlgrpConntrackNew is NFNLGRP_CONNTRACK_NEW, the new-flow group, as a
// group number (not a bind mask bit) for NETLINK_ADD_MEMBERSHIP.
const nfnlgrpConntrackNew = 1

// setNew joins the event socket to the new-flow group, or leaves it.
// Joining twice, or leaving a group it is not in, is not an error.
func (s *eventSocket) setNew(on bool) error {
	opt := unix.NETLINK_DROP_MEMBERSHIP
	if on {
		opt = unix.NETLINK_ADD_MEMBERSHIP
	}
	var serr error
	if err := s.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_NETLINK, opt, nfnlgrpConntrackNew)
	}); err != nil {
		return err
	}
	return serr
}

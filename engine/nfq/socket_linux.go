package nfq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/nfqfw/nfqfw/engine/internal/mmsg"
	"golang.org/x/sys/unix"
)

// bufSize is one receive buffer: a whole packet (MaxPacketLen) and the
// message around it (headers and attributes, a few hundred bytes).
const bufSize = MaxPacketLen + 4096

// maxVector bounds the datagrams read by one receive.
const maxVector = 256

// bindTimeout bounds the wait for the kernel's answer to the bind.
const bindTimeout = 5 * time.Second

// wakeTimeout is the socket's receive timeout once bound: the longest a
// blocked receive sleeps before the reader looks at its stop flag again,
// should the wake-up Close sends be lost (a full receive buffer).
const wakeTimeout = 250 * time.Millisecond

// sock is one queue's netlink socket. mdlayher/netlink opens it (in the
// configured namespace), sets its options, binds the queue through the
// runtime's poller (with a deadline) and closes it. Then the descriptor is
// put in blocking mode and the packet path uses it directly: on a quiet
// queue the reader's thread sleeps in recvmmsg(2) and the kernel wakes it
// when a packet is queued, like a C reader's; with a backlog it waits in
// the poller (Reader.loop says why). One call reads every queued message
// up to the vector's length into buffers allocated once, and one write(2)
// carries every verdict for them.
// go-nfqueue's receive loop costs two recvmsg calls and several
// allocations per packet and sends one message per verdict (doc.go has
// the measured cost). Only the reader's goroutine uses recv and send;
// wake may be called from any goroutine.
type sock struct {
	c     *netlink.Conn
	rc    syscall.RawConn
	fd    int // the descriptor, in blocking mode once bound
	queue uint16

	in     *mmsg.Vector
	sendFn func(fd uintptr) bool

	out  []byte // messages waiting for send
	werr error
}

// openSock opens the socket for cfg.Queue with a receive vector of vlen
// datagrams, and binds the queue.
func openSock(cfg Config, vlen int) (*sock, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: cfg.NetNS})
	if err != nil {
		return nil, fmt.Errorf("open socket: %w", err)
	}
	s := &sock{c: c, queue: cfg.Queue}
	if err := s.setup(cfg, vlen); err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

func (s *sock) setup(cfg Config, vlen int) error {
	// Without NoENOBUFS a full receive buffer is reported as an error on
	// the next read; the reader learns of lost messages from the gap in
	// packet ids instead. CapAcknowledge keeps error answers to a header
	// instead of a copy of the whole request.
	for _, o := range []netlink.ConnOption{netlink.NoENOBUFS, netlink.CapAcknowledge} {
		if err := s.c.SetOption(o, true); err != nil {
			return fmt.Errorf("set socket option %d: %w", o, err)
		}
	}
	if err := s.c.SetReadBuffer(cfg.ReadBuffer); err != nil {
		return fmt.Errorf("set read buffer %d: %w", cfg.ReadBuffer, err)
	}
	rc, err := s.c.SyscallConn()
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	s.rc = rc
	s.in = mmsg.NewVector(vlen, bufSize)
	s.sendFn = s.doSend
	s.out = make([]byte, 0, vlen*verdictMsgLen+verdictMsgLen)
	if err := s.bind(cfg); err != nil {
		return err
	}
	return s.block()
}

// block puts the bound socket in blocking mode with a receive timeout of
// wakeTimeout, for recv. The poller keeps the descriptor registered but
// nothing waits on it any more.
func (s *sock) block() error {
	var err error
	cerr := s.rc.Control(func(fd uintptr) {
		s.fd = int(fd)
		if err = unix.SetNonblock(s.fd, false); err != nil {
			return
		}
		tv := unix.NsecToTimeval(wakeTimeout.Nanoseconds())
		err = unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if cerr != nil {
		return fmt.Errorf("raw socket: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("blocking mode: %w", err)
	}
	return nil
}

// bind sends the bind request and waits for its answer. Packets can reach
// the socket before the answer (the queue exists from the moment the
// kernel starts on the request); they are sent through their hook again
// (NF_REPEAT), to be queued anew and decided by the reader.
func (s *sock) bind(cfg Config) error {
	flags := uint32(flagGSO)
	if cfg.FailOpen {
		flags |= flagFailOpen
	}
	const seq = 1
	s.out = appendBind(s.out[:0], seq, queueConfig{
		queue: cfg.Queue, copyLen: MaxPacketLen, maxLen: cfg.MaxLen,
		flags: flags, flagMask: flagGSO | flagFailOpen,
	})
	if err := s.send(); err != nil {
		return fmt.Errorf("send bind request: %w", err)
	}
	if err := s.c.SetReadDeadline(time.Now().Add(bindTimeout)); err != nil {
		return err
	}
	defer s.c.SetReadDeadline(time.Time{})
	for {
		n, err := s.in.Recv(s.rc)
		if err != nil {
			return fmt.Errorf("wait for bind answer: %w", err)
		}
		answered, errno := false, int32(0)
		for i := range n {
			for b := s.datagram(i); len(b) > 0; {
				m, rest, err := nextMessage(b)
				if err != nil {
					break
				}
				b = rest
				switch m.typ {
				case msgPacket:
					if p, _ := parsePacket(m.body); p.hasID {
						s.out = appendVerdict(s.out, s.queue, p.id, nfRepeat, false, false, 0)
					}
				case nlmsgError:
					if e, sq, err := errorCode(m.body); err == nil && sq == seq {
						answered, errno = true, e
					}
				}
			}
		}
		if err := s.send(); err != nil {
			return fmt.Errorf("answer packets queued while binding: %w", err)
		}
		switch {
		case !answered:
		case errno == 0:
			return nil
		case errno == int32(unix.EPERM) && CheckPermission() != nil:
			// nfnetlink answers EPERM to a process without
			// CAP_NET_ADMIN ...
			return ErrPermission
		case errno == int32(unix.EPERM) || errno == int32(unix.EBUSY):
			// ... and nfnetlink_queue answers EPERM to a bind of a queue
			// another socket holds (EBUSY: this socket holds it).
			return fmt.Errorf("%w (%v)", ErrQueueInUse, unix.Errno(errno))
		default:
			return fmt.Errorf("kernel refused the bind: %w", unix.Errno(errno))
		}
	}
}

// recv reads the datagrams waiting on the socket, at most the vector's
// length. While there are none the thread sleeps in the kernel, or with
// polled the goroutine parks in the runtime's poller. It returns how many
// it read (datagram(i) returns each); 0 when the receive timeout expired
// or a signal interrupted the wait.
func (s *sock) recv(polled bool) (int, error) {
	if polled {
		return s.in.Recv(s.rc) // MSG_DONTWAIT: the descriptor's mode does not matter
	}
	return s.in.RecvBlocking(s.fd)
}

// datagram returns the i-th datagram of the last recv.
func (s *sock) datagram(i int) []byte { return s.in.Datagram(i) }

// truncated reports whether the i-th datagram was cut to its buffer.
func (s *sock) truncated(i int) bool { return s.in.Truncated(i) }

// verdict queues one verdict message for the next send (verdictSink).
func (s *sock) verdict(id, verdict uint32, batch, withMark bool, mark uint32) {
	s.out = appendVerdict(s.out, s.queue, id, verdict, batch, withMark, mark)
}

// send writes the waiting messages in one datagram; the kernel handles
// them in order. The buffer is emptied whatever happens. Before the bind
// completes the write goes through the poller, after it straight to the
// blocking descriptor (a netlink write to the kernel does not wait for
// room).
func (s *sock) send() error {
	if len(s.out) == 0 {
		return nil
	}
	if s.fd != 0 {
		err := writeAll(s.fd, s.out)
		s.out = s.out[:0]
		return err
	}
	s.werr = nil
	err := s.rc.Write(s.sendFn)
	s.out = s.out[:0]
	if err != nil {
		return err
	}
	return s.werr
}

// writeAll writes b as one datagram to the blocking descriptor fd.
func writeAll(fd int, b []byte) error {
	for {
		_, err := unix.Write(fd, b)
		if err != unix.EINTR {
			return err
		}
	}
}

func (s *sock) doSend(fd uintptr) bool {
	for {
		_, err := unix.Write(int(fd), s.out)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return false
		}
		s.werr = err
		return true
	}
}

// wake makes a blocked recv return: it sends the kernel a no-op message
// asking for an acknowledgement, which lands on the socket (the reader
// ignores an ack). A wake-up lost to a full receive buffer leaves the
// receive timeout to end the wait. Safe to call while the reader's
// goroutine uses the socket: it writes from its own buffer.
func (s *sock) wake() error {
	var b [nlmsgHdrLen]byte
	binary.NativeEndian.PutUint32(b[0:], nlmsgHdrLen)
	binary.NativeEndian.PutUint16(b[4:], nlmsgNoop)
	binary.NativeEndian.PutUint16(b[6:], nlmFRequest|nlmFAck)
	return writeAll(s.fd, b[:])
}

// close unbinds the queue (the kernel would on close too, dropping what
// is still queued) and closes the socket.
func (s *sock) close() error {
	s.out = appendUnbind(s.out[:0], 2, s.queue)
	_ = s.send() // best effort: closing the socket releases the queue anyway
	err := s.c.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}

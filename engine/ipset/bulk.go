package ipset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/nfqfw/nfqfw/engine/internal/nlmsg"
)

// bulkWrite is the most bytes of add messages one write(2) carries; the
// kernel handles each write's messages in order before it returns.
const bulkWrite = 32 << 10

// AddMany puts every entry into the set name the way `ipset restore`
// does: many add messages per write(2), each entry's timeout as in Add
// (0: the set's default), an entry already there getting its timeout
// replaced. The kernel answers only the entries it refuses (and the last
// message, which asks for an acknowledgement), so 100,000 entries cost a
// few dozen system calls instead of 200,000. It returns nil when every
// entry went in, else how many were refused and the first refusal.
func (s *Sets) AddMany(name string, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bulk == nil {
		return fmt.Errorf("ipset: add %d entries to %s: closed", len(entries), name)
	}
	fd := s.bulk.GetFd()
	b := &bulkAnswers{fd: fd}
	buf := make([]byte, 0, bulkWrite+256)
	for i, e := range entries {
		last := i == len(entries)-1
		buf = appendAdd(buf, name, e, uint32(i+1), last)
		if len(buf) < bulkWrite && !last {
			continue
		}
		if err := writeMsgs(fd, buf); err != nil {
			return fmt.Errorf("ipset: add %d entries to %s: write: %w", len(entries), name, err)
		}
		buf = buf[:0]
		// Read the answers so far, so refusals cannot fill the buffer;
		// after the last write, until its acknowledgement.
		until := uint32(0)
		if last {
			until = uint32(len(entries))
		}
		if err := b.read(until, len(entries)); err != nil {
			return fmt.Errorf("ipset: add %d entries to %s: %w", len(entries), name, err)
		}
	}
	if b.refused > 0 {
		return fmt.Errorf("ipset: add to %s: %d of %d entries refused, first %s: %w",
			name, b.refused, len(entries), entries[b.firstSeq-1].Prefix, classify(b.first, true))
	}
	return nil
}

// appendAdd appends one IPSET_CMD_ADD message for e with sequence number
// seq, asking for an acknowledgement when ack. The layout is the one
// vishvananda/netlink's IpsetAdd sends, without NLM_F_EXCL.
func appendAdd(b []byte, set string, e Entry, seq uint32, ack bool) []byte {
	start := len(b)
	flags := uint16(unix.NLM_F_REQUEST)
	if ack {
		flags |= unix.NLM_F_ACK
	}
	b = binary.NativeEndian.AppendUint32(b, 0) // length, set below
	b = binary.NativeEndian.AppendUint16(b, unix.NFNL_SUBSYS_IPSET<<8|nl.IPSET_CMD_ADD)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, unix.AF_NETLINK, nl.NFNETLINK_V0, 0, 0) // nfgenmsg
	// Nothing here allocates: 100,000 entries are appended at a
	// fleet gateway's start.
	b = appendAttr(b, nl.IPSET_ATTR_PROTOCOL, []byte{nl.IPSET_PROTOCOL})
	var name [nl.IPSET_MAXNAMELEN]byte
	if len(set) < len(name) {
		b = appendAttr(b, nl.IPSET_ATTR_SETNAME, name[:copy(name[:], set)+1])
	} else {
		b = appendAttr(b, nl.IPSET_ATTR_SETNAME, append([]byte(set), 0)) // the kernel refuses it
	}
	data := len(b)
	b = appendAttr(b, nl.IPSET_ATTR_DATA|int(nl.NLA_F_NESTED), nil)
	if e.Timeout > 0 {
		secs := uint32((min(e.Timeout, MaxTimeout) + time.Second - 1) / time.Second)
		var t [4]byte
		binary.BigEndian.PutUint32(t[:], secs)
		b = appendAttr(b, nl.IPSET_ATTR_TIMEOUT|int(nl.NLA_F_NET_BYTEORDER), t[:])
	}
	addr, cidr := ipAndCIDR(e.Prefix)
	a16 := addr.As16()
	typ, raw := nl.IPSET_ATTR_IPADDR_IPV6, a16[:]
	if addr.Is4() {
		typ, raw = nl.IPSET_ATTR_IPADDR_IPV4, a16[12:]
	}
	ip := len(b)
	b = appendAttr(b, nl.IPSET_ATTR_IP|int(nl.NLA_F_NESTED), nil)
	b = appendAttr(b, typ|int(nl.NLA_F_NET_BYTEORDER), raw)
	binary.NativeEndian.PutUint16(b[ip:], uint16(len(b)-ip))
	b = appendAttr(b, nl.IPSET_ATTR_CIDR, []byte{cidr})
	binary.NativeEndian.PutUint16(b[data:], uint16(len(b)-data))
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// appendAttr appends a netlink attribute, padded to 4 bytes.
func appendAttr(b []byte, typ int, v []byte) []byte { return nlmsg.AppendAttr(b, uint16(typ), v) }

// writeMsgs writes b, whole messages, to the kernel in one datagram.
func writeMsgs(fd int, b []byte) error {
	for {
		_, err := unix.Write(fd, b)
		if err == unix.EAGAIN {
			// The socket is non-blocking (the library made it);
			// the kernel takes a netlink write at once, so this is
			// rare: wait for room.
			if _, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, 1000); err != nil && err != unix.EINTR {
				return err
			}
			continue
		}
		if err != unix.EINTR {
			return err
		}
	}
}

// bulkAnswers reads the kernel's answers to an AddMany.
type bulkAnswers struct {
	fd       int
	buf      [64 << 10]byte
	refused  int
	first    error
	firstSeq uint32
}

// bulkAnswerWait bounds the wait for the final acknowledgement.
const bulkAnswerWait = 30 * time.Second

// read takes the answers waiting; with until > 0 it waits until the
// acknowledgement of message until has come.
func (b *bulkAnswers) read(until uint32, n int) error {
	deadline := time.Now().Add(bulkAnswerWait)
	for {
		got, _, err := unix.Recvfrom(b.fd, b.buf[:], unix.MSG_DONTWAIT)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if until == 0 {
				return nil
			}
			left := time.Until(deadline)
			if left <= 0 {
				return errors.New("no acknowledgement from the kernel")
			}
			if _, err := unix.Poll([]unix.PollFd{{Fd: int32(b.fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
				return err
			}
			continue
		case err == unix.ENOBUFS:
			return errors.New("answers lost: too many refusals to read")
		case err != nil:
			return err
		}
		done, err := b.parse(b.buf[:got], until, n)
		if err != nil || done {
			return err
		}
	}
}

// parse reads one datagram of answers; it reports whether the
// acknowledgement of message until was among them.
func (b *bulkAnswers) parse(d []byte, until uint32, n int) (bool, error) {
	msgs, err := syscall.ParseNetlinkMessage(d)
	if err != nil {
		return false, err
	}
	done := false
	for _, m := range msgs {
		if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
			continue
		}
		seq := m.Header.Seq
		if seq == 0 || int(seq) > n {
			continue
		}
		if errno := -int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
			b.refused++
			if b.first == nil {
				b.first, b.firstSeq = ipsetErrno(errno), seq
			}
		}
		if until != 0 && seq == until {
			done = true
		}
	}
	return done, nil
}

// ipsetErrno is the error an ipset errno stands for, as the library maps
// it (ipset's own codes start at IPSET_ERR_PRIVATE).
func ipsetErrno(errno int32) error {
	if errno >= nl.IPSET_ERR_PRIVATE {
		return nl.IPSetError(uintptr(errno))
	}
	return unix.Errno(errno)
}

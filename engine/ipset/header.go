package ipset

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/nfqfw/nfqfw/engine/internal/nlmsg"
	"github.com/nfqfw/nfqfw/rules"
)

// Hash sizes of the sets EnsureSized creates (IPSET_ATTR_HASHSIZE, the
// number of buckets, a power of two).
const (
	// defaultHashSize is the kernel's default: a set of at most 65,536
	// entries starts with it and grows.
	defaultHashSize = 1024
	// entriesPerBucket is how many entries a bucket of a set created for
	// maxElem entries holds when the set is full: such a set starts with
	// maxElem/entriesPerBucket buckets and never rehashes (the kernel
	// grows a set, copying every entry, each time a bucket overflows:
	// 100,000 entries went into an empty set of 32,768 buckets in
	// 0.07-0.15 s, as fast as into a full one, and into one grown from
	// 1,024 in 0.07-0.19 s, BenchmarkLoadBans). Each bucket costs the
	// kernel a pointer (8 bytes) while the set is empty.
	entriesPerBucket = 8
	// listHeader is IPSET_FLAG_LIST_HEADER: list the set's header only.
	listHeader = 1 << 2
)

// hashSize is the hash size of a set of at most maxElem entries.
func hashSize(maxElem uint32) uint32 {
	if maxElem <= 1<<16 {
		return defaultHashSize
	}
	n := maxElem / entriesPerBucket
	return 1 << (32 - bits.LeadingZeros32(n-1)) // the next power of two
}

// EnsureSized is Ensure for a set of at most maxElem entries (0: the
// kernel's default, 65,536). A larger set is created with as many hash
// buckets as it needs when full (hashSize), so that loading it in bulk
// never makes the kernel rehash it. The size is one of the set's options:
// an existing set of another maxElem is ErrSetMismatch (its hash size is
// not compared: the kernel grows it anyway).
func (s *Sets) EnsureSized(name string, family rules.Family, timeoutSupport bool, maxElem uint32) error {
	var fam uint8
	switch family {
	case rules.FamilyIPv4:
		fam = unix.AF_INET
	case rules.FamilyIPv6:
		fam = unix.AF_INET6
	default:
		return fmt.Errorf("ipset: create %s: %w: family %d", name, ErrFamily, family)
	}
	b := appendHeader(nil, nl.IPSET_CMD_CREATE, unix.NLM_F_REQUEST|unix.NLM_F_ACK, name) // no NLM_F_EXCL: "-exist"
	b = appendAttr(b, nl.IPSET_ATTR_TYPENAME, append([]byte("hash:net"), 0))
	b = appendAttr(b, nl.IPSET_ATTR_REVISION, []byte{0})
	b = appendAttr(b, nl.IPSET_ATTR_FAMILY, []byte{fam})
	data := len(b)
	b = appendAttr(b, nl.IPSET_ATTR_DATA|int(nl.NLA_F_NESTED), nil)
	size := maxElem
	if size == 0 {
		size = 1 << 16
	}
	b = appendAttr(b, nl.IPSET_ATTR_HASHSIZE|int(nl.NLA_F_NET_BYTEORDER), binary.BigEndian.AppendUint32(nil, hashSize(size)))
	if maxElem != 0 {
		b = appendAttr(b, nl.IPSET_ATTR_MAXELEM|int(nl.NLA_F_NET_BYTEORDER), binary.BigEndian.AppendUint32(nil, maxElem))
	}
	if timeoutSupport {
		b = appendAttr(b, nl.IPSET_ATTR_TIMEOUT|int(nl.NLA_F_NET_BYTEORDER), binary.BigEndian.AppendUint32(nil, 0))
	}
	binary.NativeEndian.PutUint16(b[data:], uint16(len(b)-data))
	return s.exchange("create "+name, b, nil)
}

// Count returns how many entries the set holds, from its header alone
// (what `ipset list -t` prints as "Number of entries"): unlike List it
// costs the same for an empty set and a full one.
func (s *Sets) Count(name string) (int, error) {
	b := appendHeader(nil, nl.IPSET_CMD_LIST, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, name)
	b = appendAttr(b, nl.IPSET_ATTR_FLAGS|int(nl.NLA_F_NET_BYTEORDER), binary.BigEndian.AppendUint32(nil, listHeader))
	n, found := 0, false
	err := s.exchange("count "+name, b, func(body []byte) {
		// nfgenmsg, then the set's attributes; the counts are in DATA.
		if len(body) < 4 {
			return
		}
		data, ok := nlmsg.Attrs(body[4:]).Find(nl.IPSET_ATTR_DATA)
		if !ok {
			return
		}
		if v, ok := nlmsg.Attrs(data).Find(nl.IPSET_ATTR_ELEMENTS); ok && len(v) == 4 {
			n, found = int(binary.BigEndian.Uint32(v)), true
		}
	})
	if err == nil && !found {
		err = fmt.Errorf("ipset: count %s: the kernel's header has no entry count", name)
	}
	return n, err
}

// appendHeader appends the netlink and nfnetlink headers of an ipset
// command on set name, with the protocol and set name attributes; the
// caller appends the rest and exchange sets the length and sequence.
func appendHeader(b []byte, cmd int, flags uint16, name string) []byte {
	b = binary.NativeEndian.AppendUint32(b, 0) // length
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.NFNL_SUBSYS_IPSET<<8|cmd))
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, 0) // sequence
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, unix.AF_NETLINK, nl.NFNETLINK_V0, 0, 0) // nfgenmsg
	b = appendAttr(b, nl.IPSET_ATTR_PROTOCOL, []byte{nl.IPSET_PROTOCOL})
	return appendAttr(b, nl.IPSET_ATTR_SETNAME, append([]byte(name), 0))
}

// exchange sends the one request msg on the bulk socket and reads its
// answers until the acknowledgement, the end of a dump, or an error; each
// ipset message of the answer goes to each (nil: none expected). The
// kernel's refusal is mapped as do maps it.
func (s *Sets) exchange(op string, msg []byte, each func(body []byte)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bulk == nil {
		return fmt.Errorf("ipset: %s: closed", op)
	}
	s.seq++
	seq := s.seq
	binary.NativeEndian.PutUint32(msg, uint32(len(msg)))
	binary.NativeEndian.PutUint32(msg[8:], seq)
	fd := s.bulk.GetFd()
	if err := writeMsgs(fd, msg); err != nil {
		return fmt.Errorf("ipset: %s: write: %w", op, err)
	}
	var buf [16 << 10]byte
	deadline := time.Now().Add(bulkAnswerWait)
	for {
		got, _, err := unix.Recvfrom(fd, buf[:], unix.MSG_DONTWAIT)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			left := time.Until(deadline)
			if left <= 0 {
				return fmt.Errorf("ipset: %s: no answer from the kernel", op)
			}
			if _, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
				return fmt.Errorf("ipset: %s: %w", op, err)
			}
			continue
		case err != nil:
			return fmt.Errorf("ipset: %s: read: %w", op, err)
		}
		for rest := buf[:got]; ; {
			m, r, ok := nlmsg.Next(rest)
			if !ok {
				break
			}
			rest = r
			if m.Seq != seq {
				continue // a late answer to an earlier request
			}
			switch m.Type {
			case unix.NLMSG_ERROR, unix.NLMSG_DONE:
				var errno int32
				if len(m.Body) >= 4 {
					errno = -int32(binary.NativeEndian.Uint32(m.Body))
				}
				if errno != 0 {
					return fmt.Errorf("ipset: %s: %w", op, classify(ipsetErrno(errno), false))
				}
				return nil
			default:
				if each != nil {
					each(m.Body)
				}
			}
		}
	}
}

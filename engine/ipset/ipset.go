package ipset

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/nfqfw/nfqfw/rules"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// MaxTimeout is the longest entry timeout the kernel accepts
// (IPSET_MAX_TIMEOUT, 2147483 s). Longer timeouts are clamped to it.
const MaxTimeout = 2147483 * time.Second

// Sets manages ipsets in one network namespace.
type Sets struct {
	mu   sync.Mutex
	h    *netlink.Handle
	bulk *nl.NetlinkSocket // AddMany's, EnsureSized's and Count's socket, in the same namespace
	seq  uint32            // the last sequence number exchange used
}

// Open returns a Sets for the calling thread's network namespace.
func Open() (*Sets, error) {
	return OpenAt(netns.None())
}

// OpenAt returns a Sets for the namespace ns (for tests and for a daemon
// managing a namespace other than its own); netns.None() is the calling
// thread's.
func OpenAt(ns netns.NsHandle) (*Sets, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("ipset: open netlink: %w", err)
	}
	bulk, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_NETFILTER)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("ipset: open netlink: %w", err)
	}
	// Refusals come back as a header, not a copy of each request.
	unix.SetsockoptInt(bulk.GetFd(), unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	return &Sets{h: h, bulk: bulk}, nil
}

// Close releases the netlink sockets.
func (s *Sets) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h != nil {
		s.h.Close()
		s.h = nil
	}
	if s.bulk != nil {
		s.bulk.Close()
		s.bulk = nil
	}
}

// Ensure creates the hash:net set name for family (IPv4 or IPv6) if it
// does not exist: its entries are prefixes, a single address being a /32
// or /128, and a source matches when a prefix covers it. With timeoutSupport, entries may carry a timeout (the set's
// default being "no timeout"). An existing set with the same options is
// left as it is, entries included; one with other options is reported as
// ErrSetMismatch.
func (s *Sets) Ensure(name string, family rules.Family, timeoutSupport bool) error {
	return s.EnsureSized(name, family, timeoutSupport, 0)
}

// Add puts the prefix p into the set with the given timeout (rounded up to
// whole seconds, clamped to MaxTimeout; 0: the set's default). Adding a
// prefix already there replaces its timeout.
func (s *Sets) Add(name string, p netip.Prefix, timeout time.Duration) error {
	e := entry(p)
	e.Replace = true
	if timeout > 0 {
		secs := uint32((min(timeout, MaxTimeout) + time.Second - 1) / time.Second)
		e.Timeout = &secs
	}
	return s.do("add "+p.String()+" to "+name, true, func(h *netlink.Handle) error { return h.IpsetAdd(name, e) })
}

// Del removes the prefix p from the set. A prefix not in the set is not an
// error (it may have expired in the kernel already).
func (s *Sets) Del(name string, p netip.Prefix) error {
	e := entry(p)
	e.Replace = true // no NLM_F_EXCL: deleting a missing element succeeds
	return s.do("del "+p.String()+" from "+name, true, func(h *netlink.Handle) error { return h.IpsetDel(name, e) })
}

// Destroy removes the set. A set that does not exist is not an error; one
// still referenced by a kernel rule is ErrInUse.
func (s *Sets) Destroy(name string) error {
	err := s.do("destroy "+name, false, func(h *netlink.Handle) error { return h.IpsetDestroy(name) })
	if errors.Is(err, ErrNoSet) {
		return nil
	}
	return err
}

// Entry is one prefix in a set (a single address: a /32 or /128).
type Entry struct {
	Prefix  netip.Prefix
	Timeout time.Duration // time left; 0: no timeout
}

// List returns the set's entries sorted by prefix. It reads hash:ip sets
// too (of versions before bans had prefixes): their entries are single
// addresses.
func (s *Sets) List(name string) ([]Entry, error) {
	var res *netlink.IPSetResult
	err := s.do("list "+name, false, func(h *netlink.Handle) (err error) {
		res, err = h.IpsetList(name)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(res.Entries))
	for _, e := range res.Entries {
		a, ok := netip.AddrFromSlice(e.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		bits := int(e.CIDR)
		if bits == 0 || bits > a.BitLen() {
			bits = a.BitLen()
		}
		en := Entry{Prefix: netip.PrefixFrom(a, bits).Masked()}
		if e.Timeout != nil {
			en.Timeout = time.Duration(*e.Timeout) * time.Second
		}
		out = append(out, en)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Prefix.Addr() != out[j].Prefix.Addr() {
			return out[i].Prefix.Addr().Less(out[j].Prefix.Addr())
		}
		return out[i].Prefix.Bits() < out[j].Prefix.Bits()
	})
	return out, nil
}

func entry(p netip.Prefix) *netlink.IPSetEntry {
	addr, cidr := ipAndCIDR(p)
	return &netlink.IPSetEntry{IP: net.IP(addr.AsSlice()), CIDR: cidr}
}

// ipAndCIDR returns the address of p as the kernel set holds it (an
// IPv4-mapped address as IPv4) and its prefix length.
func ipAndCIDR(p netip.Prefix) (netip.Addr, uint8) {
	bits := p.Bits()
	if p.Addr().Is4In6() {
		bits -= 96
	}
	return p.Addr().Unmap(), uint8(bits)
}

// do runs one netlink operation, naming it in errors and mapping kernel
// answers to the package's sentinels. The library type-asserts netlink
// errors to syscall.Errno and would panic on any other error: that panic is
// turned into an error here.
func (s *Sets) do(op string, entryOp bool, fn func(h *netlink.Handle) error) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil {
		return fmt.Errorf("ipset: %s: closed", op)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("ipset: %s: netlink: %v", op, r)
		}
	}()
	if err := fn(s.h); err != nil {
		return fmt.Errorf("ipset: %s: %w", op, classify(err, entryOp))
	}
	return nil
}

// classify wraps the kernel's answer in a sentinel where one applies;
// entryOp says the request carried an address (add, del).
func classify(err error, entryOp bool) error {
	var ie nl.IPSetError
	if errors.As(err, &ie) {
		switch int(ie) {
		case nl.IPSET_ERR_BUSY, nl.IPSET_ERR_REFERENCED:
			return fmt.Errorf("%w (%v)", ErrInUse, err)
		case nl.IPSET_ERR_IPADDR_IPV4, nl.IPSET_ERR_IPADDR_IPV6, nl.IPSET_ERR_INVALID_FAMILY:
			return fmt.Errorf("%w (%v)", ErrFamily, err)
		case nl.IPSET_ERR_PROTOCOL:
			// What the kernel answers for an address attribute of
			// the other family (measured on this kernel).
			if entryOp {
				return fmt.Errorf("%w (%v)", ErrFamily, err)
			}
		case nl.IPSET_ERR_EXIST_SETNAME2, nl.IPSET_ERR_TYPE_MISMATCH:
			return fmt.Errorf("%w (%v)", ErrSetMismatch, err)
		}
		return err
	}
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%w (%v)", ErrNoSet, err)
	case errors.Is(err, syscall.EEXIST):
		return fmt.Errorf("%w (%v)", ErrSetMismatch, err)
	}
	return err
}

// Exists reports whether the set exists. It lists the set (the netlink
// library has no header-only request): call it rarely, e.g. after the rules
// that use the set were found changed.
func (s *Sets) Exists(name string) (bool, error) {
	err := s.do("list "+name, false, func(h *netlink.Handle) error {
		_, err := h.IpsetList(name)
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNoSet):
		return false, nil
	}
	return false, err
}

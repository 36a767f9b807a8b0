package ctnl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// ctnetlink message types and attributes (linux/netfilter/nfnetlink_conntrack.h)
// that ti-mo/conntrack's filter does not cover: its Filter matches marks,
// status and zones, not addresses.
const (
	msgGet    = 1 // IPCTNL_MSG_CT_GET
	msgDelete = 2 // IPCTNL_MSG_CT_DELETE

	attrTupleOrig = 1  // CTA_TUPLE_ORIG
	attrZone      = 18 // CTA_ZONE
	attrFilter    = 25 // CTA_FILTER

	attrTupleIP = 1 // CTA_TUPLE_IP
	attrIPv4Src = 1 // CTA_IP_V4_SRC
	attrIPv6Src = 3 // CTA_IP_V6_SRC

	attrFilterOrigFlags = 1      // CTA_FILTER_ORIG_FLAGS
	filterFlagIPSrc     = 1 << 0 // CTA_FILTER_F_CTA_IP_SRC
)

// DeleteBySource deletes every kernel flow whose original source is addr
// and returns how many it deleted. The kernel picks the flows (a dump
// filtered by source address, CTA_FILTER, Linux 5.8 or later): the rest of
// the table is not copied to userspace. Each flow is then deleted by its
// original tuple, as conntrack -D -s does; flows that vanish meanwhile are
// not errors.
func (f *Follower) DeleteBySource(ctx context.Context, addr netip.Addr) (int, error) {
	if !addr.IsValid() {
		return 0, fmt.Errorf("ctnl: delete by source: %w", ErrInvalidAddr)
	}
	addr = addr.Unmap()
	return f.deleteFlows(ctx, "source "+addr.String(), addr, func(c *netfilter.Conn) ([][]netfilter.Attribute, error) {
		tuples, err := tuplesFrom(c, addr)
		if err != nil {
			return nil, fmt.Errorf("filtered dump: %w", err)
		}
		return tuples, nil
	})
}

// deleteFlows deletes, one by one, the flows that pick (a dump) names and
// returns how many it deleted; flows gone meanwhile are not errors. what
// names them in errors; addr gives the family.
func (f *Follower) deleteFlows(ctx context.Context, what string, addr netip.Addr, pick func(*netfilter.Conn) ([][]netfilter.Attribute, error)) (int, error) {
	n := 0
	err := f.q.raw(ctx, func(c *netfilter.Conn) error {
		tuples, err := pick(c)
		if err != nil {
			return fmt.Errorf("ctnl: delete by %s: %w", what, err)
		}
		for _, attrs := range tuples {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			err := deleteFlow(c, addr, attrs)
			switch {
			case err == nil:
				n++
			case errors.Is(err, unix.ENOENT):
				// gone already
			default:
				return fmt.Errorf("ctnl: delete by %s: delete flow: %w", what, err)
			}
		}
		return nil
	})
	return n, err
}

// DeleteByPrefix deletes every kernel flow whose original source lies in
// p and returns how many it deleted. For one address (a /32 or /128) it is
// DeleteBySource. For a wider prefix the kernel cannot pick the flows: its
// dump filter (CTA_FILTER) compares source addresses exactly, without a
// mask. The flows of p's family are then dumped once (the kernel leaves
// the other family out) and those whose source p covers are deleted, as
// conntrack -D -s ADDR/BITS does.
func (f *Follower) DeleteByPrefix(ctx context.Context, p netip.Prefix) (int, error) {
	if !p.IsValid() {
		return 0, fmt.Errorf("ctnl: delete by prefix: %w", ErrInvalidAddr)
	}
	p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked()
	if p.IsSingleIP() {
		return f.DeleteBySource(ctx, p.Addr())
	}
	return f.deleteFlows(ctx, "prefix "+p.String(), p.Addr(), func(c *netfilter.Conn) ([][]netfilter.Attribute, error) {
		tuples, err := tuplesIn(c, p)
		if err != nil {
			return nil, fmt.Errorf("dump: %w", err)
		}
		return tuples, nil
	})
}

// unmapBits is 96 for an IPv4-mapped address (its prefix length counts
// the 96 bits of the mapping), else 0.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// tuplesIn dumps the flows of p's family and returns, per flow whose
// original source p covers, the attributes that name it for a delete.
func tuplesIn(c *netfilter.Conn, p netip.Prefix) ([][]netfilter.Attribute, error) {
	return dumpTuples(c, family(p.Addr()), nil, func(orig netfilter.Attribute) bool { return p.Contains(origSource(orig)) })
}

// origSource returns the source address of an original-tuple attribute
// (the zero Addr when it has none).
func origSource(tuple netfilter.Attribute) netip.Addr {
	for _, ip := range tuple.Children {
		if ip.Type != attrTupleIP {
			continue
		}
		for _, a := range ip.Children {
			if a.Type == attrIPv4Src || a.Type == attrIPv6Src {
				addr, _ := netip.AddrFromSlice(a.Data)
				return addr
			}
		}
	}
	return netip.Addr{}
}

// family is addr's ctnetlink family.
func family(addr netip.Addr) netfilter.ProtoFamily {
	if addr.Is4() {
		return netfilter.ProtoIPv4
	}
	return netfilter.ProtoIPv6
}

// tuplesFrom dumps the flows whose original source is addr and returns, per
// flow, the attributes that name it for a delete: its original tuple, and
// its zone when it has one.
func tuplesFrom(c *netfilter.Conn, addr netip.Addr) ([][]netfilter.Attribute, error) {
	ipAttr := uint16(attrIPv4Src)
	if addr.Is6() {
		ipAttr = attrIPv6Src
	}
	flags := make([]byte, 4)
	binary.NativeEndian.PutUint32(flags, filterFlagIPSrc) // NLA_U32: host order
	return dumpTuples(c, family(addr), []netfilter.Attribute{
		{Type: attrTupleOrig, Nested: true, Children: []netfilter.Attribute{
			{Type: attrTupleIP, Nested: true, Children: []netfilter.Attribute{
				{Type: ipAttr, Data: addr.AsSlice()},
			}},
		}},
		{Type: attrFilter, Nested: true, Children: []netfilter.Attribute{
			{Type: attrFilterOrigFlags, Data: flags},
		}},
	}, nil)
}

// dumpTuples dumps the flows of family (filtered by the kernel with
// attrs, when given) and returns, per flow that keep accepts (every flow
// when keep is nil) by its original tuple, the attributes that name it
// for a delete: its original tuple, and its zone when it has one.
func dumpTuples(c *netfilter.Conn, fam netfilter.ProtoFamily, attrs []netfilter.Attribute, keep func(orig netfilter.Attribute) bool) ([][]netfilter.Attribute, error) {
	req, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: msgGet,
		Family:      fam,
		Flags:       netlink.Request | netlink.Dump,
	}, attrs)
	if err != nil {
		return nil, err
	}
	msgs, err := c.Query(req)
	if err != nil {
		return nil, err
	}
	var out [][]netfilter.Attribute
	for _, m := range msgs {
		_, attrs, err := netfilter.UnmarshalNetlink(m)
		if err != nil {
			return nil, err
		}
		var named []netfilter.Attribute
		ok := keep == nil
		for _, a := range attrs {
			switch a.Type {
			case attrTupleOrig:
				ok = ok || keep(a)
				named = append(named, a)
			case attrZone:
				named = append(named, a)
			}
		}
		if ok && len(named) > 0 {
			out = append(out, named)
		}
	}
	return out, nil
}

// deleteFlow deletes the flow its attributes (from tuplesFrom) name.
func deleteFlow(c *netfilter.Conn, addr netip.Addr, attrs []netfilter.Attribute) error {
	req, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: msgDelete,
		Family:      family(addr),
		Flags:       netlink.Request | netlink.Acknowledge,
	}, attrs)
	if err != nil {
		return err
	}
	_, err = c.Query(req)
	return err
}

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
	n := 0
	err := f.q.raw(ctx, func(c *netfilter.Conn) error {
		tuples, err := tuplesFrom(c, addr)
		if err != nil {
			return fmt.Errorf("ctnl: delete by source %s: filtered dump: %w", addr, err)
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
				return fmt.Errorf("ctnl: delete by source %s: delete flow: %w", addr, err)
			}
		}
		return nil
	})
	return n, err
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
	req, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: msgGet,
		Family:      family(addr),
		Flags:       netlink.Request | netlink.Dump,
	}, []netfilter.Attribute{
		{Type: attrTupleOrig, Nested: true, Children: []netfilter.Attribute{
			{Type: attrTupleIP, Nested: true, Children: []netfilter.Attribute{
				{Type: ipAttr, Data: addr.AsSlice()},
			}},
		}},
		{Type: attrFilter, Nested: true, Children: []netfilter.Attribute{
			{Type: attrFilterOrigFlags, Data: flags},
		}},
	})
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
		var keep []netfilter.Attribute
		for _, a := range attrs {
			if a.Type == attrTupleOrig || a.Type == attrZone {
				keep = append(keep, a)
			}
		}
		if len(keep) > 0 {
			out = append(out, keep)
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

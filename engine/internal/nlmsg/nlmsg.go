// Package nlmsg holds the netlink message and attribute helpers nfqfw's
// own netlink code shares (engine/nfq, engine/ctnl, engine/ipset): split a
// datagram into messages, iterate attributes, read an NLMSG_ERROR, append
// attributes. Nothing here allocates unless it appends.
package nlmsg

import "encoding/binary"

// Lengths of the netlink headers.
const (
	HdrLen     = 16 // struct nlmsghdr
	AttrHdrLen = 4  // struct nlattr
	// AttrTypeMask drops NLA_F_NESTED and NLA_F_NET_BYTEORDER from an
	// attribute type.
	AttrTypeMask = 0x3fff
)

// Align rounds n up to the 4-byte alignment of messages and attributes.
func Align(n int) int { return (n + 3) &^ 3 }

// Message is one netlink message out of a datagram.
type Message struct {
	Type  uint16
	Flags uint16
	Seq   uint32
	Body  []byte // after the netlink header, aliasing the datagram
}

// Next splits the first message off b and returns it and the rest of b;
// ok false when b does not hold a whole message.
func Next(b []byte) (m Message, rest []byte, ok bool) {
	if len(b) < HdrLen {
		return Message{}, nil, false
	}
	n := int(binary.NativeEndian.Uint32(b))
	if n < HdrLen || n > len(b) {
		return Message{}, nil, false
	}
	m = Message{
		Type:  binary.NativeEndian.Uint16(b[4:]),
		Flags: binary.NativeEndian.Uint16(b[6:]),
		Seq:   binary.NativeEndian.Uint32(b[8:]),
		Body:  b[HdrLen:n],
	}
	return m, b[min(Align(n), len(b)):], true
}

// ErrorCode returns the errno of an NLMSG_ERROR body (0 for an ack) and
// the sequence number of the request it answers; ok false when the body is
// too short.
func ErrorCode(body []byte) (errno int32, seq uint32, ok bool) {
	// struct nlmsgerr { int error; struct nlmsghdr msg; ... }
	if len(body) < 4+HdrLen {
		return 0, 0, false
	}
	return -int32(binary.NativeEndian.Uint32(body)), binary.NativeEndian.Uint32(body[4+8:]), true
}

// Attrs iterates the netlink attributes in a message body.
type Attrs []byte

// Next returns the next attribute's type (flags masked off) and value; ok
// false at the end or at a malformed attribute, which is left in a (so
// len(a) >= AttrHdrLen after the end means a truncated attribute).
func (a *Attrs) Next() (typ uint16, val []byte, ok bool) {
	b := *a
	if len(b) < AttrHdrLen {
		return 0, nil, false
	}
	l := int(binary.NativeEndian.Uint16(b))
	if l < AttrHdrLen || l > len(b) {
		return 0, nil, false
	}
	typ = binary.NativeEndian.Uint16(b[2:]) & AttrTypeMask
	val = b[AttrHdrLen:l]
	*a = b[min(Align(l), len(b)):]
	return typ, val, true
}

// Find returns the value of the first attribute of type typ.
func (a Attrs) Find(typ uint16) ([]byte, bool) {
	for {
		t, v, ok := a.Next()
		if !ok {
			return nil, false
		}
		if t == typ {
			return v, true
		}
	}
}

// AppendAttrHeader appends an attribute header for n bytes of value; the
// caller appends the value, padded to 4 bytes.
func AppendAttrHeader(b []byte, typ uint16, n int) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(AttrHdrLen+n))
	return binary.NativeEndian.AppendUint16(b, typ)
}

// AppendAttr appends an attribute with value v, padded to 4 bytes.
func AppendAttr(b []byte, typ uint16, v []byte) []byte {
	b = AppendAttrHeader(b, typ, len(v))
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

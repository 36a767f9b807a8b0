package nfq

import (
	"encoding/binary"
	"errors"

	"github.com/nfqfw/nfqfw/engine/internal/nlmsg"
)

// The nfnetlink_queue wire format (linux/netfilter/nfnetlink_queue.h), as
// much of it as the reader speaks. Netlink headers are host byte order
// (little endian on every architecture this builds for that matters, and
// checked below); nfnetlink attribute payloads are big endian.
const (
	nlmsgHdrLen  = nlmsg.HdrLen
	nfgenHdrLen  = 4
	nlaHdrLen    = nlmsg.AttrHdrLen
	nlmsgNoop    = 0x1
	nlmsgError   = 0x2
	nlmFRequest  = 0x1
	nlmFAck      = 0x4
	subsysQueue  = 3 // NFNL_SUBSYS_QUEUE
	msgPacket    = subsysQueue<<8 | 0
	msgVerdict   = subsysQueue<<8 | 1
	msgConfig    = subsysQueue<<8 | 2
	msgVerdictBa = subsysQueue<<8 | 3

	// Packet message attributes (NFQA_*).
	attrPacketHdr  = 1
	attrVerdictHdr = 2
	attrMark       = 3
	attrInDev      = 5
	attrOutDev     = 6
	attrPayload    = 10

	// Config attributes (NFQA_CFG_*) and commands.
	cfgCmd       = 1
	cfgParams    = 2
	cfgMaxLen    = 3
	cfgMask      = 4
	cfgFlags     = 5
	cmdBind      = 1
	cmdUnbind    = 2
	copyPacket   = 2   // NFQNL_COPY_PACKET
	flagFailOpen = 0x1 // NFQA_CFG_F_FAIL_OPEN
	flagGSO      = 0x4 // NFQA_CFG_F_GSO

	// Verdicts (NF_*).
	nfDrop   = 0
	nfAccept = 1
	nfRepeat = 4
)

// verdictMsgLen is the longest verdict message: header, nfgenmsg, verdict
// header attribute and a mark attribute.
const verdictMsgLen = nlmsgHdrLen + nfgenHdrLen + nlaHdrLen + 8 + nlaHdrLen + 4

// errTruncated is a message or attribute shorter than its header says.
var errTruncated = errors.New("truncated netlink message")

// packetMsg is one queued packet as the kernel described it. Payload
// aliases the receive buffer.
type packetMsg struct {
	id      uint32
	hasID   bool
	meta    Meta
	payload []byte
	hasData bool // a payload attribute was present (it may be empty)
}

// message is one netlink message out of a datagram.
type message struct {
	typ   uint16
	flags uint16
	seq   uint32
	body  []byte // after the netlink header
}

// nextMessage splits the first netlink message off b. It returns the
// message, the rest of b, and errTruncated when b does not hold a whole
// message.
func nextMessage(b []byte) (message, []byte, error) {
	m, rest, ok := nlmsg.Next(b)
	if !ok {
		return message{}, nil, errTruncated
	}
	return message{typ: m.Type, flags: m.Flags, seq: m.Seq, body: m.Body}, rest, nil
}

// errorCode returns the errno of an NLMSG_ERROR body (0 for an ack) and
// the sequence number of the request it answers.
func errorCode(body []byte) (errno int32, seq uint32, err error) {
	errno, seq, ok := nlmsg.ErrorCode(body)
	if !ok {
		return 0, 0, errTruncated
	}
	return errno, seq, nil
}

// parsePacket decodes the body of an NFQNL_MSG_PACKET message. Unknown
// attributes are skipped; a truncated attribute is an error, but whatever
// came before it (the packet id comes first) is kept, so the packet can
// still be answered.
func parsePacket(body []byte) (packetMsg, error) {
	var p packetMsg
	if len(body) < nfgenHdrLen {
		return p, errTruncated
	}
	a := nlmsg.Attrs(body[nfgenHdrLen:])
	for {
		typ, v, ok := a.Next()
		if !ok {
			break
		}
		switch typ {
		case attrPacketHdr:
			// struct nfqnl_msg_packet_hdr { __be32 packet_id; __be16 hw_protocol; __u8 hook; }
			if len(v) < 7 {
				return p, errTruncated
			}
			p.id, p.hasID = binary.BigEndian.Uint32(v), true
			p.meta.Hook = v[6]
		case attrMark:
			if len(v) >= 4 {
				p.meta.Mark = binary.BigEndian.Uint32(v)
			}
		case attrInDev:
			if len(v) >= 4 {
				p.meta.InDev = binary.BigEndian.Uint32(v)
			}
		case attrOutDev:
			if len(v) >= 4 {
				p.meta.OutDev = binary.BigEndian.Uint32(v)
			}
		case attrPayload:
			p.payload, p.hasData = v, true
		}
	}
	if len(a) >= nlmsg.AttrHdrLen {
		return p, errTruncated
	}
	return p, nil
}

// appendVerdict appends one verdict message for queue: NFQNL_MSG_VERDICT
// for id alone, or with batch NFQNL_MSG_VERDICT_BATCH for every queued id
// up to id. A mark attribute is added when withMark.
func appendVerdict(b []byte, queue uint16, id, verdict uint32, batch, withMark bool, mark uint32) []byte {
	typ := uint16(msgVerdict)
	if batch {
		typ = msgVerdictBa
	}
	n := nlmsgHdrLen + nfgenHdrLen + nlaHdrLen + 8
	if withMark {
		n += nlaHdrLen + 4
	}
	b = appendHeader(b, n, typ, nlmFRequest, 0, queue)
	b = nlmsg.AppendAttrHeader(b, attrVerdictHdr, 8)
	b = binary.BigEndian.AppendUint32(b, verdict)
	b = binary.BigEndian.AppendUint32(b, id)
	if withMark {
		b = nlmsg.AppendAttrHeader(b, attrMark, 4)
		b = binary.BigEndian.AppendUint32(b, mark)
	}
	return b
}

// queueConfig is what the reader asks of its queue in one config message.
type queueConfig struct {
	queue    uint16
	copyLen  uint32
	maxLen   uint32 // 0: leave the kernel default
	flags    uint32
	flagMask uint32
}

// appendBind appends the config message that binds the queue and sets its
// copy mode, flags and length. The kernel applies it as one request: the
// queue never runs bound with its default copy mode for longer than the
// message takes.
func appendBind(b []byte, seq uint32, c queueConfig) []byte {
	n := nlmsgHdrLen + nfgenHdrLen + (nlaHdrLen + 4) + (nlaHdrLen + 8) + 2*(nlaHdrLen+4)
	if c.maxLen != 0 {
		n += nlaHdrLen + 4
	}
	b = appendHeader(b, n, msgConfig, nlmFRequest|nlmFAck, seq, c.queue)
	b = appendCmd(b, cmdBind)
	// struct nfqnl_msg_config_params { __be32 copy_range; __u8 copy_mode; } (packed: 5 bytes)
	b = nlmsg.AppendAttrHeader(b, cfgParams, 5)
	b = binary.BigEndian.AppendUint32(b, c.copyLen)
	b = append(b, copyPacket, 0, 0, 0)
	b = nlmsg.AppendAttrHeader(b, cfgMask, 4)
	b = binary.BigEndian.AppendUint32(b, c.flagMask)
	b = nlmsg.AppendAttrHeader(b, cfgFlags, 4)
	b = binary.BigEndian.AppendUint32(b, c.flags)
	if c.maxLen != 0 {
		b = nlmsg.AppendAttrHeader(b, cfgMaxLen, 4)
		b = binary.BigEndian.AppendUint32(b, c.maxLen)
	}
	return b
}

// appendUnbind appends the config message that unbinds the queue.
func appendUnbind(b []byte, seq uint32, queue uint16) []byte {
	b = appendHeader(b, nlmsgHdrLen+nfgenHdrLen+nlaHdrLen+4, msgConfig, nlmFRequest, seq, queue)
	return appendCmd(b, cmdUnbind)
}

// appendCmd appends NFQA_CFG_CMD: struct nfqnl_msg_config_cmd { __u8
// command; __u8 _pad; __be16 pf; } (pf is ignored by kernels since 3.8).
func appendCmd(b []byte, cmd byte) []byte {
	b = nlmsg.AppendAttrHeader(b, cfgCmd, 4)
	return append(b, cmd, 0, 0, 0)
}

// appendHeader appends a netlink header of a message n bytes long and the
// nfgenmsg for queue (family AF_UNSPEC, version 0, res_id the queue).
func appendHeader(b []byte, n int, typ, flags uint16, seq uint32, queue uint16) []byte {
	b = binary.NativeEndian.AppendUint32(b, uint32(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel fills it in
	b = append(b, 0, 0)
	return binary.BigEndian.AppendUint16(b, queue)
}

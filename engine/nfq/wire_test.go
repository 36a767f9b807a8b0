package nfq

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nfqfw/nfqfw/engine/internal/nlmsg"
)

// packetMessage encodes an NFQNL_MSG_PACKET message as the kernel sends
// it: packet header, mark, interfaces, then the payload attribute (always
// last, so tests can cut it). id 0 leaves the packet header out.
func packetMessage(id uint32, payload []byte, hook uint8, in, out, mark uint32) []byte {
	b := appendHeader(nil, 0, msgPacket, 0, 0, 0)
	if id != 0 {
		b = nlmsg.AppendAttrHeader(b, attrPacketHdr, 7)
		b = binary.BigEndian.AppendUint32(b, id)
		b = binary.BigEndian.AppendUint16(b, unix.ETH_P_IP)
		b = append(b, hook, 0)
	}
	b = nlmsg.AppendAttrHeader(b, attrMark, 4)
	b = binary.BigEndian.AppendUint32(b, mark)
	if in != 0 {
		b = nlmsg.AppendAttrHeader(b, attrInDev, 4)
		b = binary.BigEndian.AppendUint32(b, in)
	}
	if out != 0 {
		b = nlmsg.AppendAttrHeader(b, attrOutDev, 4)
		b = binary.BigEndian.AppendUint32(b, out)
	}
	b = nlmsg.AppendAttrHeader(b, attrPayload, len(payload))
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return fixLen(b)
}

// setPacketID rewrites the id of a packetMessage.
func setPacketID(msg []byte, id uint32) {
	binary.BigEndian.PutUint32(msg[nlmsgHdrLen+nfgenHdrLen+nlaHdrLen:], id)
}

// fixLen sets the netlink header's length to the message's.
func fixLen(b []byte) []byte {
	binary.NativeEndian.PutUint32(b, uint32(len(b)))
	return b
}

// errorMessage encodes an NLMSG_ERROR answering request seq (CapAcknowledge:
// the request's header only).
func errorMessage(errno int32, seq uint32) []byte {
	b := appendHeader(nil, 0, nlmsgError, 0, 0, 0)[:nlmsgHdrLen]
	b = binary.NativeEndian.AppendUint32(b, uint32(errno))
	req := appendHeader(nil, nlmsgHdrLen+nfgenHdrLen, msgVerdict, nlmFRequest, seq, 0)[:nlmsgHdrLen]
	return fixLen(append(b, req...))
}

func TestParsePacket(t *testing.T) {
	msg := packetMessage(77, []byte{0x45, 0, 0, 28, 9}, HookForward, 4, 5, 0x10)
	m, rest, err := nextMessage(msg)
	if err != nil || len(rest) != 0 || m.typ != msgPacket {
		t.Fatalf("nextMessage = %+v, rest %d bytes, %v", m, len(rest), err)
	}
	p, err := parsePacket(m.body)
	if err != nil {
		t.Fatal(err)
	}
	want := packetMsg{id: 77, hasID: true, hasData: true, payload: []byte{0x45, 0, 0, 28, 9},
		meta: Meta{Hook: HookForward, InDev: 4, OutDev: 5, Mark: 0x10}}
	if diff := cmp.Diff(want, p, cmp.AllowUnexported(packetMsg{})); diff != "" {
		t.Errorf("parsePacket (-want +got):\n%s", diff)
	}
}

func TestErrorCode(t *testing.T) {
	m, _, err := nextMessage(errorMessage(-int32(unix.EPERM), 9))
	if err != nil || m.typ != nlmsgError {
		t.Fatalf("nextMessage = %+v, %v", m, err)
	}
	errno, seq, err := errorCode(m.body)
	if err != nil || errno != int32(unix.EPERM) || seq != 9 {
		t.Errorf("errorCode = %d, %d, %v; want EPERM, 9", errno, seq, err)
	}
	if _, _, err := errorCode(m.body[:8]); !errors.Is(err, errTruncated) {
		t.Errorf("errorCode of a cut body: %v, want errTruncated", err)
	}
}

// TestVerdictMessages checks the encoding against the kernel's layout
// (struct nlmsghdr, struct nfgenmsg, NFQA_VERDICT_HDR, NFQA_MARK).
func TestVerdictMessages(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("big-endian host: the expected netlink headers below are little endian")
	}
	got := appendVerdict(nil, 3, 0x0102, nfRepeat, false, true, 0x10000)
	want := []byte{
		40, 0, 0, 0, // length
		0x01, 0x03, // NFNL_SUBSYS_QUEUE<<8 | NFQNL_MSG_VERDICT
		0x01, 0x00, // NLM_F_REQUEST
		0, 0, 0, 0, 0, 0, 0, 0, // seq, port id
		0, 0, 0, 3, // AF_UNSPEC, version 0, queue 3 (big endian)
		12, 0, 2, 0, 0, 0, 0, 4, 0, 0, 0x01, 0x02, // verdict header: NF_REPEAT, id
		8, 0, 3, 0, 0, 1, 0, 0, // mark
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("repeat verdict (-want +got):\n%s", diff)
	}
	got = appendVerdict(nil, 0, 9, nfAccept, true, false, 0)
	if len(got) != 32 || got[4] != 0x03 || got[5] != 0x03 {
		t.Errorf("batch verdict % x: want 32 bytes of type NFQNL_MSG_VERDICT_BATCH", got)
	}
}

func TestBindMessage(t *testing.T) {
	b := appendBind(nil, 1, queueConfig{queue: 5, copyLen: MaxPacketLen, maxLen: 4096, flags: flagGSO, flagMask: flagGSO | flagFailOpen})
	m, rest, err := nextMessage(b)
	if err != nil || len(rest) != 0 {
		t.Fatalf("nextMessage: %v, %d bytes left", err, len(rest))
	}
	if m.typ != msgConfig || m.flags != nlmFRequest|nlmFAck || m.seq != 1 {
		t.Errorf("header %+v", m)
	}
	got := map[uint16][]byte{}
	for a := m.body[nfgenHdrLen:]; len(a) > 0; {
		l := int(binary.NativeEndian.Uint16(a))
		got[binary.NativeEndian.Uint16(a[2:])] = a[nlaHdrLen:l]
		a = a[nlmsg.Align(l):]
	}
	want := map[uint16][]byte{
		cfgCmd:    {cmdBind, 0, 0, 0},
		cfgParams: {0, 0, 0xff, 0xff, copyPacket},
		cfgMask:   {0, 0, 0, 5},
		cfgFlags:  {0, 0, 0, 4},
		cfgMaxLen: {0, 0, 0x10, 0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("attributes (-want +got):\n%s", diff)
	}
}

// FuzzParseQueueMessages feeds arbitrary datagrams to the reader's
// message handling: it must not panic, and must answer only ids it read.
func FuzzParseQueueMessages(f *testing.F) {
	f.Add(packetMessage(1, []byte{0x45, 0, 0, 20}, HookInput, 1, 0, 0))
	f.Add(append(packetMessage(2, nil, HookForward, 1, 2, 3), packetMessage(3, []byte{1}, 0, 0, 0, 0)...))
	f.Add(errorMessage(-int32(unix.ENOENT), 0))
	f.Add(packetMessage(0, nil, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ids []uint32
		r, sink := newTestReader(Config{FailureAccept: true}, DeciderFunc(func(pkt []byte, m Meta) Verdict {
			if len(pkt) > len(b) {
				t.Fatalf("payload of %d bytes from a %d-byte datagram", len(pkt), len(b))
			}
			return Drop
		}))
		r.datagram(b, false)
		for rest := b; len(rest) > 0; {
			m, next, err := nextMessage(rest)
			if err != nil {
				break
			}
			rest = next
			if p, _ := parsePacket(m.body); p.hasID && m.typ == msgPacket {
				ids = append(ids, p.id)
			}
		}
		if len(sink.calls) > len(ids) {
			t.Fatalf("%d verdicts for %d packet ids: %v", len(sink.calls), len(ids), sink.calls)
		}
	})
}

package ctnl

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
	"github.com/ti-mo/conntrack"
)

// libraryDecode decodes one read of the event socket with the conntrack
// library, the reference the hand decoder must agree with.
func libraryDecode(t *testing.T, b []byte) []Event {
	t.Helper()
	raw, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		t.Fatalf("parse netlink message: %v", err)
	}
	var out []Event
	for _, m := range raw {
		var ev conntrack.Event
		msg := netlink.Message{
			Header: netlink.Header{Length: m.Header.Len, Type: netlink.HeaderType(m.Header.Type),
				Flags: netlink.HeaderFlags(m.Header.Flags), Sequence: m.Header.Seq, PID: m.Header.Pid},
			Data: m.Data,
		}
		if err := ev.Unmarshal(msg); err != nil || ev.Flow == nil {
			continue
		}
		typ := EventUnknown
		switch ev.Type {
		case conntrack.EventNew:
			typ = EventNew
		case conntrack.EventUpdate:
			typ = EventUpdate
		case conntrack.EventDestroy:
			typ = EventDestroy
		}
		out = append(out, fromFlow(typ, ev.Flow))
	}
	return out
}

// TestDecodeMatchesLibrary reads real conntrack events (UDP v4/v6, TCP
// through its states, ICMP echo, destroys) from the kernel in a fresh
// namespace and decodes every datagram both by hand and with the library.
func TestDecodeMatchesLibrary(t *testing.T) {
	sandbox.Require(t, "iptables", "ip6tables", "conntrack", "ping")
	ns := sandbox.NewNetns(t, "ctd")
	ns.MustExec("iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	ns.MustExec("ip6tables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	sock, err := openEventSocket(ns.Handle(), DefaultReadBuffer, false)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.f.Close()

	udp4Srv, udp6Srv, tcpSrv := loopbackServers(t, ns, 9996, 9995)
	udpExchange(t, ns, netip.MustParseAddr("127.0.0.2"), udp4Srv)
	udpExchange(t, ns, netip.MustParseAddr("::1"), udp6Srv)
	tcpConnect(t, ns, tcpSrv)
	ns.MustExec("ping", "-c", "1", "-W", "1", "127.0.0.1")
	ns.MustExec("conntrack", "-F")

	buf := make([]byte, eventBuffer)
	var got, want []Event
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		sock.f.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := sock.f.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break // drained
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, libraryDecode(t, buf[:n])...)
		if _, bad := decodeMessages(buf[:n], func(e Event) { got = append(got, e) }); bad != 0 {
			t.Errorf("%d messages did not decode", bad)
		}
	}
	if len(want) < 8 {
		t.Fatalf("only %d events read; want the flows' new, update and destroy events", len(want))
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("hand decoder vs library (-library +hand):\n%s", diff)
	}
	kinds := map[EventType]int{}
	for _, e := range got {
		kinds[e.Type]++
	}
	t.Logf("%d events compared: %v", len(got), kinds)
}

// nlattr appends one netlink attribute.
func nlattr(b []byte, typ uint16, val []byte) []byte {
	l := nlaHdrLen + len(val)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// tcpUpdateMessage is a ctnetlink update for TCP 10.0.0.1:40000 ->
// 10.0.0.2:22, ESTABLISHED, seen reply and assured, 431999 s left.
func tcpUpdateMessage() []byte {
	tuple := func(src, dst [4]byte, sp, dp uint16) []byte {
		ip := nlattr(nlattr(nil, ctaIPv4Src, src[:]), ctaIPv4Dst, dst[:])
		proto := nlattr(nil, ctaProtoNum, []byte{6})
		proto = nlattr(proto, ctaProtoSrcPort, binary.BigEndian.AppendUint16(nil, sp))
		proto = nlattr(proto, ctaProtoDstPort, binary.BigEndian.AppendUint16(nil, dp))
		return nlattr(nlattr(nil, ctaTupleIP|0x8000, ip), ctaTupleProto|0x8000, proto)
	}
	attrsb := nlattr(nil, ctaTupleOrig|0x8000, tuple([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 40000, 22))
	attrsb = nlattr(attrsb, ctaTupleReply|0x8000, tuple([4]byte{10, 0, 0, 2}, [4]byte{10, 0, 0, 1}, 22, 40000))
	attrsb = nlattr(attrsb, ctaStatus, binary.BigEndian.AppendUint32(nil, ipsSeenReply|ipsAssured))
	attrsb = nlattr(attrsb, ctaTimeout, binary.BigEndian.AppendUint32(nil, 431999))
	attrsb = nlattr(attrsb, ctaProtoinfo|0x8000, nlattr(nil, ctaProtoinfoTCP|0x8000, nlattr(nil, ctaProtoinfoTCPState, []byte{3})))
	body := append([]byte{2, 0, 0, 0}, attrsb...) // nfgenmsg: AF_INET
	msg := binary.NativeEndian.AppendUint32(nil, uint32(nlmsgHdrLen+len(body)))
	msg = binary.NativeEndian.AppendUint16(msg, subsysCTNL<<8|msgCTNew)
	msg = binary.NativeEndian.AppendUint16(msg, 0)
	msg = append(msg, make([]byte, 8)...) // seq, pid
	return append(msg, body...)
}

func TestDecodeMessage(t *testing.T) {
	var got []Event
	n, bad := decodeMessages(tcpUpdateMessage(), func(e Event) { got = append(got, e) })
	if n != 1 || bad != 0 {
		t.Fatalf("decoded %d, bad %d; want 1, 0", n, bad)
	}
	want := Event{Type: EventUpdate, Proto: 6,
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SPort: 40000, DPort: 22,
		ReplySrc: netip.MustParseAddr("10.0.0.2"), ReplyDst: netip.MustParseAddr("10.0.0.1"), ReplySPort: 22, ReplyDPort: 40000,
		TCPState: TCPStateEstablished, Assured: true, SeenReply: true, Timeout: 431999}
	if diff := cmp.Diff([]Event{want}, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
}

func TestDecodeAllocs(t *testing.T) {
	msg := tcpUpdateMessage()
	var seen int
	fn := func(Event) { seen++ }
	if a := testing.AllocsPerRun(1000, func() { decodeMessages(msg, fn) }); a != 0 {
		t.Errorf("%v allocations per message, want 0", a)
	}
}

func FuzzDecodeMessages(f *testing.F) {
	f.Add(tcpUpdateMessage())
	f.Add(tcpUpdateMessage()[:40])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeMessages(b, func(e Event) {
			if !e.Src.IsValid() || !e.Dst.IsValid() {
				t.Fatalf("event without original addresses: %+v", e)
			}
		})
	})
}

func BenchmarkDecodeMessage(b *testing.B) {
	msg := tcpUpdateMessage()
	fn := func(Event) {}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		decodeMessages(msg, fn)
	}
}

package ctnl

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ti-mo/conntrack"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestFromFlow(t *testing.T) {
	a := netip.MustParseAddr
	// A TCP flow 10.0.0.2:40000 -> 192.0.2.1:22, established and
	// assured, DNATed to 10.99.2.2:22 (the reply comes from there).
	tcp := conntrack.NewFlow(6, conntrack.StatusAssured|conntrack.StatusSeenReply|conntrack.StatusConfirmed,
		a("10.0.0.2"), a("192.0.2.1"), 40000, 22, 431999, 0x10000)
	tcp.TupleReply.IP.SourceAddress = a("10.99.2.2")
	tcp.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: TCPStateEstablished}

	// An unreplied ICMPv6 echo request, id 0x1234.
	var icmp6 conntrack.Flow
	icmp6.Timeout = 30
	icmp6.TupleOrig = conntrack.Tuple{
		IP:    conntrack.IPTuple{SourceAddress: a("fd99:1::2"), DestinationAddress: a("fd99:2::2")},
		Proto: conntrack.ProtoTuple{Protocol: 58, ICMPv6: true, ICMPID: 0x1234, ICMPType: 128},
	}
	icmp6.TupleReply = conntrack.Tuple{
		IP:    conntrack.IPTuple{SourceAddress: a("fd99:2::2"), DestinationAddress: a("fd99:1::2")},
		Proto: conntrack.ProtoTuple{Protocol: 58, ICMPv6: true, ICMPID: 0x1234, ICMPType: 129},
	}

	tests := []struct {
		name string
		typ  EventType
		flow conntrack.Flow
		want Event
	}{
		{
			name: "DNATed established TCP flow",
			typ:  EventUpdate,
			flow: tcp,
			want: Event{Type: EventUpdate, Proto: 6,
				Src: a("10.0.0.2"), Dst: a("192.0.2.1"), SPort: 40000, DPort: 22,
				ReplySrc: a("10.99.2.2"), ReplyDst: a("10.0.0.2"), ReplySPort: 22, ReplyDPort: 40000,
				TCPState: TCPStateEstablished, Assured: true, SeenReply: true, Mark: 0x10000, Timeout: 431999},
		},
		{
			name: "ICMPv6 echo: id and type<<8|code in the ports",
			typ:  EventNew,
			flow: icmp6,
			want: Event{Type: EventNew, Proto: 58,
				Src: a("fd99:1::2"), Dst: a("fd99:2::2"), SPort: 0x1234, DPort: 128 << 8,
				ReplySrc: a("fd99:2::2"), ReplyDst: a("fd99:1::2"), ReplySPort: 0x1234, ReplyDPort: 129 << 8,
				Timeout: 30},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, fromFlow(tt.typ, &tt.flow), addrCmp); diff != "" {
				t.Errorf("fromFlow (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventTypeString(t *testing.T) {
	got := []string{EventUnknown.String(), EventNew.String(), EventUpdate.String(), EventDestroy.String(), EventDump.String(), EventType(99).String()}
	want := []string{"unknown", "new", "update", "destroy", "dump", "unknown"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("String (-want +got):\n%s", diff)
	}
}

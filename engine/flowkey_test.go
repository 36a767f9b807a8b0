package engine

import (
	"net/netip"
	"testing"
	"unsafe"
)

func TestFlowKeyIsPackedAndPointerFree(t *testing.T) {
	// 2x16 address bytes, 2x2 port bytes, proto, family, kind: 39 bytes.
	if got := unsafe.Sizeof(FlowKey{}); got != 40 {
		t.Errorf("FlowKey is %d bytes, want 40", got)
	}
	if got := unsafe.Sizeof(entry{}); got != 16 {
		t.Errorf("entry is %d bytes, want 16", got)
	}
}

func TestKeyOfBothDirectionsShareOneKey(t *testing.T) {
	tests := []struct {
		name     string
		fwd, rev flowPacket
	}{
		{"tcp ipv4", flowTCP(t, "10.0.0.1:40000", "10.0.0.2:22", "S"), flowTCP(t, "10.0.0.2:22", "10.0.0.1:40000", "SA")},
		{"tcp ipv4 higher source", flowTCP(t, "10.0.0.9:40000", "10.0.0.2:22", "S"), flowTCP(t, "10.0.0.2:22", "10.0.0.9:40000", "SA")},
		{"tcp same address, ports decide", flowTCP(t, "127.0.0.1:40000", "127.0.0.1:22", "S"), flowTCP(t, "127.0.0.1:22", "127.0.0.1:40000", "SA")},
		{"udp ipv6", flowUDP(t, "[2001:db8::1]:5353", "[2001:db8::2]:53"), flowUDP(t, "[2001:db8::2]:53", "[2001:db8::1]:5353")},
		{"icmp echo ipv4", flowEcho(t, "10.0.0.1", "10.0.0.2", 7, true), flowEcho(t, "10.0.0.2", "10.0.0.1", 7, false)},
		{"icmpv6 echo", flowEcho(t, "2001:db8::9", "2001:db8::2", 7, true), flowEcho(t, "2001:db8::2", "2001:db8::9", 7, false)},
		{"icmpv6 other type", flowICMPType(t, "fe80::1", "ff02::1", 134), flowICMPType(t, "ff02::1", "fe80::1", 134)},
		{"gre without ports", flowGRE(t, "10.0.0.1", "10.0.0.2"), flowGRE(t, "10.0.0.2", "10.0.0.1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kf, df := KeyOf(&tt.fwd.p)
			kr, dr := KeyOf(&tt.rev.p)
			if kf != kr {
				t.Errorf("keys differ:\n fwd %v\n rev %v", kf, kr)
			}
			if df == dr {
				t.Errorf("both directions are %d", df)
			}
			// The key's tuple in the packet's direction is the packet's tuple.
			want := Tuple{
				Src: netip.AddrPortFrom(addrOf(tt.fwd.p.Src, tt.fwd.p.Family), tt.fwd.p.SrcPort),
				Dst: netip.AddrPortFrom(addrOf(tt.fwd.p.Dst, tt.fwd.p.Family), tt.fwd.p.DstPort),
			}
			if got := kf.Tuple(df); got != want {
				t.Errorf("Tuple(%d) = %v, want %v", df, got, want)
			}
		})
	}
}

func TestKeyOfSeparatesFlows(t *testing.T) {
	tests := []struct {
		name string
		a, b flowPacket
	}{
		{"other source port", flowTCP(t, "10.0.0.1:40000", "10.0.0.2:22", "S"), flowTCP(t, "10.0.0.1:40001", "10.0.0.2:22", "S")},
		{"tcp vs udp", flowTCP(t, "10.0.0.1:40000", "10.0.0.2:53", "S"), flowUDP(t, "10.0.0.1:40000", "10.0.0.2:53")},
		{"other echo id", flowEcho(t, "10.0.0.1", "10.0.0.2", 7, true), flowEcho(t, "10.0.0.1", "10.0.0.2", 8, true)},
		// conntrack keeps a ping each way apart: a request from the
		// responder with the same id is a new flow, not the reply.
		{"echo requests each way", flowEcho(t, "10.0.0.1", "10.0.0.2", 7, true), flowEcho(t, "10.0.0.2", "10.0.0.1", 7, true)},
		{"echo id 0 vs other icmp", flowEcho(t, "10.0.0.1", "10.0.0.2", 0, true), flowICMPType(t, "10.0.0.1", "10.0.0.2", 13)},
		{"ipv4 vs mapped ipv6", flowUDP(t, "10.0.0.1:1", "10.0.0.2:2"), flowUDP(t, "[::ffff:10.0.0.1]:1", "[::ffff:10.0.0.2]:2")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka, _ := KeyOf(&tt.a.p)
			kb, _ := KeyOf(&tt.b.p)
			if ka == kb {
				t.Errorf("both packets have key %v", ka)
			}
		})
	}
}

func TestKeyOfInnerFindsTheQuotedFlow(t *testing.T) {
	tests := []struct {
		name   string
		flow   flowPacket // the packet that created the flow
		quoted flowPacket // the packet an ICMP error quotes
		alt    bool       // the key is the echo-swapped one (quoted echo reply)
	}{
		{"tcp original direction", flowTCP(t, "10.0.0.1:40000", "10.0.0.2:22", "S"), flowTCP(t, "10.0.0.1:40000", "10.0.0.2:22", "S"), false},
		{"tcp reply direction", flowTCP(t, "10.0.0.1:40000", "10.0.0.2:22", "S"), flowTCP(t, "10.0.0.2:22", "10.0.0.1:40000", "SA"), false},
		{"udp ipv6 reply direction", flowUDP(t, "[2001:db8::1]:5353", "[2001:db8::2]:53"), flowUDP(t, "[2001:db8::2]:53", "[2001:db8::1]:5353"), false},
		{"echo request", flowEcho(t, "10.0.0.1", "10.0.0.2", 9, true), flowEcho(t, "10.0.0.1", "10.0.0.2", 9, true), false},
		{"echo reply", flowEcho(t, "10.0.0.1", "10.0.0.2", 9, true), flowEcho(t, "10.0.0.2", "10.0.0.1", 9, false), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errp := flowICMPError(t, "192.0.2.1", "10.0.0.1", tt.quoted)
			if tt.quoted.p.Family == 6 {
				errp = flowICMPError(t, "2001:db8::ff", "2001:db8::1", tt.quoted)
			}
			if !errp.p.HasInner {
				t.Fatal("decoder found no quoted packet")
			}
			want, _ := KeyOf(&tt.flow.p)
			got, _ := KeyOfInner(&errp.p.Inner, errp.p.Family)
			if tt.alt {
				got = got.echoSwapped()
			}
			if got != want {
				t.Errorf("KeyOfInner = %v, want %v", got, want)
			}
		})
	}
}

func TestKeyOfTupleMatchesKeyOf(t *testing.T) {
	tests := []struct {
		name     string
		pkt      flowPacket
		proto    uint8
		src, dst string
	}{
		{"tcp ipv4", flowTCP(t, "10.0.0.1:40000", "10.0.0.2:22", "S"), 6, "10.0.0.1:40000", "10.0.0.2:22"},
		{"tcp ipv4 given mapped", flowTCP(t, "10.0.0.1:40000", "10.0.0.2:22", "S"), 6, "[::ffff:10.0.0.1]:40000", "[::ffff:10.0.0.2]:22"},
		{"udp ipv6", flowUDP(t, "[2001:db8::1]:5353", "[2001:db8::2]:53"), 17, "[2001:db8::1]:5353", "[2001:db8::2]:53"},
		{"icmp echo: id as source port", flowEcho(t, "10.0.0.1", "10.0.0.2", 77, true), 1, "10.0.0.1:77", "10.0.0.2:0"},
		{"icmpv6 echo", flowEcho(t, "2001:db8::1", "2001:db8::2", 77, true), 58, "[2001:db8::1]:77", "[2001:db8::2]:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, _ := KeyOf(&tt.pkt.p)
			got, _ := KeyOfTuple(tt.proto, netip.MustParseAddrPort(tt.src), netip.MustParseAddrPort(tt.dst))
			if got != want {
				t.Errorf("KeyOfTuple = %v, want %v", got, want)
			}
		})
	}
}

func TestFlowKeyString(t *testing.T) {
	synack := flowTCP(t, "10.0.0.2:22", "10.0.0.1:40000", "SA")
	k, _ := KeyOf(&synack.p)
	if got, want := k.String(), "tcp 10.0.0.1:40000 <-> 10.0.0.2:22"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	reply := flowEcho(t, "2001:db8::2", "2001:db8::1", 5, false)
	k, _ = KeyOf(&reply.p)
	if got, want := k.String(), "icmpv6 2001:db8::1 -> 2001:db8::2 id=5"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

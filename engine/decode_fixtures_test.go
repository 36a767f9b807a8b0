package engine

import (
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/nfqfw/nfqfw/rules"
)

// Packet fixtures for the decoder's tests, fuzz seeds and benchmarks. Each
// is a queued packet as NFQUEUE hands it over: starting at the IP header.
// They are built with gopacket (lengths and checksums fixed up) and then,
// where a case needs it, bent by hand; the comment of each says what it is.

// decodeFixture is a packet and what Decode must make of it.
type decodeFixture struct {
	name string
	b    []byte
	want Parsed
}

// Addresses of the fixtures (documentation and sandbox ranges; nothing is sent).
var (
	decCli4 = netip.MustParseAddr("10.99.1.2")
	decSrv4 = netip.MustParseAddr("10.99.2.2")
	decGw4  = netip.MustParseAddr("10.99.1.1")
	decCli6 = netip.MustParseAddr("2001:db8:1::2")
	decSrv6 = netip.MustParseAddr("2001:db8:2::2")
	decGw6  = netip.MustParseAddr("2001:db8:1::1")
	decLL6  = netip.MustParseAddr("fe80::2")
	decSN6  = netip.MustParseAddr("ff02::1:ff00:1") // solicited-node address of ...::1
)

// decAddr is an address as Parsed stores it.
func decAddr(a netip.Addr) [16]byte { return a.As16() }

func decIPv4(proto layers.IPProtocol, src, dst netip.Addr) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
}

func decIPv6(next layers.IPProtocol, src, dst netip.Addr) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
}

// build serializes ls with lengths and checksums fixed up. The first layer
// is the network layer of the transport checksums.
func decBuild(ls ...gopacket.SerializableLayer) []byte {
	nl, _ := ls[0].(gopacket.NetworkLayer)
	for _, l := range ls {
		switch t := l.(type) {
		case *layers.TCP:
			_ = t.SetNetworkLayerForChecksum(nl)
		case *layers.UDP:
			_ = t.SetNetworkLayerForChecksum(nl)
		case *layers.ICMPv6:
			_ = t.SetNetworkLayerForChecksum(nl)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// Transport headers used by several fixtures.
func decTCPSYN() *layers.TCP {
	return &layers.TCP{
		SrcPort: 40000, DstPort: 22, Seq: 1000, SYN: true, Window: 64240,
		Options: []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
			{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 1, 0, 0, 0, 0}},
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		},
	}
}

func decTCPPSH() *layers.TCP {
	return &layers.TCP{SrcPort: 40001, DstPort: 21, Seq: 5000, Ack: 9000, PSH: true, ACK: true, Window: 502}
}

func decUDPDNS() *layers.UDP { return &layers.UDP{SrcPort: 40002, DstPort: 53} }

var (
	decFTPLine  = gopacket.Payload("USER anonymous\r\n") // 16 bytes
	decDNSQuery = gopacket.Payload([]byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0})
	decPing     = gopacket.Payload("0123456789abcdef")
)

// edit returns b changed by fn (on a copy).
func decEdit(b []byte, fn func(b []byte) []byte) []byte {
	return fn(append([]byte(nil), b...))
}

func decodeFixtures() []decodeFixture {
	syn4 := decBuild(decIPv4(layers.IPProtocolTCP, decCli4, decSrv4), decTCPSYN())
	psh4 := decBuild(decIPv4(layers.IPProtocolTCP, decCli4, decSrv4), decTCPPSH(), decFTPLine)
	udp4 := decBuild(decIPv4(layers.IPProtocolUDP, decCli4, decSrv4), decUDPDNS(), decDNSQuery)
	syn6 := decBuild(decIPv6(layers.IPProtocolTCP, decCli6, decSrv6), decTCPSYN())
	psh6 := decBuild(decIPv6(layers.IPProtocolTCP, decCli6, decSrv6), decTCPPSH(), decFTPLine)
	udp6 := decBuild(decIPv6(layers.IPProtocolUDP, decCli6, decSrv6), decUDPDNS(), decDNSQuery)

	// The packets the ICMP errors quote, as the client sent them.
	quotedUDP4 := udp4[:ipv4HeaderLen+udpHeaderLen]
	quotedTCP4 := syn4[:ipv4HeaderLen+8]
	quotedUDP6 := udp6 // ICMPv6 errors quote as much as fits
	quotedPing6 := decBuild(decIPv6(layers.IPProtocolICMPv6, decCli6, decSrv6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, &layers.ICMPv6Echo{Identifier: 0x4242, SeqNumber: 1})

	// The wanted results share their IP part: ip fills it for family fam
	// from src to dst, with header length hl unless the case sets one.
	// v4bad and v6bad are for packets whose IP header is already bad:
	// no IPHeaderLen; v4back and v6back for the server's answers.
	ip := func(fam rules.Family, src, dst netip.Addr, hl int) func(Parsed) Parsed {
		return func(p Parsed) Parsed {
			p.Family, p.TTL, p.Src, p.Dst = fam, 64, decAddr(src), decAddr(dst)
			if p.IPHeaderLen == 0 {
				p.IPHeaderLen = hl
			}
			return p
		}
	}
	v4bad := ip(rules.FamilyIPv4, decCli4, decSrv4, 0)
	v6bad := ip(rules.FamilyIPv6, decCli6, decSrv6, 0)
	v4 := ip(rules.FamilyIPv4, decCli4, decSrv4, ipv4HeaderLen)
	v4back := ip(rules.FamilyIPv4, decSrv4, decCli4, ipv4HeaderLen)
	v6 := ip(rules.FamilyIPv6, decCli6, decSrv6, ipv6HeaderLen)
	v6back := ip(rules.FamilyIPv6, decSrv6, decCli6, ipv6HeaderLen)
	synWant := Parsed{Packet: rules.Packet{Proto: protoTCP, TCPFlags: 0x02, SrcPort: 40000, DstPort: 22}, TCPSeq: 1000, TCPWindow: 64240}
	pshWant := Parsed{Packet: rules.Packet{Proto: protoTCP, TCPFlags: 0x18, SrcPort: 40001, DstPort: 21}, TCPSeq: 5000, TCPAck: 9000, TCPWindow: 502, PayloadLen: 16}
	udpWant := Parsed{Packet: rules.Packet{Proto: protoUDP, SrcPort: 40002, DstPort: 53}, PayloadLen: len(decDNSQuery)}

	return []decodeFixture{
		{
			name: "ipv4/tcp-syn", // SYN with MSS, SACK-permitted, timestamps, NOP, window scale
			b:    syn4,
			want: v4(decWith(synWant, func(p *Parsed) { p.PayloadStart = 20 + 40 })),
		},
		{
			name: "ipv4/tcp-psh-ack-payload", // FTP control line
			b:    psh4,
			want: v4(decWith(pshWant, func(p *Parsed) { p.PayloadStart = 40 })),
		},
		{
			name: "ipv4/tcp-mptcp-syn", // SYN with an MP_CAPABLE option (gopacket's TCP layer allocates for it)
			b: decBuild(decIPv4(layers.IPProtocolTCP, decCli4, decSrv4), &layers.TCP{SrcPort: 40000, DstPort: 22, Seq: 1000, SYN: true, Window: 64240,
				Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMultipathTCP, OptionLength: 12, OptionData: []byte{0x01, 0x81, 1, 2, 3, 4, 5, 6, 7, 8}}}}),
			want: v4(decWith(synWant, func(p *Parsed) { p.PayloadStart = 20 + 32 })),
		},
		{
			name: "ipv4/tcp-ece-cwr-syn", // ECN setup SYN: every high flag bit reaches TCPFlags
			b:    decBuild(decIPv4(layers.IPProtocolTCP, decCli4, decSrv4), &layers.TCP{SrcPort: 40000, DstPort: 22, Seq: 1000, SYN: true, ECE: true, CWR: true, Window: 64240}),
			want: v4(decWith(synWant, func(p *Parsed) { p.TCPFlags = 0xc2; p.PayloadStart = 40 })),
		},
		{
			name: "ipv4/udp",
			b:    udp4,
			want: v4(decWith(udpWant, func(p *Parsed) { p.PayloadStart = 28 })),
		},
		{
			name: "ipv4/sctp-init", // SCTP common header and an INIT chunk
			b: decBuild(decIPv4(layers.IPProtocolSCTP, decCli4, decSrv4), &layers.SCTP{SrcPort: 40003, DstPort: 3868, VerificationTag: 0},
				gopacket.Payload([]byte{1, 0, 0, 20, 0, 0, 0, 1, 0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1})),
			want: v4(Parsed{Packet: rules.Packet{Proto: protoSCTP, SrcPort: 40003, DstPort: 3868}}),
		},
		{
			name: "ipv4/icmp-echo-request",
			b:    decBuild(decIPv4(layers.IPProtocolICMPv4, decCli4, decSrv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 0x1234, Seq: 1}, decPing),
			want: v4(Parsed{Packet: rules.Packet{Proto: protoICMPv4, ICMPType: 8}, ICMPID: 0x1234}),
		},
		{
			name: "ipv4/icmp-echo-reply",
			b:    decBuild(decIPv4(layers.IPProtocolICMPv4, decSrv4, decCli4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(0, 0), Id: 0x1234, Seq: 1}, decPing),
			want: v4back(Parsed{Packet: rules.Packet{Proto: protoICMPv4}, ICMPID: 0x1234}),
		},
		{
			name: "ipv4/icmp-port-unreachable-quoting-udp", // the server's answer to the UDP fixture
			b:    decBuild(decIPv4(layers.IPProtocolICMPv4, decSrv4, decCli4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}, gopacket.Payload(quotedUDP4)),
			want: v4back(Parsed{Packet: rules.Packet{Proto: protoICMPv4, ICMPType: 3, ICMPCode: 3},
				HasInner: true, Inner: InnerTuple{Proto: protoUDP, Src: decAddr(decCli4), Dst: decAddr(decSrv4), SrcPort: 40002, DstPort: 53}}),
		},
		{
			name: "ipv4/icmp-time-exceeded-quoting-tcp", // a router on the way answers the SYN fixture
			b:    decBuild(decIPv4(layers.IPProtocolICMPv4, decGw4, decCli4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(11, 0)}, gopacket.Payload(quotedTCP4)),
			want: decWith(v4(Parsed{Packet: rules.Packet{Proto: protoICMPv4, ICMPType: 11},
				HasInner: true, Inner: InnerTuple{Proto: protoTCP, Src: decAddr(decCli4), Dst: decAddr(decSrv4), SrcPort: 40000, DstPort: 22}}),
				func(p *Parsed) { p.Src, p.Dst = decAddr(decGw4), decAddr(decCli4) }),
		},
		{
			name: "ipv4/icmp-error-quote-cut-before-ports", // the quote ends 2 bytes into the UDP header: addresses, no ports
			b:    decBuild(decIPv4(layers.IPProtocolICMPv4, decSrv4, decCli4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}, gopacket.Payload(quotedUDP4[:22])),
			want: v4back(Parsed{Packet: rules.Packet{Proto: protoICMPv4, ICMPType: 3, ICMPCode: 3},
				HasInner: true, Inner: InnerTuple{Proto: protoUDP, Src: decAddr(decCli4), Dst: decAddr(decSrv4)}}),
		},
		{
			name: "ipv4/icmp-error-quote-cut-in-ip-header", // less than an IPv4 header quoted: no inner tuple
			b:    decBuild(decIPv4(layers.IPProtocolICMPv4, decSrv4, decCli4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 1)}, gopacket.Payload(quotedUDP4[:12])),
			want: v4back(Parsed{Packet: rules.Packet{Proto: protoICMPv4, ICMPType: 3, ICMPCode: 1}}),
		},
		{
			name: "ipv4/first-fragment-udp", // MF set, offset 0: the UDP header is there
			b: decBuild(&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, Flags: layers.IPv4MoreFragments, Id: 7,
				SrcIP: net.IP(decCli4.AsSlice()), DstIP: net.IP(decSrv4.AsSlice())}, decUDPDNS(), decDNSQuery),
			want: v4(decWith(udpWant, func(p *Parsed) { p.PayloadStart = 28; p.FirstFrag = true })),
		},
		{
			name: "ipv4/non-first-fragment", // offset 185*8: only data of the UDP datagram
			b: decBuild(&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, FragOffset: 185, Id: 7,
				SrcIP: net.IP(decCli4.AsSlice()), DstIP: net.IP(decSrv4.AsSlice())}, decDNSQuery),
			want: v4(Parsed{Kind: KindFragment, Packet: rules.Packet{Proto: protoUDP}}),
		},
		{
			name: "ipv4/gso-total-length-0", // GSO super-packet: total length 0, the buffer is the packet
			b:    decEdit(psh4, func(b []byte) []byte { b[2], b[3] = 0, 0; return b }),
			want: v4(decWith(pshWant, func(p *Parsed) { p.PayloadStart = 40 })),
		},
		{
			name: "ipv4/gso-total-length-past-buffer", // total length larger than the buffer: the buffer is the packet
			b:    decEdit(psh4, func(b []byte) []byte { b[2], b[3] = 0xfd, 0xe8; return b }),
			want: v4(decWith(pshWant, func(p *Parsed) { p.PayloadStart = 40 })),
		},
		{
			name: "ipv4/trailing-bytes-past-total-length", // 6 bytes after the packet are not payload
			b:    decEdit(psh4, func(b []byte) []byte { return append(b, 0, 0, 0, 0, 0, 0) }),
			want: v4(decWith(pshWant, func(p *Parsed) { p.PayloadStart = 40 })),
		},
		{
			name: "ipv4/options-router-alert-udp", // IHL 6: router alert option
			b: decBuild(&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP(decCli4.AsSlice()), DstIP: net.IP(decSrv4.AsSlice()),
				Options: []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}}, decUDPDNS(), decDNSQuery),
			want: v4(decWith(udpWant, func(p *Parsed) { p.IPHeaderLen = 24; p.PayloadStart = 32 })),
		},
		{
			name: "ipv4/gre", // a protocol without ports
			b:    decBuild(decIPv4(layers.IPProtocolGRE, decCli4, decSrv4), gopacket.Payload([]byte{0, 0, 0x08, 0})),
			want: v4(Parsed{Packet: rules.Packet{Proto: 47}}),
		},
		{
			name: "ipv4/malformed-option-length", // option length 1 (at least 2 is valid)
			b: decEdit(decBuild(&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP(decCli4.AsSlice()), DstIP: net.IP(decSrv4.AsSlice()),
				Options: []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}}, decUDPDNS(), decDNSQuery),
				func(b []byte) []byte { b[21] = 1; return b }),
			want: v4bad(Parsed{Kind: KindMalformed, Packet: rules.Packet{Proto: protoUDP}}),
		},
		{
			name: "ipv4/malformed-ihl-4", // header length below 20 bytes
			b:    decEdit(udp4, func(b []byte) []byte { b[0] = 0x44; return b }),
			want: v4bad(Parsed{Kind: KindMalformed, Packet: rules.Packet{Proto: protoUDP}}),
		},
		{
			name: "ipv4/malformed-ihl-past-total-length", // IHL 15 in a 28-byte packet
			b:    decEdit(udp4[:28], func(b []byte) []byte { b[0] = 0x4f; b[2], b[3] = 0, 28; return b }),
			want: v4bad(Parsed{Kind: KindMalformed, Packet: rules.Packet{Proto: protoUDP}}),
		},
		{
			name: "ipv4/truncated-ip-header", // 12 of 20 header bytes
			b:    syn4[:12],
			want: Parsed{Kind: KindMalformed, Packet: rules.Packet{Family: rules.FamilyIPv4}},
		},
		{
			name: "ipv4/truncated-tcp-header", // 10 bytes of TCP header
			b:    syn4[:30],
			want: v4(Parsed{Kind: KindMalformed, Packet: rules.Packet{Proto: protoTCP}}),
		},
		{
			name: "ipv4/tcp-no-header", // protocol TCP, nothing after the IP header
			b:    decEdit(syn4[:20], func(b []byte) []byte { b[2], b[3] = 0, 20; return b }),
			want: v4(Parsed{Kind: KindMalformed, Packet: rules.Packet{Proto: protoTCP}}),
		},
		{
			name: "ipv4/tcp-data-offset-past-end", // data offset 15 words, 20 bytes of TCP
			b:    decEdit(psh4[:40], func(b []byte) []byte { b[32] = 0xf0; b[2], b[3] = 0, 40; return b }),
			want: v4(Parsed{Kind: KindMalformed, Packet: rules.Packet{Proto: protoTCP}}),
		},
		{
			name: "ipv4/tcp-data-offset-4", // data offset below 5 words
			b:    decEdit(psh4, func(b []byte) []byte { b[32] = 0x40; return b }),
			want: v4(Parsed{Kind: KindMalformed, Packet: rules.Packet{Proto: protoTCP}}),
		},
		{
			name: "ipv4/udp-length-5", // UDP length too small for its own header
			b:    decEdit(udp4, func(b []byte) []byte { b[24], b[25] = 0, 5; return b }),
			want: v4(Parsed{Kind: KindMalformed, Packet: rules.Packet{Proto: protoUDP}}),
		},
		{
			name: "ipv4/icmp-4-bytes", // ICMP header cut after the checksum
			b:    decBuild(decIPv4(layers.IPProtocolICMPv4, decCli4, decSrv4), gopacket.Payload([]byte{8, 0, 0, 0})),
			want: v4(Parsed{Kind: KindMalformed, Packet: rules.Packet{Proto: protoICMPv4}}),
		},
		{
			name: "ipv6/tcp-syn",
			b:    syn6,
			want: v6(decWith(synWant, func(p *Parsed) { p.PayloadStart = 40 + 40 })),
		},
		{
			name: "ipv6/tcp-psh-ack-payload",
			b:    psh6,
			want: v6(decWith(pshWant, func(p *Parsed) { p.PayloadStart = 60 })),
		},
		{
			name: "ipv6/udp",
			b:    udp6,
			want: v6(decWith(udpWant, func(p *Parsed) { p.PayloadStart = 48 })),
		},
		{
			name: "ipv6/icmpv6-echo-request",
			b: decBuild(decIPv6(layers.IPProtocolICMPv6, decCli6, decSrv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)},
				&layers.ICMPv6Echo{Identifier: 0x4242, SeqNumber: 1}, decPing),
			want: v6(Parsed{Packet: rules.Packet{Proto: protoICMPv6, ICMPType: 128}, ICMPID: 0x4242}),
		},
		{
			name: "ipv6/icmpv6-echo-reply",
			b: decBuild(decIPv6(layers.IPProtocolICMPv6, decSrv6, decCli6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(129, 0)},
				&layers.ICMPv6Echo{Identifier: 0x4242, SeqNumber: 1}, decPing),
			want: v6back(Parsed{Packet: rules.Packet{Proto: protoICMPv6, ICMPType: 129}, ICMPID: 0x4242}),
		},
		{
			name: "ipv6/icmpv6-neighbor-solicitation", // link-local source, solicited-node destination, hop limit 255
			b: decBuild(&layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: net.IP(decLL6.AsSlice()), DstIP: net.IP(decSN6.AsSlice())},
				&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)}, &layers.ICMPv6NeighborSolicitation{TargetAddress: net.IP(decGw6.AsSlice())}),
			want: Parsed{Packet: rules.Packet{Family: rules.FamilyIPv6, Proto: protoICMPv6, ICMPType: 135, TTL: 255, Src: decAddr(decLL6), Dst: decAddr(decSN6)}, IPHeaderLen: 40},
		},
		{
			name: "ipv6/icmpv6-port-unreachable-quoting-udp", // the server's answer to the UDP fixture
			b: decBuild(decIPv6(layers.IPProtocolICMPv6, decSrv6, decCli6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 4)},
				gopacket.Payload(append([]byte{0, 0, 0, 0}, quotedUDP6...))),
			want: v6back(Parsed{Packet: rules.Packet{Proto: protoICMPv6, ICMPType: 1, ICMPCode: 4},
				HasInner: true, Inner: InnerTuple{Proto: protoUDP, Src: decAddr(decCli6), Dst: decAddr(decSrv6), SrcPort: 40002, DstPort: 53}}),
		},
		{
			name: "ipv6/icmpv6-time-exceeded-quoting-echo", // a router answers the echo request: the inner "port" is the echo id
			b: decBuild(decIPv6(layers.IPProtocolICMPv6, decGw6, decCli6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(3, 0)},
				gopacket.Payload(append([]byte{0, 0, 0, 0}, quotedPing6...))),
			want: decWith(v6(Parsed{Packet: rules.Packet{Proto: protoICMPv6, ICMPType: 3},
				HasInner: true, Inner: InnerTuple{Proto: protoICMPv6, Src: decAddr(decCli6), Dst: decAddr(decSrv6), SrcPort: 0x4242}}),
				func(p *Parsed) { p.Src, p.Dst = decAddr(decGw6), decAddr(decCli6) }),
		},
		{
			name: "ipv6/hop-by-hop-and-first-fragment-udp", // hop-by-hop (PadN), fragment offset 0 with M set, then UDP
			b: decBuild(decIPv6(layers.IPProtocolIPv6HopByHop, decCli6, decSrv6), gopacket.Payload([]byte{byte(layers.IPProtocolIPv6Fragment), 0, 1, 4, 0, 0, 0, 0}),
				&layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, MoreFragments: true, Identification: 7}, decUDPDNS(), decDNSQuery),
			want: v6(decWith(udpWant, func(p *Parsed) { p.IPHeaderLen = 56; p.PayloadStart = 64; p.FirstFrag = true })),
		},
		{
			name: "ipv6/non-first-fragment", // fragment offset 185*8: only data
			b: decBuild(decIPv6(layers.IPProtocolIPv6Fragment, decCli6, decSrv6),
				&layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, FragmentOffset: 185, Identification: 7}, decDNSQuery),
			want: v6(Parsed{Kind: KindFragment, Packet: rules.Packet{Proto: protoUDP}, IPHeaderLen: 48}),
		},
		{
			name: "ipv6/atomic-fragment-tcp", // fragment header with offset 0 and no M (RFC 6946): a whole packet
			b: decBuild(decIPv6(layers.IPProtocolIPv6Fragment, decCli6, decSrv6),
				&layers.IPv6Fragment{NextHeader: layers.IPProtocolTCP, Identification: 8}, decTCPSYN()),
			want: v6(decWith(synWant, func(p *Parsed) { p.IPHeaderLen = 48; p.PayloadStart = 88 })),
		},
		{
			name: "ipv6/dstopts-routing-ah-tcp", // destination options, routing type 2, AH (12 bytes of ICV), then TCP
			b: decBuild(decIPv6(layers.IPProtocolIPv6Destination, decCli6, decSrv6),
				gopacket.Payload([]byte{byte(layers.IPProtocolIPv6Routing), 0, 1, 4, 0, 0, 0, 0}),
				gopacket.Payload(append([]byte{byte(layers.IPProtocolAH), 2, 2, 1, 0, 0, 0, 0}, decSrv6.AsSlice()...)),
				gopacket.Payload([]byte{byte(layers.IPProtocolTCP), 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}),
				decTCPPSH(), decFTPLine),
			want: v6(decWith(pshWant, func(p *Parsed) { p.IPHeaderLen = 40 + 8 + 24 + 24; p.PayloadStart = 96 + 20 })),
		},
		{
			name: "ipv6/esp", // ESP ends the walk: what follows is encrypted
			b:    decBuild(decIPv6(layers.IPProtocolESP, decCli6, decSrv6), gopacket.Payload([]byte{0, 0, 0, 1, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef})),
			want: v6(Parsed{Packet: rules.Packet{Proto: protoESP}}),
		},
		{
			name: "ipv6/no-next-header",
			b:    decBuild(decIPv6(layers.IPProtocolNoNextHeader, decCli6, decSrv6)),
			want: v6(Parsed{Packet: rules.Packet{Proto: protoNoNext}}),
		},
		{
			name: "ipv6/gso-payload-length-0", // GSO super-packet: payload length 0, the buffer is the packet
			b:    decEdit(psh6, func(b []byte) []byte { b[4], b[5] = 0, 0; return b }),
			want: v6(decWith(pshWant, func(p *Parsed) { p.PayloadStart = 60 })),
		},
		{
			name: "ipv6/trailing-bytes-past-payload-length",
			b:    decEdit(psh6, func(b []byte) []byte { return append(b, 1, 2, 3, 4) }),
			want: v6(decWith(pshWant, func(p *Parsed) { p.PayloadStart = 60 })),
		},
		{
			name: "ipv6/truncated-ip-header", // 30 of 40 header bytes
			b:    syn6[:30],
			want: Parsed{Kind: KindMalformed, Packet: rules.Packet{Family: rules.FamilyIPv6}},
		},
		{
			name: "ipv6/truncated-extension-header", // hop-by-hop header says 16 bytes, 8 are there
			b:    decBuild(decIPv6(layers.IPProtocolIPv6HopByHop, decCli6, decSrv6), gopacket.Payload([]byte{byte(layers.IPProtocolUDP), 1, 1, 4, 0, 0, 0, 0})),
			want: v6bad(Parsed{Kind: KindMalformed, Packet: rules.Packet{Proto: protoHopByHop}}),
		},
		{
			name: "ipv6/hop-by-hop-not-first", // destination options followed by hop-by-hop (RFC 8200 4.1 forbids it)
			b: decBuild(decIPv6(layers.IPProtocolIPv6Destination, decCli6, decSrv6),
				gopacket.Payload([]byte{byte(layers.IPProtocolIPv6HopByHop), 0, 1, 4, 0, 0, 0, 0}),
				gopacket.Payload([]byte{byte(layers.IPProtocolUDP), 0, 1, 4, 0, 0, 0, 0}), decUDPDNS(), decDNSQuery),
			want: v6bad(Parsed{Kind: KindMalformed, Packet: rules.Packet{Proto: protoDestOpts}}),
		},
		{
			name: "ipv6/truncated-udp-header", // 4 bytes of UDP header
			b:    decEdit(udp6[:44], func(b []byte) []byte { b[4], b[5] = 0, 4; return b }),
			want: v6(Parsed{Kind: KindMalformed, Packet: rules.Packet{Proto: protoUDP}}),
		},
		{
			name: "version-5", // neither IPv4 nor IPv6
			b:    decEdit(udp4, func(b []byte) []byte { b[0] = 0x55; return b }),
			want: Parsed{Kind: KindUnsupported},
		},
		{
			name: "empty",
			b:    []byte{},
			want: Parsed{Kind: KindMalformed},
		},
	}
}

// with returns p changed by fn.
func decWith(p Parsed, fn func(p *Parsed)) Parsed {
	fn(&p)
	return p
}

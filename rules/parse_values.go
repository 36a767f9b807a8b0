package rules

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Protocol numbers the schema knows by name.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

var protoNames = map[string]uint8{
	"any": 0, "all": 0,
	"icmp": protoICMP, "igmp": 2, "tcp": protoTCP, "udp": protoUDP, "gre": 47,
	"esp": 50, "ah": 51, "icmpv6": protoICMPv6, "ipv6-icmp": protoICMPv6,
	"sctp": protoSCTP, "udplite": 136,
}

// protoName returns the schema's name of an IANA protocol number ("tcp",
// "icmpv6", ...), or the number in decimal.
func protoName(proto uint8) string {
	switch proto {
	case 0:
		return "any"
	case protoICMPv6:
		return "icmpv6"
	}
	for name, n := range protoNames {
		if n == proto && name != "all" && name != "ipv6-icmp" {
			return name
		}
	}
	return strconv.Itoa(int(proto))
}

func hasPorts(proto uint8) bool {
	return proto == protoTCP || proto == protoUDP || proto == protoSCTP
}

// proto parses a protocol name or number (0-255).
func (p *parser) proto(n *yaml.Node, path string) (uint8, error) {
	s, sn, err := p.str(n, path)
	if err != nil {
		return 0, err
	}
	if v, ok := protoNames[strings.ToLower(s)]; ok {
		return v, nil
	}
	if v, err := strconv.ParseUint(s, 10, 8); err == nil {
		return uint8(v), nil
	}
	return 0, p.errf(sn, path, ErrBadValue, "unknown protocol %q (want tcp, udp, icmp, icmpv6, sctp, any or a number 0-255)", s)
}

// port parses a port (1-65535) or a range "a-b" (iptables' "a:b" also works).
func (p *parser) port(n *yaml.Node, path string) (PortRange, error) {
	s, sn, err := p.str(n, path)
	if err != nil {
		return PortRange{}, err
	}
	first, last, isRange := s, s, false
	if i := strings.IndexAny(s, "-:"); i > 0 {
		first, last, isRange = s[:i], s[i+1:], true
	}
	a, err := p.portNumber(sn, path, first, s)
	if err != nil {
		return PortRange{}, err
	}
	b, err := p.portNumber(sn, path, last, s)
	if err != nil {
		return PortRange{}, err
	}
	if isRange && a > b {
		return PortRange{}, p.errf(sn, path, ErrBadValue, "port range %s is reversed", s)
	}
	return PortRange{First: a, Last: b}, nil
}

func (p *parser) portNumber(sn *yaml.Node, path, s, whole string) (uint16, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, p.errf(sn, path, ErrBadValue, "%q is not a port or port range", whole)
	}
	if v < 1 || v > 65535 {
		return 0, p.errf(sn, path, ErrBadValue, "port %d out of range (1-65535)", v)
	}
	return uint16(v), nil
}

// ports parses a port, a range or a list of both.
func (p *parser) ports(n *yaml.Node, path string) ([]PortRange, error) {
	return listOf(p, n, path, p.port)
}

// prefix parses a CIDR or a single address (/32 or /128).
func (p *parser) prefix(n *yaml.Node, path string) (netip.Prefix, error) {
	s, sn, err := p.str(n, path)
	if err != nil {
		return netip.Prefix{}, err
	}
	var pfx netip.Prefix
	if strings.Contains(s, "/") {
		pfx, err = netip.ParsePrefix(s)
		if err != nil {
			return pfx, p.errf(sn, path, ErrBadValue, "%q is not an address or CIDR prefix", s)
		}
		if m := pfx.Masked(); m != pfx {
			return pfx, p.errf(sn, path, ErrBadValue, "%s has host bits set (the network is %s)", s, m)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return pfx, p.errf(sn, path, ErrBadValue, "%q is not an address or CIDR prefix", s)
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	if pfx.Addr().Is4In6() {
		return pfx, p.errf(sn, path, ErrBadValue, "%s is an IPv4-mapped IPv6 address: write the IPv4 form", s)
	}
	return pfx, nil
}

func (p *parser) prefixes(n *yaml.Node, path string) ([]netip.Prefix, error) {
	return listOf(p, n, path, p.prefix)
}

func (p *parser) addr(n *yaml.Node, path string) (netip.Addr, error) {
	s, sn, err := p.str(n, path)
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return a, p.errf(sn, path, ErrBadValue, "%q is not an IP address", s)
	}
	return a, nil
}

// hostAddr parses the address of one host a packet can be sent to: a
// port forward's or an SNAT's target. Multicast, broadcast, unspecified and
// loopback addresses name no such host.
func (p *parser) hostAddr(n *yaml.Node, path string) (netip.Addr, error) {
	a, err := p.addr(n, path)
	if err != nil {
		return a, err
	}
	kind := ""
	switch {
	case a.IsUnspecified():
		kind = "the unspecified address"
	case a.IsLoopback():
		kind = "a loopback address"
	case a.IsMulticast():
		kind = "a multicast address"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		kind = "the broadcast address"
	default:
		return a, nil
	}
	return a, p.errf(n, path, ErrBadValue, "%s is %s: want the unicast address of one host", a, kind)
}

func (p *parser) listenAddr(n *yaml.Node, path string) (string, error) {
	s, sn, err := p.str(n, path)
	if err != nil || s == "" {
		return s, err
	}
	host, port, err := net.SplitHostPort(s)
	if err == nil && host != "" {
		if _, aerr := netip.ParseAddr(host); aerr != nil && host != "localhost" {
			err = aerr
		}
	}
	if err == nil {
		if v, perr := strconv.ParseUint(port, 10, 16); perr != nil || v == 0 {
			err = perr
			if err == nil {
				err = strconv.ErrRange
			}
		}
	}
	if err != nil {
		return "", p.errf(sn, path, ErrBadValue, "%q is not an address:port to listen on", s)
	}
	return s, nil
}

// familyOf returns the family of a prefix.
func familyOf(p netip.Prefix) Family {
	if p.Addr().Is4() {
		return FamilyIPv4
	}
	return FamilyIPv6
}

func familyName(f Family) string {
	switch f {
	case FamilyIPv4:
		return "ipv4"
	case FamilyIPv6:
		return "ipv6"
	}
	return "any"
}

// icmpName is an iptables/ip6tables ICMP type name; code -1 = any code.
type icmpName struct {
	name string
	typ  uint8
	code int16
}

// icmpNames4 are iptables' `-p icmp --help` names.
var icmpNames4 = []icmpName{
	{"echo-reply", 0, -1}, {"pong", 0, -1},
	{"destination-unreachable", 3, -1},
	{"network-unreachable", 3, 0}, {"host-unreachable", 3, 1}, {"protocol-unreachable", 3, 2},
	{"port-unreachable", 3, 3}, {"fragmentation-needed", 3, 4}, {"source-route-failed", 3, 5},
	{"network-unknown", 3, 6}, {"host-unknown", 3, 7}, {"network-prohibited", 3, 9},
	{"host-prohibited", 3, 10}, {"TOS-network-unreachable", 3, 11}, {"TOS-host-unreachable", 3, 12},
	{"communication-prohibited", 3, 13}, {"host-precedence-violation", 3, 14}, {"precedence-cutoff", 3, 15},
	{"source-quench", 4, -1},
	{"redirect", 5, -1}, {"network-redirect", 5, 0}, {"host-redirect", 5, 1},
	{"TOS-network-redirect", 5, 2}, {"TOS-host-redirect", 5, 3},
	{"echo-request", 8, -1}, {"ping", 8, -1},
	{"router-advertisement", 9, -1}, {"router-solicitation", 10, -1},
	{"time-exceeded", 11, -1}, {"ttl-exceeded", 11, -1},
	{"ttl-zero-during-transit", 11, 0}, {"ttl-zero-during-reassembly", 11, 1},
	{"parameter-problem", 12, -1}, {"ip-header-bad", 12, 0}, {"required-option-missing", 12, 1},
	{"timestamp-request", 13, -1}, {"timestamp-reply", 14, -1},
	{"address-mask-request", 17, -1}, {"address-mask-reply", 18, -1},
}

// icmpNames6 are ip6tables' `-p icmpv6 --help` names.
var icmpNames6 = []icmpName{
	{"destination-unreachable", 1, -1}, {"no-route", 1, 0}, {"communication-prohibited", 1, 1},
	{"beyond-scope", 1, 2}, {"address-unreachable", 1, 3}, {"port-unreachable", 1, 4},
	{"failed-policy", 1, 5}, {"reject-route", 1, 6},
	{"packet-too-big", 2, -1},
	{"time-exceeded", 3, -1}, {"ttl-exceeded", 3, -1},
	{"ttl-zero-during-transit", 3, 0}, {"ttl-zero-during-reassembly", 3, 1},
	{"parameter-problem", 4, -1}, {"bad-header", 4, 0}, {"unknown-header-type", 4, 1}, {"unknown-option", 4, 2},
	{"echo-request", 128, -1}, {"ping", 128, -1}, {"echo-reply", 129, -1}, {"pong", 129, -1},
	{"mld-listener-query", 130, -1}, {"mld-listener-report", 131, -1},
	{"mld-listener-done", 132, -1}, {"mld-listener-reduction", 132, -1},
	{"router-solicitation", 133, -1}, {"router-advertisement", 134, -1},
	{"neighbour-solicitation", 135, -1}, {"neighbor-solicitation", 135, -1},
	{"neighbour-advertisement", 136, -1}, {"neighbor-advertisement", 136, -1},
	{"redirect", 137, -1},
}

// icmpTypes parses icmp_type for proto (1 or 58): names, numbers or
// "type/code". "any" anywhere in the list means every type (nil).
func (p *parser) icmpTypes(n *yaml.Node, path string, proto uint8) ([]ICMPMatch, error) {
	names, what := icmpNames4, "ICMP"
	if proto == protoICMPv6 {
		names, what = icmpNames6, "ICMPv6"
	}
	var out []ICMPMatch
	anyType := false
	err := p.strList(n, path, func(s string, sn *yaml.Node, path string) error {
		if s == "any" {
			anyType = true
			return nil
		}
		for _, in := range names {
			if strings.EqualFold(in.name, s) {
				out = append(out, ICMPMatch{Type: in.typ, Code: in.code})
				return nil
			}
		}
		t, c, hasCode := strings.Cut(s, "/")
		tv, terr := strconv.ParseUint(t, 10, 8)
		cv, cerr := uint64(0), error(nil)
		if hasCode {
			cv, cerr = strconv.ParseUint(c, 10, 8)
		}
		if terr != nil || cerr != nil {
			return p.errf(sn, path, ErrBadValue, "unknown %s type %q (want a name like echo-request, a number 0-255 or type/code)", what, s)
		}
		m := ICMPMatch{Type: uint8(tv), Code: -1}
		if hasCode {
			m.Code = int16(cv)
		}
		out = append(out, m)
		return nil
	})
	if anyType {
		return nil, err
	}
	return out, err
}

package ftp

import (
	"net/netip"
)

// Kind is what a control line announces.
type Kind uint8

// Kinds of announcement.
const (
	KindNone Kind = iota // the line announces no data connection
	KindPASV             // 227 reply: the server listens at Addr:Port
	KindEPSV             // 229 reply: the server listens at Port of its control address
	KindPORT             // PORT command: the client listens at Addr:Port
	KindEPRT             // EPRT command: the client listens at Addr:Port (IPv4 or IPv6)
	numKinds
)

var kindNames = [numKinds + 1]string{
	KindNone: "none",
	KindPASV: "PASV",
	KindEPSV: "EPSV",
	KindPORT: "PORT",
	KindEPRT: "EPRT",
	numKinds: "unknown", // any value out of range
}

func (k Kind) String() string { return kindNames[min(k, numKinds)] }

// FromServer reports whether announcements of kind k are server replies
// (passive mode) rather than client commands (active mode).
func (k Kind) FromServer() bool { return k == KindPASV || k == KindEPSV }

// Announcement is a data connection announced on the control channel.
type Announcement struct {
	Kind Kind
	Addr netip.Addr // the listening address; zero for KindEPSV (the control connection's server address)
	Port uint16     // the listening port
}

// Parse reads one control line (without its line terminator; a trailing
// CR is ignored). fromServer tells the line's direction: server lines are
// replies and only 227 and 229 are read; client lines are commands and only
// PORT and EPRT (in any letter case) are read. Parse knows nothing about
// multi-line replies: give it single lines and final lines only.
//
// Any other line yields KindNone and a nil error. An announcement whose
// arguments do not parse yields ErrMalformed. Parse does not allocate,
// except for the IPv6 address of an EPRT command.
func Parse(line []byte, fromServer bool) (Announcement, error) {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if fromServer {
		if len(line) < 4 || line[3] != ' ' || line[0] != '2' || line[1] != '2' {
			return Announcement{}, nil
		}
		switch line[2] {
		case '7':
			return parse227(line[4:])
		case '9':
			return parse229(line[4:])
		}
		return Announcement{}, nil
	}
	if len(line) < 4 {
		return Announcement{}, nil
	}
	var k Kind
	switch {
	case hasFold(line, "PORT"):
		k = KindPORT
	case hasFold(line, "EPRT"):
		k = KindEPRT
	default:
		return Announcement{}, nil
	}
	rest := line[4:]
	if len(rest) > 0 && rest[0] != ' ' {
		return Announcement{}, nil // a longer command word (e.g. PORTX)
	}
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	if k == KindPORT {
		return parseHostPort(KindPORT, rest, true)
	}
	return parseEPRT(rest)
}

// hasFold reports whether line starts with the upper-case ASCII word w in
// any letter case.
func hasFold(line []byte, w string) bool {
	for i := 0; i < len(w); i++ {
		if line[i]&^0x20 != w[i] {
			return false
		}
	}
	return true
}

// parse227 reads the text of a 227 reply: the six numbers follow an
// opening parenthesis or, without one, start at the first digit (RFC 1123
// 4.1.2.6 tells clients to scan for it).
func parse227(text []byte) (Announcement, error) {
	start := -1
	for i, c := range text {
		if c == '(' {
			start = i + 1
			break
		}
	}
	if start < 0 {
		for i, c := range text {
			if isDigit(c) {
				start = i
				break
			}
		}
	}
	if start < 0 {
		return Announcement{}, ErrMalformed
	}
	return parseHostPort(KindPASV, text[start:], false)
}

// parseHostPort reads h1,h2,h3,h4,p1,p2. With whole set nothing but spaces
// may follow (a command's argument); otherwise any text may follow (a reply).
func parseHostPort(k Kind, b []byte, whole bool) (Announcement, error) {
	var v [6]byte
	for i := range v {
		if i > 0 {
			if len(b) == 0 || b[0] != ',' {
				return Announcement{}, ErrMalformed
			}
			b = b[1:]
		}
		n, rest, ok := number(b, 255)
		if !ok {
			return Announcement{}, ErrMalformed
		}
		v[i], b = byte(n), rest
	}
	if whole && !blank(b) {
		return Announcement{}, ErrMalformed
	}
	return Announcement{
		Kind: k,
		Addr: netip.AddrFrom4([4]byte{v[0], v[1], v[2], v[3]}),
		Port: uint16(v[4])<<8 | uint16(v[5]),
	}, nil
}

// parse229 reads the text of a 229 reply: "(" d d d port d ")" with any
// delimiter d in the printable range (RFC 2428 section 3).
func parse229(text []byte) (Announcement, error) {
	i := 0
	for i < len(text) && text[i] != '(' {
		i++
	}
	b := text[min(i+1, len(text)):]
	if i == len(text) || len(b) < 3 {
		return Announcement{}, ErrMalformed
	}
	d := b[0]
	if !delimiter(d) || b[1] != d || b[2] != d {
		return Announcement{}, ErrMalformed
	}
	n, rest, ok := number(b[3:], 65535)
	if !ok || len(rest) < 2 || rest[0] != d || rest[1] != ')' {
		return Announcement{}, ErrMalformed
	}
	return Announcement{Kind: KindEPSV, Port: uint16(n)}, nil
}

// parseEPRT reads EPRT's argument: d af d addr d port d (RFC 2428 section 2).
func parseEPRT(b []byte) (Announcement, error) {
	if len(b) < 1 || !delimiter(b[0]) {
		return Announcement{}, ErrMalformed
	}
	d := b[0]
	var f [4][]byte
	b = b[1:]
	for i := range f {
		j := 0
		for j < len(b) && b[j] != d {
			j++
		}
		if j == len(b) {
			return Announcement{}, ErrMalformed
		}
		f[i], b = b[:j], b[j+1:]
		if i == 2 {
			break
		}
	}
	if !blank(b) {
		return Announcement{}, ErrMalformed
	}
	port, rest, ok := number(f[2], 65535)
	if !ok || len(rest) != 0 || len(f[0]) != 1 {
		return Announcement{}, ErrMalformed
	}
	var addr netip.Addr
	switch f[0][0] {
	case '1':
		a, ok := parseIPv4(f[1])
		if !ok {
			return Announcement{}, ErrMalformed
		}
		addr = a
	case '2':
		if len(f[1]) == 0 || len(f[1]) > 45 {
			return Announcement{}, ErrMalformed
		}
		a, err := netip.ParseAddr(string(f[1]))
		if err != nil || !a.Is6() || a.Zone() != "" {
			return Announcement{}, ErrMalformed
		}
		addr = a
	default:
		return Announcement{}, ErrMalformed
	}
	return Announcement{Kind: KindEPRT, Addr: addr, Port: uint16(port)}, nil
}

// parseIPv4 reads a dotted quad, nothing else.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var v [4]byte
	for i := range v {
		if i > 0 {
			if len(b) == 0 || b[0] != '.' {
				return netip.Addr{}, false
			}
			b = b[1:]
		}
		n, rest, ok := number(b, 255)
		if !ok {
			return netip.Addr{}, false
		}
		v[i], b = byte(n), rest
	}
	if len(b) != 0 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(v), true
}

// number reads a decimal number of at most 5 digits that is at most max,
// and returns what follows it.
func number(b []byte, max int) (int, []byte, bool) {
	n, i := 0, 0
	for i < len(b) && i < 6 && isDigit(b[i]) {
		n = n*10 + int(b[i]-'0')
		i++
	}
	if i == 0 || i > 5 || n > max {
		return 0, b, false
	}
	return n, b[i:], true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// delimiter reports whether c may delimit EPSV/EPRT fields: printable
// ASCII 33-126 and not a digit (a digit would make the fields ambiguous).
func delimiter(c byte) bool { return c >= 33 && c <= 126 && !isDigit(c) }

// blank reports whether b holds nothing but spaces.
func blank(b []byte) bool {
	for _, c := range b {
		if c != ' ' {
			return false
		}
	}
	return true
}

package sandbox

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// Gateway is the role of the namespace every LAN is attached to.
const Gateway = "gw"

// LAN is one host namespace attached to the gateway by a veth pair.
type LAN struct {
	// Role names the host namespace ("cli", "srv", "lan2", "wan", ...).
	Role string
	// V4 and V6 are the LAN's subnets. The gateway takes the first host
	// address (.1 / ::1), the host the second (.2 / ::2). V6 may be the
	// zero Prefix for an IPv4-only LAN.
	V4, V6 netip.Prefix
}

// Options shape a Sandbox.
type Options struct {
	// LANs are the host namespaces attached to the gateway. Empty means
	// the reference sandbox: DefaultLANs.
	LANs []LAN
}

// DefaultLANs is the reference sandbox of the design: a client LAN and a
// server LAN.
var DefaultLANs = []LAN{
	{Role: "cli", V4: netip.MustParsePrefix("10.99.1.0/24"), V6: netip.MustParsePrefix("fd99:1::/64")},
	{Role: "srv", V4: netip.MustParsePrefix("10.99.2.0/24"), V6: netip.MustParsePrefix("fd99:2::/64")},
}

// Sandbox is a gateway namespace with N host namespaces attached, each over
// its own veth pair and subnets, routed through the gateway (IPv4 and IPv6
// forwarding on). It is immutable after New, apart from the processes
// started in it.
type Sandbox struct {
	base  string
	ns    map[string]*Netns
	lans  map[string]lanInfo
	order []string
}

type lanInfo struct {
	LAN
	hostLink, gwLink string
}

// New builds the sandbox and registers its teardown with t.Cleanup. It fails
// the test on any error; call Require first to skip where it cannot run.
func New(t testing.TB, opts Options) *Sandbox {
	t.Helper()
	lans := opts.LANs
	if len(lans) == 0 {
		lans = DefaultLANs
	}
	if err := checkLANs(lans); err != nil {
		t.Fatal(err)
	}
	s := &Sandbox{base: uniqueBase(), ns: map[string]*Netns{}, lans: map[string]lanInfo{}}
	gw := newNetns(t, s.base+"-"+Gateway)
	s.ns[Gateway] = gw
	gw.MustExec("sysctl", "-qw", "net.ipv4.ip_forward=1")
	gw.MustExec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")

	// Link names only need to be unique inside a namespace (the pairs are
	// created in place), but a per-sandbox tag keeps them unique anyway,
	// so a leaked link is traceable: v<tag>-<i>h / v<tag>-<i>g, at most
	// 15 characters.
	tag := fmt.Sprintf("%05x", (os.Getpid()<<8|int(seq.Load()))&0xfffff)
	for i, lan := range lans {
		host := newNetns(t, s.base+"-"+lan.Role)
		s.ns[lan.Role] = host
		li := lanInfo{LAN: lan,
			hostLink: fmt.Sprintf("v%s-%dh", tag, i),
			gwLink:   fmt.Sprintf("v%s-%dg", tag, i),
		}
		s.lans[lan.Role] = li
		s.order = append(s.order, lan.Role)
		must(t, "ip", "link", "add", li.hostLink, "netns", host.Name, "type", "veth",
			"peer", "name", li.gwLink, "netns", gw.Name)
		s.address(t, host, li.hostLink, lan.V4, 2)
		s.address(t, gw, li.gwLink, lan.V4, 1)
		if lan.V6.IsValid() {
			s.address(t, host, li.hostLink, lan.V6, 2)
			s.address(t, gw, li.gwLink, lan.V6, 1)
		}
		must(t, "ip", "-n", host.Name, "link", "set", li.hostLink, "up")
		must(t, "ip", "-n", gw.Name, "link", "set", li.gwLink, "up")
		must(t, "ip", "-n", host.Name, "route", "add", "default", "via", nth(lan.V4, 1).String())
		if lan.V6.IsValid() {
			must(t, "ip", "-n", host.Name, "-6", "route", "add", "default", "via", nth(lan.V6, 1).String())
		}
	}
	// The kernel activates a link whose carrier came up from its linkwatch
	// work, up to a second later; until then it drops what is sent on it.
	// Wait for every link, so a test's first packet is not lost.
	for _, role := range s.order {
		li := s.lans[role]
		waitUp(t, s.ns[role], li.hostLink)
		waitUp(t, gw, li.gwLink)
	}
	return s
}

// LinkUpTimeout bounds the wait for a new veth to become operational.
const LinkUpTimeout = 5 * time.Second

func waitUp(t testing.TB, n *Netns, link string) {
	t.Helper()
	deadline := time.Now().Add(LinkUpTimeout)
	for {
		out, err := run("ip", "-n", n.Name, "-o", "link", "show", "dev", link)
		if err == nil && strings.Contains(out, "state UP") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox: %s: link %s not up after %v: %v: %s", n.Name, link, LinkUpTimeout, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Sandbox) address(t testing.TB, n *Netns, link string, p netip.Prefix, host int) {
	t.Helper()
	a := netip.PrefixFrom(nth(p, host), p.Bits()).String()
	if p.Addr().Is4() {
		must(t, "ip", "-n", n.Name, "addr", "add", a, "dev", link)
		return
	}
	// nodad: the address is usable at once, tests do not wait for DAD.
	must(t, "ip", "-n", n.Name, "-6", "addr", "add", a, "dev", link, "nodad")
}

func checkLANs(lans []LAN) error {
	seen := map[string]bool{Gateway: true}
	for i, l := range lans {
		switch {
		case l.Role == "" || len(l.Role) > 8:
			return fmt.Errorf("LAN %d: role %q must be 1..8 characters: %w", i, l.Role, ErrBadLAN)
		case seen[l.Role]:
			return fmt.Errorf("LAN %d: role %q used twice: %w", i, l.Role, ErrBadLAN)
		case !l.V4.IsValid() || !l.V4.Addr().Is4() || l.V4.Bits() > 30:
			return fmt.Errorf("LAN %s: V4 %v must be an IPv4 prefix of /30 or wider: %w", l.Role, l.V4, ErrBadLAN)
		case l.V6.IsValid() && (!l.V6.Addr().Is6() || l.V6.Bits() > 126):
			return fmt.Errorf("LAN %s: V6 %v must be an IPv6 prefix of /126 or wider: %w", l.Role, l.V6, ErrBadLAN)
		}
		seen[l.Role] = true
	}
	return nil
}

// nth returns the n-th address of p (n=1: .1), or the zero Addr for the
// zero Prefix (the IPv6 prefix of an IPv4-only LAN).
func nth(p netip.Prefix, n int) netip.Addr {
	if !p.IsValid() {
		return netip.Addr{}
	}
	a := p.Masked().Addr()
	for range n {
		a = a.Next()
	}
	return a
}

func must(t testing.TB, cmd ...string) {
	t.Helper()
	if out, err := run(cmd...); err != nil {
		t.Fatalf("sandbox: %v: %v: %s", cmd, err, out)
	}
}

// NS returns the namespace of role (Gateway or a LAN role). It panics on an
// unknown role: that is a bug in the test.
func (s *Sandbox) NS(role string) *Netns {
	n, ok := s.ns[role]
	if !ok {
		panic(fmt.Errorf("%w: %q", ErrUnknownRole, role))
	}
	return n
}

// Name returns the namespace name of role, for `ip netns exec`.
func (s *Sandbox) Name(role string) string { return s.NS(role).Name }

// Roles returns the LAN roles in the order given to New (the gateway not
// included).
func (s *Sandbox) Roles() []string {
	return append([]string(nil), s.order...)
}

func (s *Sandbox) lan(role string) lanInfo {
	li, ok := s.lans[role]
	if !ok {
		panic(fmt.Errorf("%w: %q is not a LAN", ErrUnknownRole, role))
	}
	return li
}

// Addr4 returns the IPv4 address of the host namespace of LAN role (.2).
func (s *Sandbox) Addr4(role string) netip.Addr { return nth(s.lan(role).V4, 2) }

// Addr6 returns the IPv6 address of the host namespace of LAN role (::2),
// or the zero Addr for an IPv4-only LAN.
func (s *Sandbox) Addr6(role string) netip.Addr { return nth(s.lan(role).V6, 2) }

// GatewayAddr4 returns the gateway's IPv4 address on LAN role (.1).
func (s *Sandbox) GatewayAddr4(role string) netip.Addr { return nth(s.lan(role).V4, 1) }

// GatewayAddr6 returns the gateway's IPv6 address on LAN role (::1), or
// the zero Addr for an IPv4-only LAN.
func (s *Sandbox) GatewayAddr6(role string) netip.Addr { return nth(s.lan(role).V6, 1) }

// Link returns the name of the host namespace's veth towards the gateway.
func (s *Sandbox) Link(role string) string { return s.lan(role).hostLink }

// GatewayLink returns the name of the gateway's veth towards LAN role, the
// interface name a gateway firewall config refers to.
func (s *Sandbox) GatewayLink(role string) string { return s.lan(role).gwLink }

// Exec runs cmd inside the namespace of role and returns its combined
// output; it is bounded by ExecTimeout.
func (s *Sandbox) Exec(role string, cmd ...string) (string, error) {
	return s.NS(role).Exec(cmd...)
}

// MustExec is Exec that fails the test on error.
func (s *Sandbox) MustExec(role string, cmd ...string) string {
	return s.NS(role).MustExec(cmd...)
}

// Start starts cmd in the background in the namespace of role; it is
// stopped by PID at cleanup.
func (s *Sandbox) Start(role string, cmd ...string) *Proc {
	return s.NS(role).Start(cmd...)
}

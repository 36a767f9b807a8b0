package sandbox

import (
	"fmt"
	"net/netip"
	"testing"
)

// Roles of a Pair's namespaces.
const (
	PairClient   = "cli" // the client LAN's only host
	PairServer   = "srv" // the uplink side: the server the client reaches
	PairPrimary  = "gwa" // gateway A, the configured VRRP master
	PairBackup   = "gwb" // gateway B, the configured VRRP backup
	PairArbiter  = "arb" // a third host on the sync network (a NATS cluster's third node)
	PairLANLink  = "lan0"
	PairWANLink  = "wan0"
	PairSyncLink = "sync0"
)

// The addressing of a Pair: each gateway has its own address on the LAN
// and the uplink, the virtual addresses (the client's default route, the
// SNAT source the server sees) belong to whichever gateway is master, and
// the sync link joins the gateways alone.
var (
	PairLAN  = netip.MustParsePrefix("10.98.1.0/24")
	PairWAN  = netip.MustParsePrefix("10.98.2.0/24")
	PairSync = netip.MustParsePrefix("10.98.3.0/29")

	PairLANVIP = netip.MustParseAddr("10.98.1.1")
	PairWANVIP = netip.MustParseAddr("10.98.2.1")
)

// Pair is the gateway pair of a high-availability setup: a client LAN and
// an uplink, each a bridge inside its host's namespace (the client's, the
// server's) with a leg of each gateway enslaved, and a dedicated sync
// network for state sync, a bridge in the arbiter's namespace (a third
// host, for a quorum of three) with a leg of each gateway. In each gateway the legs are
// named PairLANLink, PairWANLink and PairSyncLink, so one config serves
// both. Nothing holds the virtual addresses until a VRRP daemon adds them:
// the client's default route points at PairLANVIP, the server's replies go
// to PairWANVIP's subnet, which it is on.
type Pair struct {
	ns map[string]*Netns
}

// NewPair builds the pair and registers its teardown with t.Cleanup.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	base := uniqueBase()
	p := &Pair{ns: map[string]*Netns{}}
	for _, role := range []string{PairClient, PairServer, PairPrimary, PairBackup, PairArbiter} {
		p.ns[role] = newNetns(t, base+"-"+role)
	}
	cli, srv, a, b, arb := p.ns[PairClient], p.ns[PairServer], p.ns[PairPrimary], p.ns[PairBackup], p.ns[PairArbiter]
	for _, gw := range []*Netns{a, b} {
		gw.MustExec("sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	// Each host's side of a network is a bridge with its own address
	// (.10 on the LAN and uplink, .3 on the sync network); the gateways'
	// legs are ports of it.
	for _, h := range []struct {
		ns   *Netns
		net  netip.Prefix
		host int
		link string
	}{{cli, PairLAN, 10, PairLANLink}, {srv, PairWAN, 10, PairWANLink}, {arb, PairSync, 3, PairSyncLink}} {
		must(t, "ip", "-n", h.ns.Name, "link", "add", "br0", "type", "bridge")
		// No STP, no forwarding delay: a port forwards from the moment
		// it is up.
		must(t, "ip", "-n", h.ns.Name, "link", "set", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0")
		must(t, "ip", "-n", h.ns.Name, "addr", "add", netip.PrefixFrom(nth(h.net, h.host), h.net.Bits()).String(), "dev", "br0")
		for i, gw := range []*Netns{a, b} {
			port := []string{"a-", "b-"}[i] + h.link
			must(t, "ip", "link", "add", port, "netns", h.ns.Name, "type", "veth", "peer", "name", h.link, "netns", gw.Name)
			must(t, "ip", "-n", h.ns.Name, "link", "set", port, "master", "br0", "up")
			own := nth(h.net, 2+i)
			if h.link == PairSyncLink {
				own = nth(h.net, 1+i)
			}
			must(t, "ip", "-n", gw.Name, "addr", "add", netip.PrefixFrom(own, h.net.Bits()).String(), "dev", h.link)
			must(t, "ip", "-n", gw.Name, "link", "set", h.link, "up")
		}
		must(t, "ip", "-n", h.ns.Name, "link", "set", "br0", "up")
	}
	must(t, "ip", "-n", cli.Name, "route", "add", "default", "via", PairLANVIP.String())
	for _, gw := range []*Netns{a, b} {
		for _, l := range []string{PairLANLink, PairWANLink, PairSyncLink} {
			waitUp(t, gw, l)
		}
	}
	for _, h := range []*Netns{cli, srv, arb} {
		waitUp(t, h, "br0")
	}
	return p
}

// NS returns the namespace of role (PairClient, PairServer, PairPrimary,
// PairBackup or PairArbiter); it panics on another role, a bug in the test.
func (p *Pair) NS(role string) *Netns {
	n, ok := p.ns[role]
	if !ok {
		panic(fmt.Errorf("%w: %q", ErrUnknownRole, role))
	}
	return n
}

// ClientAddr and ServerAddr are the hosts' addresses (.10 of their nets).
func (p *Pair) ClientAddr() netip.Addr { return nth(PairLAN, 10) }

// ServerAddr is the server's address on the uplink.
func (p *Pair) ServerAddr() netip.Addr { return nth(PairWAN, 10) }

// SyncAddr returns a host's address on the sync network (A .1, B .2,
// the arbiter .3).
func (p *Pair) SyncAddr(role string) netip.Addr {
	switch role {
	case PairBackup:
		return nth(PairSync, 2)
	case PairArbiter:
		return nth(PairSync, 3)
	}
	return nth(PairSync, 1)
}

// OwnAddr returns a gateway's own address on the LAN or uplink net (A .2,
// B .3).
func (p *Pair) OwnAddr(role string, net netip.Prefix) netip.Addr {
	if role == PairBackup {
		return nth(net, 3)
	}
	return nth(net, 2)
}

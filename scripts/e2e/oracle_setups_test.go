package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// The setups of the oracle. In a host setup the firewall protects "srv"
// (the guides' single machine, whose uplink ppp0 is its only link) and
// "cli" and the other LANs are the world reaching it through the router
// "gw"; in a gateway setup the firewall is the router itself.

// Roles of the oracle's extra sources: each scanner of the port-scan setup
// needs its own address, as the recent lists are per source.
const (
	scan2Role = "lan2"
	scan3Role = "lan3"
	scan4Role = "lan4"
)

// hostNames maps the guides' uplink and the examples' host link to the
// protected host's link, and the uplink's IPv6 subnet to the host's LAN.
func hostNames(sb *sandbox.Sandbox) *strings.Replacer {
	return strings.NewReplacer("UPLINKNET6", subnet6(sb, hostRole), "UPLINK", sb.Link(hostRole), "veth-sg", sb.Link(hostRole))
}

// subnet6 is the IPv6 subnet of LAN role.
func subnet6(sb *sandbox.Sandbox, role string) string {
	return lanPrefix(sb.Addr6(role)).String()
}

// serve opens servers in one role of s: echo servers on the TCP and UDP
// ports given.
func serve(role string, tcp []uint16, udp []uint16) func(t *testing.T, s *oracleSide) {
	return func(t *testing.T, s *oracleSide) {
		serveTCP(t, s.sb.NS(role), tcp...)
		serveUDP(t, s.sb.NS(role), udp...)
	}
}

// prepareAll runs each preparation in turn.
func prepareAll(steps ...func(t *testing.T, s *oracleSide)) func(t *testing.T, s *oracleSide) {
	return func(t *testing.T, s *oracleSide) {
		for _, step := range steps {
			step(t, s)
		}
	}
}

// cat joins probe lists.
func cat(lists ...[]oracleProbe) []oracleProbe {
	var out []oracleProbe
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// initiatorProbes are the probes of a host that must reach out and let
// nothing in: srv listens on tcp 22 and udp 53, cli on tcp 8080 and udp
// 5353.
var initiatorProbes = cat(
	both(
		// Nothing new comes in, not even to listening services.
		oracleProbe{from: clientRole, kind: tcpConnect, to: hostRole, port: 22},
		oracleProbe{from: clientRole, kind: udpQuery, to: hostRole, port: 53},
		oracleProbe{from: clientRole, kind: icmpEcho, to: hostRole},
		oracleProbe{from: clientRole, kind: tcpACK, to: hostRole, port: 22},
		// What the host opens works, and errors about it come back.
		oracleProbe{from: hostRole, kind: tcpConnect, to: clientRole, port: 8080},
		oracleProbe{from: hostRole, kind: tcpConnect, to: clientRole, port: 9},
		oracleProbe{from: hostRole, kind: udpQuery, to: clientRole, port: 5353},
		oracleProbe{from: hostRole, kind: udpQuery, to: clientRole, port: 9},
		oracleProbe{from: hostRole, kind: icmpEcho, to: clientRole},
		// The host's own services over loopback.
		oracleProbe{from: hostRole, kind: tcpConnect, to: "lo", port: 22},
		// Scans from outside: packets of no connection, another protocol.
		oracleProbe{from: clientRole, kind: tcpFIN, to: hostRole, port: 22, sport: 40051},
		oracleProbe{from: clientRole, kind: tcpXMAS, to: hostRole, port: 22, sport: 40052},
		oracleProbe{from: clientRole, kind: rawGRE, to: hostRole},
		oracleProbe{from: clientRole, kind: udpQuery, to: hostRole, port: 9},
		// The router next door, and the host reaching it.
		oracleProbe{from: sandbox.Gateway, kind: tcpConnect, to: hostRole, port: 22},
		oracleProbe{from: sandbox.Gateway, kind: udpQuery, to: hostRole, port: 53},
		oracleProbe{from: sandbox.Gateway, kind: icmpEcho, to: hostRole},
		oracleProbe{from: hostRole, kind: icmpEcho, to: "gw@" + hostRole},
	),
	[]oracleProbe{
		{from: hostRole, kind: tcpConnect, to: clientRole, port: 8080, v6: true, flush: true},
		{from: hostRole, kind: udpQuery, to: clientRole, port: 5353, v6: true, flush: true},
		{from: hostRole, kind: icmpEcho, to: clientRole, flush: true},
	},
)

// serverProbes are the probes of guide 004's single machine with ssh,
// http(s) and dns open: srv listens on tcp 22, 80, 443, 53, 8080 and udp
// 53, 5353.
var serverProbes = cat(
	both(
		oracleProbe{from: clientRole, kind: tcpConnect, to: hostRole, port: 22},
		oracleProbe{from: clientRole, kind: tcpConnect, to: hostRole, port: 80},
		oracleProbe{from: clientRole, kind: tcpConnect, to: hostRole, port: 443},
		oracleProbe{from: clientRole, kind: tcpConnect, to: hostRole, port: 53},
		oracleProbe{from: clientRole, kind: udpQuery, to: hostRole, port: 53},
		// Closed: a listening service the rules do not open, and a port
		// where nothing listens.
		oracleProbe{from: clientRole, kind: tcpConnect, to: hostRole, port: 8080},
		oracleProbe{from: clientRole, kind: tcpConnect, to: hostRole, port: 9},
		oracleProbe{from: clientRole, kind: udpQuery, to: hostRole, port: 5353},
		oracleProbe{from: clientRole, kind: udpQuery, to: hostRole, port: 9},
		oracleProbe{from: clientRole, kind: icmpEcho, to: hostRole},
		oracleProbe{from: clientRole, kind: rawGRE, to: hostRole},
		// Packets of no connection.
		oracleProbe{from: clientRole, kind: tcpACK, to: hostRole, port: 22, sport: 40001},
		oracleProbe{from: clientRole, kind: tcpACK, to: hostRole, port: 8080, sport: 40002},
		oracleProbe{from: clientRole, kind: tcpFIN, to: hostRole, port: 8080, sport: 40003},
		oracleProbe{from: clientRole, kind: tcpXMAS, to: hostRole, port: 8080, sport: 40004},
		// Loopback is trusted; the host's own connections work.
		oracleProbe{from: hostRole, kind: tcpConnect, to: "lo", port: 8080},
		oracleProbe{from: hostRole, kind: udpQuery, to: "lo", port: 5353},
		oracleProbe{from: hostRole, kind: tcpConnect, to: clientRole, port: 8080},
		oracleProbe{from: hostRole, kind: udpQuery, to: clientRole, port: 9},
		oracleProbe{from: hostRole, kind: tcpConnect, to: clientRole, port: 9},
		oracleProbe{from: hostRole, kind: icmpEcho, to: clientRole},
		// Scans of an open and a closed port with packets of no
		// connection.
		oracleProbe{from: clientRole, kind: tcpFIN, to: hostRole, port: 22, sport: 40005},
		oracleProbe{from: clientRole, kind: tcpXMAS, to: hostRole, port: 22, sport: 40006},
		oracleProbe{from: clientRole, kind: tcpACK, to: hostRole, port: 9, sport: 40007},
		// Every reject kind again from the router itself.
		oracleProbe{from: sandbox.Gateway, kind: tcpConnect, to: hostRole, port: 22},
		oracleProbe{from: sandbox.Gateway, kind: tcpConnect, to: hostRole, port: 8080},
		oracleProbe{from: sandbox.Gateway, kind: udpQuery, to: hostRole, port: 53},
		oracleProbe{from: sandbox.Gateway, kind: udpQuery, to: hostRole, port: 5353},
		oracleProbe{from: sandbox.Gateway, kind: icmpEcho, to: hostRole},
		oracleProbe{from: sandbox.Gateway, kind: rawGRE, to: hostRole},
		oracleProbe{from: sandbox.Gateway, kind: tcpACK, to: hostRole, port: 8080, sport: 40008},
	),
	[]oracleProbe{
		{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, v6: true, flush: true},
		{from: clientRole, kind: udpQuery, to: hostRole, port: 53, v6: true, flush: true},
	},
)

// portscanProbes walk guide 004's "Tricking port scanners" in order, each
// scanner from its own address: srv listens on tcp 22, 80, 443, 8080 and
// udp 53, 5353. The guide gives its tricks for IPv4; a shorter IPv6 scan
// runs against them copied by its IPv6 recipe (portscan.rules6).
var portscanProbes = []oracleProbe{
	// A SYN scan: open ports answer until the scanner hits a closed one.
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22},
	{from: clientRole, kind: udpQuery, to: hostRole, port: 53},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 8080},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, note: "listed"},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 443, note: "listed"},
	{from: clientRole, kind: udpQuery, to: hostRole, port: 53, note: "listed for TCP only"},
	// A UDP scan likewise.
	{from: clientRole, kind: udpQuery, to: hostRole, port: 5353},
	{from: clientRole, kind: udpQuery, to: hostRole, port: 53, note: "listed"},
	{from: clientRole, kind: icmpEcho, to: hostRole, note: "listed"},
	// An ACK scan: every ACK is reset, and the scanner is listed.
	{from: scan2Role, kind: tcpACK, to: hostRole, port: 22, sport: 40011},
	{from: scan2Role, kind: tcpACK, to: hostRole, port: 8080, sport: 40012},
	{from: scan2Role, kind: tcpConnect, to: hostRole, port: 22, note: "after its ACK scan"},
	// FIN and XMAS scans are INVALID: silence, and no listing.
	{from: scan3Role, kind: tcpFIN, to: hostRole, port: 22, sport: 40021},
	{from: scan3Role, kind: tcpFIN, to: hostRole, port: 8080, sport: 40022},
	{from: scan3Role, kind: tcpXMAS, to: hostRole, port: 22, sport: 40023},
	{from: scan3Role, kind: tcpXMAS, to: hostRole, port: 8080, sport: 40024},
	{from: scan3Role, kind: tcpConnect, to: hostRole, port: 22, note: "after its FIN and XMAS scans"},
	// Another protocol, and a source that never scanned.
	{from: scan4Role, kind: rawGRE, to: hostRole},
	{from: scan4Role, kind: tcpConnect, to: hostRole, port: 80},
	{from: scan4Role, kind: udpQuery, to: hostRole, port: 53},
	// A SYN and a UDP scan over IPv6, from an address no list holds yet.
	{from: scan2Role, kind: tcpConnect, to: hostRole, port: 22, v6: true},
	{from: scan2Role, kind: icmpEcho, to: hostRole, v6: true},
	{from: scan2Role, kind: tcpConnect, to: hostRole, port: 8080, v6: true},
	{from: scan2Role, kind: tcpConnect, to: hostRole, port: 22, v6: true, note: "listed"},
	{from: scan2Role, kind: udpQuery, to: hostRole, port: 53, v6: true, note: "listed for TCP only"},
	{from: scan2Role, kind: udpQuery, to: hostRole, port: 5353, v6: true},
	{from: scan2Role, kind: udpQuery, to: hostRole, port: 53, v6: true, note: "listed"},
	{from: scan2Role, kind: tcpACK, to: hostRole, port: 8080, sport: 40013, v6: true},
	{from: scan2Role, kind: tcpConnect, to: hostRole, port: 443, v6: true, note: "listed"},
	{from: scan2Role, kind: icmpEcho, to: hostRole, v6: true, note: "listed"},
	// An ACK, FIN and XMAS scan over IPv6, each from its own address.
	{from: scan3Role, kind: tcpACK, to: hostRole, port: 22, sport: 40025, v6: true},
	{from: scan3Role, kind: tcpACK, to: hostRole, port: 8080, sport: 40026, v6: true},
	{from: scan3Role, kind: tcpConnect, to: hostRole, port: 22, v6: true, note: "after its ACK scan"},
	{from: scan4Role, kind: tcpFIN, to: hostRole, port: 22, sport: 40027, v6: true},
	{from: scan4Role, kind: tcpFIN, to: hostRole, port: 8080, sport: 40028, v6: true},
	{from: scan4Role, kind: tcpXMAS, to: hostRole, port: 22, sport: 40029, v6: true},
	{from: scan4Role, kind: tcpXMAS, to: hostRole, port: 8080, sport: 40030, v6: true},
	{from: scan4Role, kind: tcpConnect, to: hostRole, port: 22, v6: true, note: "after its FIN and XMAS scans"},
	{from: scan4Role, kind: rawGRE, to: hostRole, v6: true},
	// A UDP scan that starts at a closed port (IPv4, a fresh source: the
	// router itself).
	{from: sandbox.Gateway, kind: udpQuery, to: hostRole, port: 5353},
	{from: sandbox.Gateway, kind: udpQuery, to: hostRole, port: 53, note: "listed"},
	{from: sandbox.Gateway, kind: tcpConnect, to: hostRole, port: 22, note: "listed for UDP only"},
	{from: sandbox.Gateway, kind: tcpConnect, to: hostRole, port: 8080, note: "listed for UDP only"},
	{from: sandbox.Gateway, kind: tcpConnect, to: hostRole, port: 80, note: "listed"},
	{from: sandbox.Gateway, kind: udpQuery, to: hostRole, port: 53, note: "listed for both"},
}

// sshguardProbes are guide 004's "Bruteforce attacks" in order: three new
// ssh connections in 10 s, the fourth dropped; after 10 s one more (the
// fourth in 30 minutes), then the next dropped. Another source is not
// limited. srv listens on tcp 22 and 8080.
// Both families count in the same 10 s (one pause for both); the router
// itself is a third source.
var sshguardProbes = []oracleProbe{
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, note: "#1"},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, note: "#2"},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, note: "#3"},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, note: "#4"},
	{from: scan2Role, kind: tcpConnect, to: hostRole, port: 22, note: "another source"},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 8080, note: "a closed port"},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, v6: true, note: "#1"},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, v6: true, note: "#2"},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, v6: true, note: "#3"},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, v6: true, note: "#4"},
	{from: scan2Role, kind: tcpConnect, to: hostRole, port: 22, v6: true, note: "another source"},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 8080, v6: true, note: "a closed port"},
	{from: clientRole, kind: udpQuery, to: hostRole, port: 22, note: "udp"},
	{from: sandbox.Gateway, kind: tcpConnect, to: hostRole, port: 22, note: "#1"},
	{from: sandbox.Gateway, kind: tcpConnect, to: hostRole, port: 22, note: "#2"},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, note: "#5 after 10 s", pause: 10500 * time.Millisecond},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, note: "#6"},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, v6: true, note: "#5 after 10 s"},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, v6: true, note: "#6"},
	{from: scan2Role, kind: tcpConnect, to: hostRole, port: 22, note: "another source #2"},
	{from: sandbox.Gateway, kind: tcpConnect, to: hostRole, port: 22, note: "#3"},
	{from: sandbox.Gateway, kind: tcpConnect, to: hostRole, port: 22, note: "#4"},
	{from: sandbox.Gateway, kind: tcpConnect, to: hostRole, port: 22, note: "#5"},
}

// guestRole is the NAT gateway's guest network, which may use a few
// services only (multiport rules).
const guestRole = "guest"

// natLANs are the NAT gateway setups' networks: "cli" plays the uplink
// (the internet), "srv" the trusted LAN behind the NAT, "guest" the guest
// network, as in nat-gateway.yaml.
var natLANs = append(append([]sandbox.LAN(nil), sandbox.DefaultLANs...),
	sandbox.LAN{Role: guestRole, V4: netip.MustParsePrefix("10.99.3.0/24"), V6: netip.MustParsePrefix("fd99:3::/64")})

// gatewayNames maps the guide's WAN, LAN and GUEST and the example's
// veth-gc, veth-gs and veth-guest+ to the gateway's links, and the
// subnets' IPv6 placeholders to the LANs.
func gatewayNames(sb *sandbox.Sandbox) *strings.Replacer {
	wan, lan, guest := sb.GatewayLink(clientRole), sb.GatewayLink(hostRole), sb.GatewayLink(guestRole)
	return strings.NewReplacer(
		"WANNET6", subnet6(sb, clientRole), "LANNET6", subnet6(sb, hostRole), "GUESTNET6", subnet6(sb, guestRole),
		"WAN", wan, "LAN", lan, "GUEST", guest,
		"veth-gc", wan, "veth-gs", lan, `"veth-guest+"`, `"`+guest+`"`)
}

// prepareGateway turns the kernel's own reverse path filter off in the
// gateway (the rules' rpfilter is under test), opens banner servers on
// the uplink host, the LAN host, the guest host and the gateway, and gives
// the LAN host forged uplink addresses for the spoofing probes.
func prepareGateway(t *testing.T, s *oracleSide) {
	gw := s.sb.NS(sandbox.Gateway)
	for _, c := range []string{"all", "default", s.sb.GatewayLink(clientRole), s.sb.GatewayLink(hostRole), s.sb.GatewayLink(guestRole)} {
		gw.MustExec("sysctl", "-qw", "net.ipv4.conf."+c+".rp_filter=0")
	}
	for role, ports := range map[string][]uint16{clientRole: {80, 443}, hostRole: {22, 80, 443}, guestRole: {22}, sandbox.Gateway: {22}} {
		for _, port := range ports {
			bannerTCP(t, s.sb.NS(role), port, fmt.Sprintf("%s:%d", role, port))
		}
	}
	for _, role := range []string{clientRole, hostRole, sandbox.Gateway} {
		s.logs[role+"/53"] = bannerUDP(t, s.sb.NS(role), 53, role+":53")
	}
	// The LAN host may forge uplink and guest sources, the uplink host LAN
	// sources.
	for _, f := range []struct {
		role string
		lan  sandbox.LAN
	}{{hostRole, natLANs[0]}, {hostRole, natLANs[2]}, {clientRole, natLANs[1]}} {
		for _, p := range []netip.Prefix{f.lan.V4, f.lan.V6} {
			addSpoofed(t, s.sb, f.role, p)
		}
	}
}

// ftpOn starts vsftpd in role.
func ftpOn(role string) func(t *testing.T, s *oracleSide) {
	return func(t *testing.T, s *oracleSide) { s.ftp = startVsftpd(t, s.sb.NS(role)) }
}

// oracleFTP are the FTP clients of the oracle, bounded by ftpOracleTimeout
// (lftp's net:timeout is the same 8 s).
var oracleFTP = newFTPClients(ftpOracleTimeout)

// ftpProbes fetch the file of vsftpd on role to from role from, in every
// mode: passive and active, IPv4 (EPSV, PASV, EPRT, PORT) and IPv6 (EPSV,
// EPRT: the only ones IPv6 has).
func ftpProbes(from, to string) []oracleProbe {
	var out []oracleProbe
	for _, tool := range []ftpTool{oracleFTP.curlEPSV, oracleFTP.curlPASV, oracleFTP.curlEPRT, oracleFTP.curlPORT} {
		out = append(out, oracleProbe{from: from, kind: ftpFetch, to: to, tool: tool})
	}
	for _, tool := range []ftpTool{oracleFTP.curlEPSV, oracleFTP.curlEPRT} {
		out = append(out, oracleProbe{from: from, kind: ftpFetch, to: to, tool: tool, v6: true})
	}
	for _, tool := range []ftpTool{oracleFTP.lftpPassive, oracleFTP.lftpActive} {
		out = append(out, both(oracleProbe{from: from, kind: ftpFetch, to: to, tool: tool})...)
	}
	return out
}

// ftpServerProbes: vsftpd on srv, the client in cli.
var ftpServerProbes = cat(
	ftpProbes(clientRole, hostRole),
	both(
		oracleProbe{from: clientRole, kind: tcpConnect, to: hostRole, port: 2121},
		oracleProbe{from: clientRole, kind: udpQuery, to: hostRole, port: 9},
		oracleProbe{from: clientRole, kind: icmpEcho, to: hostRole},
		// The data ports, with no announcement: nothing is open.
		oracleProbe{from: clientRole, kind: tcpConnect, to: hostRole, port: 20},
		oracleProbe{from: clientRole, kind: tcpConnect, to: hostRole, port: 40000},
		oracleProbe{from: clientRole, kind: tcpACK, to: hostRole, port: 21, sport: 40061},
		// The server's own connections out.
		oracleProbe{from: hostRole, kind: tcpConnect, to: clientRole, port: 9},
		oracleProbe{from: sandbox.Gateway, kind: tcpConnect, to: hostRole, port: 21},
	),
)

// ftpClientProbes: the protected host srv fetches from vsftpd on cli;
// nothing comes in.
var ftpClientProbes = cat(
	ftpProbes(hostRole, clientRole),
	both(
		oracleProbe{from: clientRole, kind: tcpConnect, to: hostRole, port: 22},
		// The server's side of an active data connection, unannounced.
		oracleProbe{from: clientRole, kind: tcpConnect, to: hostRole, port: 40000},
		oracleProbe{from: clientRole, kind: udpQuery, to: hostRole, port: 9},
		oracleProbe{from: clientRole, kind: icmpEcho, to: hostRole},
		// Out: the control port only, and nothing else new.
		oracleProbe{from: hostRole, kind: tcpConnect, to: clientRole, port: 22},
	),
)

// natProbes: the LAN (srv) and the guest network go out masqueraded, the
// uplink (cli) reaches the LAN only through the port forwards, the gateway
// reaches everyone; active and passive FTP through the MASQUERADE.
var natProbes = cat(
	[]oracleProbe{
		// The LAN goes out, masqueraded.
		{from: hostRole, kind: tcpBanner, to: clientRole, port: 80},
		{from: hostRole, kind: udpBanner, to: clientRole, port: 53},
		{from: hostRole, kind: icmpEcho, to: clientRole},
		{from: hostRole, kind: tcpConnect, to: clientRole, port: 25},
		// The guest network: the multiport rules.
		{from: guestRole, kind: tcpBanner, to: clientRole, port: 80},
		{from: guestRole, kind: tcpBanner, to: clientRole, port: 443},
		{from: guestRole, kind: udpBanner, to: clientRole, port: 53},
		{from: guestRole, kind: tcpConnect, to: clientRole, port: 25},
		{from: guestRole, kind: tcpConnect, to: clientRole, port: 3389},
		// The port forwards from the uplink.
		{from: clientRole, kind: tcpBanner, to: "gw@" + clientRole, port: 22},
		{from: clientRole, kind: tcpBanner, to: "gw@" + clientRole, port: 8000},
		{from: clientRole, kind: tcpBanner, to: hostRole, port: 22},
		{from: clientRole, kind: tcpBanner, to: hostRole, port: 8000},
		{from: clientRole, kind: tcpBanner, to: guestRole, port: 22},
		// Nothing else from the uplink crosses.
		{from: clientRole, kind: tcpBanner, to: hostRole, port: 443},
		{from: clientRole, kind: udpBanner, to: hostRole, port: 53},
		{from: clientRole, kind: icmpEcho, to: hostRole},
		{from: clientRole, kind: tcpACK, to: hostRole, port: 22, sport: 40031},
		{from: clientRole, kind: tcpACK, to: hostRole, port: 443, sport: 40032},
		{from: clientRole, kind: tcpFIN, to: hostRole, port: 443, sport: 40033},
		// The gateway's own services.
		{from: hostRole, kind: tcpBanner, to: "gw@" + hostRole, port: 22},
		{from: hostRole, kind: udpBanner, to: "gw@" + hostRole, port: 53},
		{from: clientRole, kind: udpBanner, to: "gw@" + clientRole, port: 53},
		{from: clientRole, kind: tcpConnect, to: "gw@" + clientRole, port: 443},
		{from: clientRole, kind: icmpEcho, to: "gw@" + clientRole},
		// The gateway itself goes everywhere.
		{from: sandbox.Gateway, kind: tcpBanner, to: clientRole, port: 80},
		{from: sandbox.Gateway, kind: tcpBanner, to: hostRole, port: 22},
	},
	// IPv6 is routed, not translated.
	both(oracleProbe{from: hostRole, kind: tcpBanner, to: clientRole, port: 443}),
	[]oracleProbe{
		{from: guestRole, kind: tcpBanner, to: clientRole, port: 80, v6: true},
		{from: clientRole, kind: tcpBanner, to: hostRole, port: 443, v6: true},
		{from: clientRole, kind: icmpEcho, to: "gw@" + clientRole, v6: true},
		{from: sandbox.Gateway, kind: tcpBanner, to: hostRole, port: 22, v6: true},
	},
	// FTP from the LAN to a server on the uplink, through the MASQUERADE.
	[]oracleProbe{
		{from: hostRole, kind: ftpFetch, to: clientRole, tool: oracleFTP.curlEPSV},
		{from: hostRole, kind: ftpFetch, to: clientRole, tool: oracleFTP.curlPASV},
		{from: hostRole, kind: ftpFetch, to: clientRole, tool: oracleFTP.curlEPRT},
		{from: hostRole, kind: ftpFetch, to: clientRole, tool: oracleFTP.curlPORT},
		{from: hostRole, kind: ftpFetch, to: clientRole, tool: oracleFTP.lftpPassive},
		{from: hostRole, kind: ftpFetch, to: clientRole, tool: oracleFTP.lftpActive},
		{from: hostRole, kind: ftpFetch, to: clientRole, tool: oracleFTP.curlEPSV, v6: true},
		{from: hostRole, kind: ftpFetch, to: clientRole, tool: oracleFTP.curlEPRT, v6: true},
	},
	// The guest network's multiport rules, the rest of them, both
	// families, and guests toward the LAN.
	both(
		oracleProbe{from: guestRole, kind: tcpConnect, to: clientRole, port: 110},
		oracleProbe{from: guestRole, kind: tcpConnect, to: clientRole, port: 1863},
		oracleProbe{from: guestRole, kind: tcpConnect, to: clientRole, port: 22},
		oracleProbe{from: guestRole, kind: icmpEcho, to: clientRole},
		oracleProbe{from: guestRole, kind: tcpBanner, to: hostRole, port: 80},
		oracleProbe{from: guestRole, kind: tcpBanner, to: hostRole, port: 22},
		oracleProbe{from: hostRole, kind: tcpBanner, to: guestRole, port: 22},
	),
	[]oracleProbe{
		{from: guestRole, kind: tcpBanner, to: clientRole, port: 443, v6: true},
		{from: guestRole, kind: udpBanner, to: clientRole, port: 53, v6: true},
		{from: guestRole, kind: tcpConnect, to: clientRole, port: 25, v6: true},
		{from: guestRole, kind: tcpConnect, to: clientRole, port: 3389, v6: true},
	},
	// The gateway's own answers, both families: closed TCP, closed UDP,
	// another protocol, packets of no connection; its ssh from the guests.
	both(
		oracleProbe{from: clientRole, kind: udpQuery, to: "gw@" + clientRole, port: 9},
		oracleProbe{from: clientRole, kind: rawGRE, to: "gw@" + clientRole},
		oracleProbe{from: clientRole, kind: tcpACK, to: "gw@" + clientRole, port: 443, sport: 40034},
		oracleProbe{from: clientRole, kind: tcpFIN, to: "gw@" + clientRole, port: 443, sport: 40035},
		oracleProbe{from: clientRole, kind: tcpConnect, to: "gw@" + clientRole, port: 443, note: "again"},
		oracleProbe{from: guestRole, kind: tcpBanner, to: "gw@" + guestRole, port: 22},
		oracleProbe{from: guestRole, kind: udpBanner, to: "gw@" + guestRole, port: 53},
		oracleProbe{from: hostRole, kind: icmpEcho, to: "gw@" + hostRole},
	),
	[]oracleProbe{
		{from: clientRole, kind: tcpBanner, to: "gw@" + clientRole, port: 22, v6: true},
		{from: clientRole, kind: udpBanner, to: "gw@" + clientRole, port: 53, v6: true},
		{from: hostRole, kind: tcpBanner, to: "gw@" + hostRole, port: 22, v6: true},
	},
	// IPv6 from the uplink into the LAN: routed, refused but for nothing.
	[]oracleProbe{
		{from: clientRole, kind: tcpBanner, to: hostRole, port: 22, v6: true},
		{from: clientRole, kind: tcpBanner, to: hostRole, port: 80, v6: true},
		{from: clientRole, kind: udpBanner, to: hostRole, port: 53, v6: true},
		{from: clientRole, kind: icmpEcho, to: hostRole, v6: true},
		{from: clientRole, kind: tcpACK, to: hostRole, port: 22, sport: 40036, v6: true},
		{from: clientRole, kind: tcpBanner, to: guestRole, port: 22, v6: true},
		{from: hostRole, kind: udpBanner, to: clientRole, port: 53, v6: true},
		{from: hostRole, kind: icmpEcho, to: clientRole, v6: true},
	},
	// The gateway itself goes everywhere, both families.
	[]oracleProbe{
		{from: sandbox.Gateway, kind: tcpBanner, to: clientRole, port: 80, v6: true},
		{from: sandbox.Gateway, kind: tcpBanner, to: guestRole, port: 22},
		{from: sandbox.Gateway, kind: tcpBanner, to: guestRole, port: 22, v6: true},
		{from: sandbox.Gateway, kind: udpBanner, to: clientRole, port: 53},
		{from: sandbox.Gateway, kind: icmpEcho, to: clientRole},
		{from: sandbox.Gateway, kind: icmpEcho, to: hostRole, v6: true},
	},
)

// rpfilterProbes: the LAN host sends to the uplink from its own address
// (delivered) and from a forged uplink address, which the reverse path
// filter must drop before it is forwarded.
var rpfilterProbes = cat(both(
	oracleProbe{from: hostRole, kind: udpBanner, to: clientRole, port: 53},
	oracleProbe{from: hostRole, kind: spoofUDP, to: clientRole, port: 53, spoof: clientRole},
	oracleProbe{from: hostRole, kind: spoofUDP, to: "gw@" + hostRole, port: 53, spoof: clientRole, note: "to the gateway's own dns"},
	// The guest network's address forged on the LAN, the LAN's own on the
	// uplink.
	oracleProbe{from: hostRole, kind: spoofUDP, to: clientRole, port: 53, spoof: guestRole},
	oracleProbe{from: clientRole, kind: spoofUDP, to: "gw@" + clientRole, port: 53, spoof: hostRole},
	oracleProbe{from: clientRole, kind: spoofUDP, to: hostRole, port: 53, spoof: hostRole, note: "into the LAN"},
	// Genuine sources still pass: the uplink to the gateway's dns.
	oracleProbe{from: clientRole, kind: udpBanner, to: "gw@" + clientRole, port: 53},
))

// ipv6HostProbes: guide 004's IPv6 host, IPv6 only (the IPv4 side is the
// server setup's). srv listens on tcp 22, 8080 and udp 546, 5353.
var ipv6HostProbes = []oracleProbe{
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, v6: true},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 8080, v6: true},
	{from: clientRole, kind: udpQuery, to: hostRole, port: 5353, v6: true},
	{from: clientRole, kind: icmpEcho, to: hostRole, v6: true},
	{from: clientRole, kind: rawGRE, to: hostRole, v6: true},
	{from: clientRole, kind: tcpACK, to: hostRole, port: 22, sport: 40041, v6: true},
	{from: clientRole, kind: tcpXMAS, to: hostRole, port: 22, sport: 40042, v6: true},
	// A DHCPv6 server's answer: from its link-local address, port 547.
	{from: sandbox.Gateway, kind: udpQuery, to: "ll@" + hostRole, port: 546, sport: 547, v6: true},
	// The same ports from a global address far away.
	{from: clientRole, kind: udpQuery, to: hostRole, port: 546, sport: 547, v6: true},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 22, v6: true, flush: true},
	// icmp6-adm-prohibited for the rest; packets of no connection.
	{from: clientRole, kind: udpQuery, to: hostRole, port: 9, v6: true},
	{from: clientRole, kind: tcpConnect, to: hostRole, port: 9, v6: true},
	{from: clientRole, kind: tcpFIN, to: hostRole, port: 22, sport: 40043, v6: true},
	{from: clientRole, kind: tcpACK, to: hostRole, port: 8080, sport: 40044, v6: true},
	// The router: global and link-local, ping6 and neighbour discovery.
	{from: sandbox.Gateway, kind: tcpConnect, to: hostRole, port: 22, v6: true},
	{from: sandbox.Gateway, kind: icmpEcho, to: hostRole, v6: true},
	{from: sandbox.Gateway, kind: udpQuery, to: hostRole, port: 5353, v6: true},
	{from: sandbox.Gateway, kind: tcpConnect, to: "ll@" + hostRole, port: 22, v6: true},
	{from: sandbox.Gateway, kind: icmpEcho, to: hostRole, v6: true, flush: true},
	{from: sandbox.Gateway, kind: udpQuery, to: "ll@" + hostRole, port: 546, sport: 547, v6: true, flush: true, note: "again"},
	// The host's own traffic out: the router, a DHCPv6 server's port.
	{from: hostRole, kind: icmpEcho, to: clientRole, v6: true},
	{from: hostRole, kind: tcpConnect, to: clientRole, port: 8080, v6: true, flush: true},
	{from: hostRole, kind: icmpEcho, to: "gw@" + hostRole, v6: true},
}

// oracleSetups are the setups of the guides, each against its example.
var oracleSetups = []oracleSetup{
	{
		name: "desktop", guard: hostRole, rules4: "desktop", rules6: "desktop", example: "desktop.yaml",
		names:   hostNames,
		prepare: prepareAll(serve(hostRole, []uint16{22}, []uint16{53}), serve(clientRole, []uint16{8080}, []uint16{5353})),
		probes:  initiatorProbes,
	},
	{
		name: "initiate-only", guard: hostRole, rules4: "initiate-only", rules6: "initiate-only", example: "client-only.yaml",
		names:   hostNames,
		prepare: prepareAll(serve(hostRole, []uint16{22}, []uint16{53}), serve(clientRole, []uint16{8080}, []uint16{5353})),
		probes:  initiatorProbes,
	},
	{
		name: "server", guard: hostRole, rules4: "server", rules6: "server", example: "server.yaml",
		names:   hostNames,
		prepare: prepareAll(serve(hostRole, []uint16{22, 80, 443, 53, 8080}, []uint16{53, 5353}), serve(clientRole, []uint16{8080}, nil)),
		probes:  serverProbes,
	},
	{
		name: "portscan", guard: hostRole, rules4: "portscan", rules6: "portscan", example: "portscan.yaml",
		lans:    append(append([]sandbox.LAN(nil), sandbox.DefaultLANs...), lan2, lan3, lan4),
		names:   hostNames,
		prepare: serve(hostRole, []uint16{22, 80, 443, 8080}, []uint16{53, 5353}),
		probes:  portscanProbes,
	},
	{
		name: "ssh-bruteforce", guard: hostRole, rules4: "sshguard", rules6: "sshguard", example: "ssh-guard.yaml",
		lans:    append(append([]sandbox.LAN(nil), sandbox.DefaultLANs...), lan2),
		names:   hostNames,
		prepare: serve(hostRole, []uint16{22, 8080}, nil),
		probes:  sshguardProbes,
	},
	{
		name: "ftp-server", guard: hostRole, rules4: "ftp-server", rules6: "ftp-server", example: "ftp-server.yaml",
		names:   hostNames,
		prepare: ftpOn(hostRole),
		probes:  ftpServerProbes,
	},
	{
		name: "ftp-client", guard: hostRole, rules4: "ftp-client", rules6: "ftp-client", example: "ftp-client.yaml",
		names:   hostNames,
		prepare: prepareAll(ftpOn(clientRole), serve(hostRole, []uint16{22}, nil)),
		probes:  ftpClientProbes,
	},
	{
		name: "nat-gateway", guard: sandbox.Gateway, rules4: "natgw", rules6: "natgw", example: "nat-gateway.yaml",
		lans:    natLANs,
		names:   gatewayNames,
		prepare: prepareAll(prepareGateway, ftpOn(clientRole)),
		probes:  natProbes,
	},
	{
		name: "rpfilter", guard: sandbox.Gateway, rules4: "natgw", rules6: "natgw", example: "nat-gateway.yaml",
		lans:    natLANs,
		names:   gatewayNames,
		prepare: prepareGateway,
		probes:  rpfilterProbes,
	},
	{
		name: "ipv6-host", guard: hostRole, rules4: "server", rules6: "ipv6-host", example: "ipv6-host.yaml",
		names:   hostNames,
		prepare: serve(hostRole, []uint16{22, 8080}, []uint16{546, 5353}),
		probes:  ipv6HostProbes,
	},
}

// Reasons shared by several entries of the lists below.
const (
	whyLoopback = "the guide's rules drop loopback: guide 000's two-line desktop and guide 001 " +
		"accept no lo, so a local client cannot reach a local service; guide 000's own full script " +
		"(-i ! ppp0 -j ACCEPT) and guide 004 (-i lo -j ACCEPT) accept it, and so do nfqfw's examples (trusted: [lo])"
	whyNeighbourPing6 = "guides 000 and 001 give IPv4 rules only; their IPv6 transcription follows guide 004's " +
		"recipe, which accepts every ICMPv6 from link-local sources and the attached subnet so that neighbour " +
		"discovery works, and so answers a neighbour's ping6 too, where the same guide's IPv4 rules drop the " +
		"neighbour's ping (gw>srv ping v4: timeout on both sides); nfqfw's examples admit neighbour discovery " +
		"and errors about the host's own connections, and nothing new, in both families"
	whyPing6Slip = "guide 004's ip6tables.rules puts the ping6 ACCEPT after the final REJECT, where it never " +
		"matches (a known slip of the guide); its text says pings are to be accepted, as nfqfw does"
	whyDNATSlip = "guide 004's DNAT rules have no destination match (a known slip of the guide): every " +
		"connection from the uplink to port 22 or 8000, whichever host behind the gateway it is addressed to, " +
		"is taken to the forward's server; nfqfw's forwards take only what is addressed to the gateway, as a " +
		"port forward means"
	whyDHCPv6 = "guide 004's DHCPv6 rule (-p udp --sport 547 --dport 546) admits any source, so anyone on " +
		"the internet can reach the client port; DHCPv6 servers and relays answer clients from link-local " +
		"addresses (RFC 8415), and nfqfw's example admits only fe80::/10"
)

// oracleIntended are the differences where the guide is wrong and nfqfw
// right, keyed "SETUP: PROBE", each with the reason.
var oracleIntended = map[string]string{
	"desktop: srv>lo tcp/22 v4":       whyLoopback,
	"desktop: srv>lo tcp/22 v6":       whyLoopback,
	"initiate-only: srv>lo tcp/22 v4": whyLoopback,
	"initiate-only: srv>lo tcp/22 v6": whyLoopback,
	"desktop: gw>srv ping v6":         whyNeighbourPing6,
	"initiate-only: gw>srv ping v6":   whyNeighbourPing6,
	"server: cli>srv ping v6":         whyPing6Slip,
	"ipv6-host: cli>srv ping v6":      whyPing6Slip,

	"ipv6-host: cli>srv udp/546 from port 547 v6": whyDHCPv6,

	"nat-gateway: cli>srv banner/8000 v4": whyDNATSlip,
	"nat-gateway: cli>guest banner/22 v4": whyDNATSlip,
}

// oracleKnownOpen are nfqfw's own differences from the guides, not fixed
// yet, keyed "SETUP: PROBE", each naming the behaviour to fix. An entry
// whose probe matches fails the test: the fix landed, remove the entry.
var oracleKnownOpen = map[string]string{}

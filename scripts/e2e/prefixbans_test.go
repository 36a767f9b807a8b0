package e2e

import (
	"context"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// addAddr6 gives the namespace of role one more IPv6 address, a on the
// link that carries its own, and returns a.
func addAddr6(t *testing.T, sb *sandbox.Sandbox, role string, a netip.Addr) netip.Addr {
	t.Helper()
	ns := sb.NS(role)
	out := ns.MustExec("ip", "-o", "-6", "addr", "show", "to", sb.Addr6(role).String()+"/128")
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("no link holds %s in %s: %q", sb.Addr6(role), ns.Name, out)
	}
	ns.MustExec("ip", "-6", "addr", "add", a.String()+"/64", "dev", strings.TrimSuffix(f[1], ":"), "nodad")
	return a
}

// dialFromAddr connects from ns, source address src, to dst (an echo round
// trip, probeTimeout) and reports what happened.
func dialFromAddr(ns *sandbox.Netns, src netip.Addr, dst netip.AddrPort) outcome {
	got := connected
	ns.Do(func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: probeTimeout}
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", dst.String())
		if err != nil {
			got = errOutcome(err)
			return nil
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(probeTimeout))
		got = roundTrip(c)
		if got == answered {
			got = connected
		}
		return nil
	})
	return got
}

// TestPrefixBanIPv6: nfqfw bans add 2001:db8:1::/64 (here the client
// LAN's fd99:1::/64) bans every address of the /64: it lands as that
// prefix in the kernel's hash:net set, the established connection of one
// address is cut (its flows deleted over ctnetlink), new connections from
// two different addresses of the /64 are dropped while another LAN still
// gets in, bans list shows the prefix with this gateway as its origin, a
// restart keeps it with its origin and expiry, and bans del of the same
// prefix lifts it.
func TestPrefixBanIPv6(t *testing.T) {
	l := newSSHLab(t, lan2)
	sb, cli, host, other, ssh := l.sb, l.cli, l.host, l.other, l.ssh6
	first := sb.Addr6(clientRole)                                              // fd99:1::2
	second := addAddr6(t, sb, clientRole, netip.MustParseAddr("fd99:1::77:1")) // same /64
	scope := netip.MustParsePrefix("fd99:1::/64")
	fw := startFirewall(t, host, statefulConfig(sb, noGuardConfig))
	set := func() map[netip.Prefix]banEntry { return banScopes(t, host, "nfqfw-bannet6") }

	for _, src := range []netip.Addr{first, second} {
		if got := dialFromAddr(cli, src, ssh); got != connected {
			t.Fatalf("before the ban: tcp %s from %s: %s, want connected", ssh, src, got)
		}
	}
	talk := converse(t, cli, ssh)
	fw.mustCLI(t, "bans", "add", scope.String(), "--for", "60s", "--reason", "a whole host")
	if e, in := set()[scope]; !in || e.Timeout < 55 || e.Timeout > 60 {
		t.Errorf("after bans add %s --for 60s: kernel entry %+v (present %v) in %v, want the /64 with about 60 s", scope, e, in, set())
	}
	if !talk.cut(3 * time.Second) {
		t.Errorf("the established connection from the banned /64 still talks (%d round trips)", talk.rounds.Load())
	}
	for _, src := range []netip.Addr{first, second} {
		if got := dialFromAddr(cli, src, ssh); got != timedOut {
			t.Errorf("banned /64: new tcp %s from %s: %s, want timed out", ssh, src, got)
		}
	}
	expectDial(t, other, ssh, connected, "another LAN meanwhile")

	out, err := fw.cli("bans", "list")
	if err != nil {
		t.Fatalf("nfqfw bans list: %v: %s", err, out)
	}
	host6, _ := os.Hostname()
	var row string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, scope.String()+" ") {
			row = l
		}
	}
	if !strings.HasPrefix(out, "ADDRESS") || !strings.Contains(strings.Split(out, "\n")[0], "ORIGIN") ||
		!strings.Contains(row, "a whole host") || !strings.Contains(row, " manual ") || !strings.Contains(row, " "+host6+" ") {
		t.Errorf("bans list does not show %s, manual, with origin %s:\n%s", scope, host6, out)
	}
	resp := bansOf(t, fw)
	if len(resp.Bans) != 1 || resp.Bans[0].Scope != scope || resp.Bans[0].Origin != "" || resp.Gateway != host6 {
		t.Errorf("bans list --json: %+v, want one local ban of %s, gateway %s", resp, scope, host6)
	}

	// A restart keeps the prefix, its origin and its absolute expiry.
	before := resp.Bans[0]
	fw.stop()
	fw.start()
	resp = bansOf(t, fw)
	if len(resp.Bans) != 1 || resp.Bans[0].Scope != scope || resp.Bans[0].Origin != "" || !resp.Bans[0].Until.Equal(before.Until) || resp.Bans[0].Reason != "a whole host" {
		t.Errorf("bans list after a restart: %+v, want %+v", resp.Bans, before)
	}
	if got := dialFromAddr(cli, second, ssh); got != timedOut {
		t.Errorf("banned /64 after a restart: tcp %s from %s: %s, want timed out", ssh, second, got)
	}

	liftBan(t, fw, set, scope)
	for _, src := range []netip.Addr{first, second} {
		if got := dialFromAddr(cli, src, ssh); got != connected {
			t.Errorf("after bans del: tcp %s from %s: %s, want connected", ssh, src, got)
		}
	}
}

// TestGuardBansIPv6Prefix: the SSH guard's ban of an IPv6 offender lands
// as the offender's /64 in the kernel set, so another address of the same
// /64, which never offended, is dropped too; bans list names the guard.
func TestGuardBansIPv6Prefix(t *testing.T) {
	l := newSSHLab(t, lan2)
	sb, cli, host, other, ssh := l.sb, l.cli, l.host, l.other, l.ssh6
	offender := sb.Addr6(clientRole)
	sibling := addAddr6(t, sb, clientRole, netip.MustParseAddr("fd99:1::dead:beef"))
	scope := netip.MustParsePrefix("fd99:1::/64")
	fw := startFirewall(t, host, sshGuardConfig(t, sb, netip.MustParseAddr("192.0.2.10"), "{duration: 30s}"))
	set := func() map[netip.Prefix]banEntry { return banScopes(t, host, "nfqfw-bannet6") }

	for i := range 3 {
		if got := dialFromAddr(cli, offender, ssh); got != connected {
			t.Fatalf("connection %d within 10 s: %s, want connected", i+1, got)
		}
	}
	go dialFromAddr(cli, offender, ssh) // the 4th: refused, banned
	if _, ok := waitFor(3*time.Second, func() bool { _, in := set()[scope]; return in }); !ok {
		t.Fatalf("%s not in nfqfw-bannet6 3 s after the 4th SYN of %s:\n%s", scope, offender, host.MustExec("ipset", "list", "nfqfw-bannet6"))
	}
	if _, in := set()[netip.PrefixFrom(offender, 128)]; in {
		t.Errorf("the offender's single address is in the set next to its /64: %v", set())
	}
	if got := dialFromAddr(cli, sibling, ssh); got != timedOut {
		t.Errorf("another address of the banned /64 (%s): %s, want timed out", sibling, got)
	}
	expectDial(t, other, ssh, connected, "another LAN meanwhile")
	resp := bansOf(t, fw)
	if len(resp.Bans) != 1 || resp.Bans[0].Scope != scope || resp.Bans[0].Source != "ssh-bruteforce" {
		t.Errorf("bans list: %+v, want the /64 banned by ssh-bruteforce", resp.Bans)
	}
}

// TestLegacyBanSetAdopted: the hash:ip ban sets of a version whose bans
// were single addresses (nfqfw-ban4/6) are taken over at start: their
// entries become bans with the time the kernel had left (source "kernel"),
// move into the hash:net sets, and the old sets are destroyed.
func TestLegacyBanSetAdopted(t *testing.T) {
	l := newSSHLab(t)
	sb, cli, host := l.sb, l.cli, l.host
	offender4, offender6 := sb.Addr4(clientRole), sb.Addr6(clientRole)
	host.MustExec("ipset", "create", "nfqfw-ban4", "hash:ip", "family", "inet", "timeout", "0")
	host.MustExec("ipset", "create", "nfqfw-ban6", "hash:ip", "family", "inet6", "timeout", "0")
	host.MustExec("ipset", "add", "nfqfw-ban4", offender4.String(), "timeout", "300")
	host.MustExec("ipset", "add", "nfqfw-ban6", offender6.String(), "timeout", "300")
	fw := startFirewall(t, host, statefulConfig(sb, noGuardConfig))

	resp := bansOf(t, fw)
	for _, a := range []netip.Addr{offender4, offender6} {
		b, ok := banOf(resp, a)
		if left := time.Until(b.Until); !ok || b.Source != "kernel" || left < 4*time.Minute || left > 5*time.Minute {
			t.Errorf("ban of %s from the old set: %+v (found %v), want the kernel's with about 5 min left", a, b, ok)
		}
	}
	if _, ok := waitFor(3*time.Second, func() bool {
		_, in4 := banSet(t, host, "nfqfw-bannet4")[offender4]
		_, in6 := banSet(t, host, "nfqfw-bannet6")[offender6]
		return in4 && in6
	}); !ok {
		t.Errorf("the old sets' entries are not in the hash:net sets:\n%s", host.MustExec("ipset", "list"))
	}
	if out := strings.Fields(host.MustExec("ipset", "list", "-n")); slices.Contains(out, "nfqfw-ban4") || slices.Contains(out, "nfqfw-ban6") {
		t.Errorf("old ban sets left after the start: %q", out)
	}
	expectDial(t, cli, netip.AddrPortFrom(sb.Addr4(hostRole), 22), timedOut, "banned by the old set")
	expectDial(t, cli, netip.AddrPortFrom(sb.Addr6(hostRole), 22), timedOut, "banned by the old set")
}

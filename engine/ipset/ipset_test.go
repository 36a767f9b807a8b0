package ipset

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nfqfw/nfqfw/rules"
	"github.com/nfqfw/nfqfw/rules/iptables"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
	"github.com/vishvananda/netns"
)

// The sets of these tests are the kernel ruleset's ban sets.
const (
	Ban4 = iptables.BanSet4
	Ban6 = iptables.BanSet6
)

// banPair builds two namespaces joined by a veth pair: "fw" (10.200.0.1,
// fd00:99::1) holds the sets and the DROP rules, "peer" (10.200.0.2,
// fd00:99::2) pings it. It returns them and a Sets opened in fw.
func banPair(t *testing.T) (fw, peer *sandbox.Netns, sets *Sets) {
	t.Helper()
	sandbox.Require(t, "ipset", "iptables", "ip6tables")
	fw = sandbox.NewNetns(t, "ipset-fw")
	peer = sandbox.NewNetns(t, "ipset-peer")
	fw.MustExec("ip", "link", "add", "vfw", "type", "veth", "peer", "name", "vpeer", "netns", peer.Name)
	fw.MustExec("ip", "addr", "add", "10.200.0.1/24", "dev", "vfw")
	fw.MustExec("ip", "addr", "add", "fd00:99::1/64", "dev", "vfw", "nodad")
	fw.MustExec("ip", "link", "set", "vfw", "up")
	peer.MustExec("ip", "addr", "add", "10.200.0.2/24", "dev", "vpeer")
	peer.MustExec("ip", "addr", "add", "fd00:99::2/64", "dev", "vpeer", "nodad")
	peer.MustExec("ip", "link", "set", "vpeer", "up")
	sets, err := OpenAt(netns.NsHandle(fw.Handle()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sets.Close)
	return fw, peer, sets
}

// reachable pings dst from n a few times (bounded: 3 tries of 300 ms each)
// and reports whether any echo came back.
func reachable(n *sandbox.Netns, dst netip.Addr) bool {
	for range 3 {
		if n.Ping(dst, 1, 300*time.Millisecond) == nil {
			return true
		}
	}
	return false
}

func TestKernelBanSetBlocksAndExpires(t *testing.T) {
	fw, peer, sets := banPair(t)
	fw4, fw6 := netip.MustParseAddr("10.200.0.1"), netip.MustParseAddr("fd00:99::1")
	peer4, peer6 := netip.MustParsePrefix("10.200.0.2/32"), netip.MustParsePrefix("fd00:99::/64")

	for _, s := range []struct {
		name string
		fam  rules.Family
	}{{Ban4, rules.FamilyIPv4}, {Ban6, rules.FamilyIPv6}} {
		if err := sets.Ensure(s.name, s.fam, true); err != nil {
			t.Fatal(err)
		}
		if err := sets.Ensure(s.name, s.fam, true); err != nil {
			t.Fatalf("second Ensure of %s (idempotent): %v", s.name, err)
		}
	}
	if err := sets.Ensure(Ban4, rules.FamilyIPv4, false); !errors.Is(err, ErrSetMismatch) {
		t.Errorf("Ensure with other options = %v, want ErrSetMismatch", err)
	}
	fw.MustExec("iptables", "-w", "-A", "INPUT", "-m", "set", "--match-set", Ban4, "src", "-j", "DROP")
	fw.MustExec("ip6tables", "-w", "-A", "INPUT", "-m", "set", "--match-set", Ban6, "src", "-j", "DROP")

	if !reachable(peer, fw4) || !reachable(peer, fw6) {
		t.Fatal("peer cannot ping fw before any ban")
	}

	if err := sets.Add(Ban4, peer4, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := sets.Add(Ban6, peer6, 1500*time.Millisecond); err != nil { // rounded up to 2 s
		t.Fatal(err)
	}
	if err := sets.Add(Ban4, peer6, time.Second); !errors.Is(err, ErrFamily) {
		t.Errorf("adding an IPv6 address to %s = %v, want ErrFamily", Ban4, err)
	}

	// The ipset tool sees what netlink wrote.
	out := fw.MustExec("ipset", "list", Ban4)
	for _, want := range []string{"Type: hash:net", "timeout 0", "10.200.0.2 timeout "} {
		if !strings.Contains(out, want) {
			t.Errorf("ipset list %s lacks %q:\n%s", Ban4, want, out)
		}
	}
	for _, s := range []struct {
		name string
		want netip.Prefix
	}{{Ban4, peer4}, {Ban6, peer6}} {
		got, err := sets.List(s.name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Prefix != s.want || got[0].Timeout <= 0 || got[0].Timeout > 2*time.Second {
			t.Errorf("List(%s) = %+v, want %s with a timeout of at most 2s", s.name, got, s.want)
		}
	}

	if reachable(peer, fw4) {
		t.Error("banned peer can ping fw over IPv4")
	}
	if reachable(peer, fw6) {
		t.Error("banned peer can ping fw over IPv6")
	}

	// The kernel expires the entries by itself (bounded wait).
	deadline := time.Now().Add(6 * time.Second)
	for {
		e4, err4 := sets.List(Ban4)
		e6, err6 := sets.List(Ban6)
		if err4 != nil || err6 != nil {
			t.Fatal(err4, err6)
		}
		if len(e4) == 0 && len(e6) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("entries still there 6 s after a 2 s timeout: %+v %+v", e4, e6)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !reachable(peer, fw4) || !reachable(peer, fw6) {
		t.Error("peer still blocked after its entries expired")
	}

	// Del: a permanent entry goes, deleting again is not an error.
	if err := sets.Add(Ban4, peer4, 0); err != nil {
		t.Fatal(err)
	}
	got, _ := sets.List(Ban4)
	if diff := cmp.Diff([]Entry{{Prefix: peer4}}, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("permanent entry (-want +got):\n%s", diff)
	}
	for range 2 {
		if err := sets.Del(Ban4, peer4); err != nil {
			t.Errorf("Del: %v", err)
		}
	}
	if got, _ := sets.List(Ban4); len(got) != 0 {
		t.Errorf("List after Del = %+v, want empty", got)
	}

	// Destroy: refused while a rule uses the set, then gone.
	if err := sets.Destroy(Ban4); !errors.Is(err, ErrInUse) {
		t.Errorf("Destroy of a referenced set = %v, want ErrInUse", err)
	}
	fw.MustExec("iptables", "-w", "-D", "INPUT", "-m", "set", "--match-set", Ban4, "src", "-j", "DROP")
	fw.MustExec("ip6tables", "-w", "-D", "INPUT", "-m", "set", "--match-set", Ban6, "src", "-j", "DROP")
	for _, name := range []string{Ban4, Ban6, Ban4} {
		if err := sets.Destroy(name); err != nil {
			t.Errorf("Destroy(%s) = %v, want nil (a missing set is fine)", name, err)
		}
	}
	if _, err := sets.List(Ban4); !errors.Is(err, ErrNoSet) {
		t.Errorf("List of a destroyed set = %v, want ErrNoSet", err)
	}
	if err := sets.Add(Ban4, peer4, time.Second); !errors.Is(err, ErrNoSet) {
		t.Errorf("Add to a destroyed set = %v, want ErrNoSet", err)
	}
}

package sandbox

import (
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCheckLANs(t *testing.T) {
	v4 := netip.MustParsePrefix("10.99.3.0/24")
	v6 := netip.MustParsePrefix("fd99:3::/64")
	tests := []struct {
		name string
		lans []LAN
		ok   bool
	}{
		{name: "reference sandbox", lans: DefaultLANs, ok: true},
		{name: "IPv4-only LAN", lans: []LAN{{Role: "wan", V4: v4}}, ok: true},
		{name: "empty role", lans: []LAN{{V4: v4, V6: v6}}},
		{name: "role too long for a link name", lans: []LAN{{Role: "verylongrole", V4: v4}}},
		{name: "role gw is the gateway", lans: []LAN{{Role: Gateway, V4: v4}}},
		{name: "role twice", lans: []LAN{{Role: "a", V4: v4}, {Role: "a", V4: v4}}},
		{name: "no IPv4 subnet", lans: []LAN{{Role: "a", V6: v6}}},
		{name: "IPv6 prefix as V4", lans: []LAN{{Role: "a", V4: v6}}},
		{name: "IPv4 prefix as V6", lans: []LAN{{Role: "a", V4: v4, V6: v4}}},
		{name: "V4 too narrow for two hosts", lans: []LAN{{Role: "a", V4: netip.MustParsePrefix("10.0.0.0/31")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkLANs(tt.lans)
			if tt.ok != (err == nil) {
				t.Fatalf("checkLANs() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadLAN) {
				t.Errorf("checkLANs() = %v, want ErrBadLAN", err)
			}
		})
	}
}

func TestNth(t *testing.T) {
	p4 := netip.MustParsePrefix("10.99.1.0/24")
	p6 := netip.MustParsePrefix("fd99:1::/64")
	got := []netip.Addr{nth(p4, 1), nth(p4, 2), nth(p6, 1), nth(p6, 2), nth(netip.Prefix{}, 2)}
	want := []netip.Addr{
		netip.MustParseAddr("10.99.1.1"), netip.MustParseAddr("10.99.1.2"),
		netip.MustParseAddr("fd99:1::1"), netip.MustParseAddr("fd99:1::2"),
		{}, // no IPv6 prefix: no address
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("nth (-want +got):\n%s", diff)
	}
}

// TestSandbox builds the reference sandbox, pings the server from the
// client through the gateway over IPv4 and IPv6, and proves that cleanup
// removed the namespaces and stopped the background process.
func TestSandbox(t *testing.T) {
	Require(t)
	var names []string
	var proc *Proc
	t.Run("build and ping", func(t *testing.T) {
		s := New(t, Options{})
		for _, role := range []string{Gateway, "cli", "srv"} {
			names = append(names, s.Name(role))
		}
		if diff := cmp.Diff([]string{"cli", "srv"}, s.Roles()); diff != "" {
			t.Errorf("Roles() (-want +got):\n%s", diff)
		}
		for _, link := range []string{s.Link("cli"), s.GatewayLink("cli"), s.Link("srv"), s.GatewayLink("srv")} {
			if len(link) > 15 {
				t.Errorf("link name %q is longer than IFNAMSIZ-1", link)
			}
		}
		if !strings.HasPrefix(s.Name("gw"), "nfq-") {
			t.Errorf("Name(gw) = %q, want nfq-<pid>-<n>-gw", s.Name("gw"))
		}
		// Bounded: 3 echo requests per address, 2 s each at most.
		for _, dst := range []netip.Addr{s.Addr4("srv"), s.Addr6("srv"), s.GatewayAddr4("cli"), s.GatewayAddr6("srv")} {
			if err := s.NS("cli").Ping(dst, 3, 2*time.Second); err != nil {
				t.Errorf("from cli: %v", err)
			}
		}
		// A background process in srv, left running for cleanup to stop.
		proc = s.Start("srv", "sleep", "60")
		if err := proc.Wait(100 * time.Millisecond); !errors.Is(err, ErrStillRunning) {
			t.Fatalf("sleep exited early: %v: %s", err, proc.Output())
		}
	})
	if t.Failed() {
		return
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, n := range names {
		if strings.Contains(string(out), n) {
			t.Errorf("namespace %s still exists after cleanup", n)
		}
	}
	select {
	case <-proc.done:
	default:
		t.Errorf("background process %d still running after cleanup", proc.PID())
	}
}

// TestNetnsDo proves Do runs in the namespace and leaves the caller's
// thread where it was.
func TestNetnsDo(t *testing.T) {
	Require(t)
	n := NewNetns(t, "do")
	var links string
	err := n.Do(func() error {
		out, err := exec.Command("ip", "-o", "link").CombinedOutput()
		links = string(out)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(links, "\n"); got != 1 || !strings.Contains(links, "lo:") {
		t.Errorf("links seen inside the namespace = %q, want only lo", links)
	}
}

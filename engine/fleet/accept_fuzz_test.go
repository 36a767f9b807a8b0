package fleet

import (
	"net/netip"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/rules"
)

// FuzzAccept feeds the receive path arbitrary subjects and payloads: it
// never panics, and what it accepts is a valid decision of the gateway its
// subject names, not this one, outside the protected prefixes.
func FuzzAccept(f *testing.F) {
	good, _ := (&decision.Decision{Kind: decision.Ban, Scope: netip.MustParsePrefix("2001:db8::/64"),
		Issued: time.Unix(1700000000, 0), Expires: time.Unix(1900000000, 0), Origin: "gw-b", Source: "ssh", Reason: "r"}).Marshal()
	f.Add("nfqfw.S.ban.gw-b", good)
	f.Add("nfqfw.S.ban.gw-a", good)
	f.Add("nfqfw.S.unban.gw-b", good)
	recent, _ := (&decision.Decision{Kind: decision.Recent, Scope: netip.MustParsePrefix("192.0.2.10/32"),
		Issued: time.Unix(1700000000, 0), Expires: time.Unix(1900000000, 0), Origin: "gw-b", List: "portscan"}).Marshal()
	f.Add("nfqfw.S.recent.gw-b", recent)
	f.Add("nfqfw.S.", []byte{})
	f.Add("x", []byte{1, 1, 4, 32, 192, 0, 2, 10})
	l, err := New(Options{Config: rules.Fleet{Servers: []string{"nats://127.0.0.1:1"}, Gateway: "gw-a", Stream: "S"}})
	if err != nil {
		f.Fatal(err)
	}
	l.SetProtected([]netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")})
	now := time.Unix(1800000000, 0)
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		d, ok := l.accept(subject, data, now)
		if !ok {
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("accepted an invalid decision: %v", err)
		}
		if d.Origin == "gw-a" || l.Subject(d.Kind, d.Origin) != subject {
			t.Fatalf("accepted %v on %q", d, subject)
		}
		if d.Kind.Blocks() && d.Scope.Overlaps(netip.MustParsePrefix("192.0.2.10/32")) {
			t.Fatalf("accepted %v over a protected source", d)
		}
	})
}

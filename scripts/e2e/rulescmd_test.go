package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// TestRulesPipeIntoRestore: "nfqfw rules -family F" is, as its help and
// the README say, one input of iptables-restore (F ipv4) or
// ip6tables-restore (F ipv6): in a fresh namespace holding the ban sets,
// --test accepts it and a real restore installs nfqfw's chains and jumps.
func TestRulesPipeIntoRestore(t *testing.T) {
	requireSandbox(t, "ipset")
	t.Parallel()
	for _, example := range []string{"server.yaml", "nat-gateway.yaml"} {
		t.Run(example, func(t *testing.T) {
			ns := sandbox.NewNetns(t, "rules")
			ns.MustExec("ipset", "create", "nfqfw-bannet4", "hash:net", "family", "inet", "timeout", "0")
			ns.MustExec("ipset", "create", "nfqfw-bannet6", "hash:net", "family", "inet6", "timeout", "0")
			file := filepath.Join("..", "..", "rules", "examples", example)
			for _, f := range []struct{ family, restore, save string }{
				{"ipv4", "iptables-restore", "iptables-save"},
				{"ipv6", "ip6tables-restore", "ip6tables-save"},
			} {
				pipe := nfqfwBin + " rules -c " + file + " -family " + f.family + " | "
				if out, err := ns.Exec("bash", "-o", "pipefail", "-c", pipe+f.restore+" --test --noflush"); err != nil {
					t.Fatalf("%s --test refuses nfqfw rules -family %s: %v: %s", f.restore, f.family, err, out)
				}
				if out, err := ns.Exec("bash", "-o", "pipefail", "-c", pipe+f.restore+" --noflush"); err != nil {
					t.Fatalf("%s refuses nfqfw rules -family %s: %v: %s", f.restore, f.family, err, out)
				}
				// The fast path's first rule; with the FTP helper (as
				// nat-gateway.yaml) it leaves FTP control connections out.
				saved := ns.MustExec(f.save)
				for _, want := range []string{"-A INPUT -j NFQFW-INPUT", "-A FORWARD -j NFQFW-FORWARD", "-A NFQFW-INPUT -m conntrack --ctstate RELATED,ESTABLISHED "} {
					if !strings.Contains(saved, want) {
						t.Errorf("%s after the restore lacks %q:\n%s", f.save, want, saved)
					}
				}
			}
		})
	}
}

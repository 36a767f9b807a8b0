package iptables

import "github.com/nfqfw/nfqfw/rules"

// Backend names the binaries of one iptables flavour. DetectBackend fills
// it; its paths are absolute.
type Backend struct {
	Kind     rules.Backend // rules.BackendLegacy or rules.BackendNft
	Restore4 string        // iptables-*-restore
	Restore6 string        // ip6tables-*-restore
	Save4    string        // iptables-*-save
	Save6    string        // ip6tables-*-save

	// prefix runs every command through another one, e.g.
	// ip netns exec NAME; tests use it to stay inside their namespace.
	prefix []string
	// netns is the path of the network namespace prefix runs in
	// (/run/netns/NAME), for what is read over netlink rather than by a
	// command; empty with prefix, such reads are not made.
	netns string
}

// binaries returns the file names of kind's tools, in Backend field order.
func binaries(kind rules.Backend) []string {
	k := string(kind)
	return []string{"iptables-" + k + "-restore", "ip6tables-" + k + "-restore", "iptables-" + k + "-save", "ip6tables-" + k + "-save"}
}

// restore returns the restore binary of family fam.
func (b Backend) restore(fam rules.Family) string {
	if fam == rules.FamilyIPv6 {
		return b.Restore6
	}
	return b.Restore4
}

// save returns the save binary of family fam.
func (b Backend) save(fam rules.Family) string {
	if fam == rules.FamilyIPv6 {
		return b.Save6
	}
	return b.Save4
}

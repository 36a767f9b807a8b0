package iptables

import (
	"sync"

	"github.com/nfqfw/nfqfw/rules"
)

// Installer installs, replaces and removes nfqfw's kernel ruleset in the
// network namespace the process runs in. Its methods may be called from
// any goroutine; they are serialised.
type Installer struct {
	b Backend

	mu   sync.Mutex
	next *rules.Config // what Install installs
	cur  *rules.Config // what is installed, nil when nothing is

	// The nf_tables generation at the last Check that found the ruleset
	// in place (nft backend): a Check at the same generation has nothing
	// new to read. Every apply clears it.
	gen     genReader
	checked uint32
	valid   bool
	saves   int // iptables-save runs by Check, for tests
}

// NewInstaller returns an Installer that will install c with backend b.
// Nothing is touched before Install.
func NewInstaller(c *rules.Config, b Backend) *Installer {
	return &Installer{b: b, next: c, gen: genReader{netns: b.netns}}
}

// families returns the families an Installer acts on, IPv4 first.
var families = []rules.Family{rules.FamilyIPv4, rules.FamilyIPv6}

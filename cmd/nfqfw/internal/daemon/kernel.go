package daemon

// The kernel boundary: everything the daemon asks of the kernel goes
// through kernel, so the daemon's logic (start, reload, confirm and
// rollback, the failure policy) runs in tests without root against a fake
// (Options.kernel). hostKernel is the real one.

import (
	"context"
	"net/netip"
	"time"

	"github.com/nfqfw/nfqfw/engine/ctnl"
	"github.com/nfqfw/nfqfw/engine/ipset"
	"github.com/nfqfw/nfqfw/engine/nfq"
	"github.com/nfqfw/nfqfw/rules"
	"github.com/nfqfw/nfqfw/rules/iptables"
)

// kernel is the daemon's view of the kernel.
type kernel interface {
	// lockDir is where the network namespace's instance lock lives.
	lockDir() string
	// ruleset detects the iptables backend cfg asks for and returns an
	// installer of cfg's ruleset with it (nothing installed yet), and the
	// backend's name.
	ruleset(cfg *rules.Config) (ruleset, string, error)
	// openQueue binds a queue whose packets go to d.
	openQueue(c nfq.Config, d nfq.Decider) (queue, error)
	// banSets opens the ipset interface.
	banSets() (banSets, error)
	// flows dumps the kernel's conntrack table.
	flows(ctx context.Context) ([]ctnl.Event, error)
	// deleteFlows deletes the conntrack entries of the sources in p.
	deleteFlows(ctx context.Context, p netip.Prefix) (int, error)
	// listen subscribes to conntrack events (nil from a fake); they queue
	// in the follower's socket until follow reads them.
	listen(o ctnl.Options) (*ctnl.Follower, error)
	// follow follows conntrack events with f, or with a follower it opens
	// when f is nil, until ctx ends; started is called with the follower
	// once it listens (nil from a fake).
	follow(ctx context.Context, f *ctnl.Follower, o ctnl.Options, started func(*ctnl.Follower), fn func(ctnl.Event)) error
}

// ruleset installs, replaces, checks and removes the kernel ruleset
// (iptables.Installer).
type ruleset interface {
	Install(ctx context.Context) error
	Replace(ctx context.Context, c *rules.Config) error
	Remove(ctx context.Context) error
	Check(ctx context.Context) (map[rules.Family]string, error)
	Reinstall(ctx context.Context, fams ...rules.Family) error
}

// queue is one bound NFQUEUE (nfq.Reader).
type queue interface {
	Run(ctx context.Context) error
	Close() error
	SetFailureAccept(accept bool)
	Stats() nfq.Stats
	Deciding() time.Duration
}

// banSets are the kernel's ipsets (ipset.Sets).
type banSets interface {
	Ensure(name string, fam rules.Family, timeout bool) error
	EnsureSized(name string, fam rules.Family, timeout bool, maxElem uint32) error
	Exists(name string) (bool, error)
	List(name string) ([]ipset.Entry, error)
	Add(name string, p netip.Prefix, timeout time.Duration) error
	AddMany(name string, entries []ipset.Entry) error
	Del(name string, p netip.Prefix) error
	Destroy(name string) error
	Close()
}

// defaultKernel is the kernel Run works on unless Options say otherwise:
// the host's (a build with the nfqfw_fault tag wraps it, see
// fault_queue.go).
var defaultKernel kernel = hostKernel{}

// hostKernel is the kernel of the network namespace the process runs in.
type hostKernel struct{}

func (hostKernel) lockDir() string { return "/run" }

func (hostKernel) ruleset(cfg *rules.Config) (ruleset, string, error) {
	b, err := iptables.DetectBackend(cfg.Backend)
	if err != nil {
		return nil, "", err
	}
	return iptables.NewInstaller(cfg, b), string(b.Kind), nil
}

func (hostKernel) openQueue(c nfq.Config, d nfq.Decider) (queue, error) {
	r, err := nfq.Open(c, d)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (hostKernel) banSets() (banSets, error) {
	s, err := ipset.Open()
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return s, nil
}

func (hostKernel) flows(ctx context.Context) ([]ctnl.Event, error) {
	return ctnl.Dump(ctx, ctnl.Options{})
}

func (hostKernel) deleteFlows(ctx context.Context, p netip.Prefix) (int, error) {
	return ctnl.DeleteByPrefix(ctx, ctnl.Options{}, p)
}

func (hostKernel) listen(o ctnl.Options) (*ctnl.Follower, error) { return ctnl.Listen(o) }

func (hostKernel) follow(ctx context.Context, f *ctnl.Follower, o ctnl.Options, started func(*ctnl.Follower), fn func(ctnl.Event)) error {
	if f == nil {
		var err error
		if f, err = ctnl.Listen(o); err != nil {
			return err
		}
	}
	started(f)
	defer f.Close()
	return f.Run(ctx, fn)
}

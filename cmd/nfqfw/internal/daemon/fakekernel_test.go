package daemon

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/engine/ctnl"
	"github.com/nfqfw/nfqfw/engine/ipset"
	"github.com/nfqfw/nfqfw/engine/nfq"
	"github.com/nfqfw/nfqfw/rules"
)

// fakeKernel stands in for the kernel: a ruleset that records what is
// installed, queues whose packets the test hands to the daemon's
// deciders, ban sets in maps, an empty conntrack table. Safe for
// concurrent use.
type fakeKernel struct {
	dir string // lock directory

	mu         sync.Mutex
	installed  *rules.Config // the ruleset in the "kernel"; nil: none
	installs   int
	replaces   int
	removes    int
	replaceErr error // the next Replace fails with it
	queues     []*fakeQueue
	sets       map[string]map[netip.Prefix]time.Duration
	followErr  error // follow fails with it at once (an auxiliary subsystem's failure)
	flowsErr   error // reading the conntrack table fails with it
}

func newFakeKernel(dir string) *fakeKernel {
	return &fakeKernel{dir: dir, sets: map[string]map[netip.Prefix]time.Duration{}}
}

func (k *fakeKernel) lockDir() string { return k.dir }

func (k *fakeKernel) ruleset(cfg *rules.Config) (ruleset, string, error) {
	return &fakeRuleset{k: k, next: cfg}, "fake", nil
}

func (k *fakeKernel) openQueue(c nfq.Config, d nfq.Decider) (queue, error) {
	q := &fakeQueue{cfg: c, dec: d, fail: make(chan error, 1)}
	q.failAccept.Store(c.FailureAccept)
	k.mu.Lock()
	k.queues = append(k.queues, q)
	k.mu.Unlock()
	return q, nil
}

func (k *fakeKernel) banSets() (banSets, error) { return fakeSets{k}, nil }

func (k *fakeKernel) flows(context.Context) ([]ctnl.Event, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return nil, k.flowsErr
}

func (k *fakeKernel) deleteFlows(context.Context, netip.Prefix) (int, error) { return 0, nil }

func (k *fakeKernel) listen(ctnl.Options) (*ctnl.Follower, error) { return nil, nil }

func (k *fakeKernel) follow(ctx context.Context, _ *ctnl.Follower, _ ctnl.Options, _ func(*ctnl.Follower), _ func(ctnl.Event)) error {
	k.mu.Lock()
	err := k.followErr
	k.mu.Unlock()
	if err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// state returns what the fake kernel holds.
func (k *fakeKernel) state() (installed *rules.Config, installs, replaces, removes int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.installed, k.installs, k.replaces, k.removes
}

// queue returns the i-th queue opened.
func (k *fakeKernel) queue(i int) *fakeQueue {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.queues[i]
}

// fakeRuleset is an iptables.Installer over fakeKernel.
type fakeRuleset struct {
	k    *fakeKernel
	next *rules.Config
}

func (r *fakeRuleset) Install(context.Context) error {
	r.k.mu.Lock()
	defer r.k.mu.Unlock()
	r.k.installed, r.k.installs = r.next, r.k.installs+1
	return nil
}

func (r *fakeRuleset) Replace(_ context.Context, c *rules.Config) error {
	r.k.mu.Lock()
	defer r.k.mu.Unlock()
	if err := r.k.replaceErr; err != nil {
		r.k.replaceErr = nil
		return err
	}
	r.k.installed, r.k.replaces = c, r.k.replaces+1
	return nil
}

func (r *fakeRuleset) Remove(context.Context) error {
	r.k.mu.Lock()
	defer r.k.mu.Unlock()
	r.k.installed, r.k.removes = nil, r.k.removes+1
	return nil
}

func (r *fakeRuleset) Check(context.Context) (map[rules.Family]string, error) { return nil, nil }

func (r *fakeRuleset) Reinstall(context.Context, ...rules.Family) error { return nil }

// fakeQueue is a bound queue: decide hands a packet to the daemon's
// decider as the reader's receive goroutine would; failWith makes Run
// return an error, as a reader whose socket broke.
type fakeQueue struct {
	cfg        nfq.Config
	dec        nfq.Decider
	fail       chan error
	failAccept atomic.Bool
}

func (q *fakeQueue) decide(pkt []byte, m nfq.Meta) nfq.Verdict { return q.dec.Decide(pkt, m) }

func (q *fakeQueue) failWith(err error) { q.fail <- err }

func (q *fakeQueue) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-q.fail:
		return err
	}
}

func (q *fakeQueue) Close() error                 { return nil }
func (q *fakeQueue) SetFailureAccept(accept bool) { q.failAccept.Store(accept) }
func (q *fakeQueue) Stats() nfq.Stats             { return nfq.Stats{} }
func (q *fakeQueue) Deciding() time.Duration      { return 0 }

// fakeSets are ipsets in the fake kernel's maps.
type fakeSets struct{ k *fakeKernel }

var errNoSet = ipset.ErrNoSet

func (s fakeSets) Ensure(name string, _ rules.Family, _ bool) error {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	if s.k.sets[name] == nil {
		s.k.sets[name] = map[netip.Prefix]time.Duration{}
	}
	return nil
}

func (s fakeSets) EnsureSized(name string, fam rules.Family, timeout bool, _ uint32) error {
	return s.Ensure(name, fam, timeout)
}

func (s fakeSets) Exists(name string) (bool, error) {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	return s.k.sets[name] != nil, nil
}

func (s fakeSets) List(name string) ([]ipset.Entry, error) {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	set := s.k.sets[name]
	if set == nil {
		return nil, errNoSet
	}
	var out []ipset.Entry
	for a, d := range set {
		out = append(out, ipset.Entry{Prefix: a, Timeout: d})
	}
	return out, nil
}

func (s fakeSets) Add(name string, p netip.Prefix, d time.Duration) error {
	return s.AddMany(name, []ipset.Entry{{Prefix: p, Timeout: d}})
}

func (s fakeSets) AddMany(name string, es []ipset.Entry) error {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	set := s.k.sets[name]
	if set == nil {
		return errNoSet
	}
	for _, e := range es {
		set[e.Prefix] = e.Timeout
	}
	return nil
}

func (s fakeSets) Del(name string, p netip.Prefix) error {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	delete(s.k.sets[name], p)
	return nil
}

func (s fakeSets) Destroy(name string) error {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	delete(s.k.sets, name)
	return nil
}

func (s fakeSets) Close() {}

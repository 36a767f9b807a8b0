package daemon

import (
	"context"
	"net/netip"
	"time"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/ctnl"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// conntrackOptions are the event follower's: new flows are the engine's
// own decisions: it needs their replies, assurance and destruction, not
// their creation. A backup gateway's new flows are the exception:
// conntrackd injects the primary's, and they are adopted as they appear
// (see haAction).
func (d *Daemon) conntrackOptions() ctnl.Options {
	return ctnl.Options{Logger: d.log, Resync: d.resync, SkipNew: true}
}

// listenConntrack subscribes to conntrack's events before the ruleset is
// installed and the first packet is decided. The kernel (with the default
// net.netfilter.nf_conntrack_events=2) gives a flow its event cache only
// while somebody listens, and a CT --ctevents template (flows.kernel_events
// minimal) its event mask only if somebody listened when the rule was
// made: a flow admitted before the follower listens, or a template made
// before it, would report every event or none, for good. A failure is
// left to followConntrack, which opens its own follower and is
// supervised.
func (d *Daemon) listenConntrack() {
	f, err := d.k.listen(d.conntrackOptions())
	if err != nil {
		// The follower retries under supervision (health, metrics); a
		// minimal template made meanwhile keeps no mask until a reload.
		d.log.Warn("conntrack events: subscribing before the ruleset is installed failed; the follower retries, and flows.kernel_events minimal takes effect only at a reload after it listens", "err", err)
		return
	}
	d.ctEarly.Store(f)
}

// followConntrack keeps the engine's flow table in step with the kernel's:
// an admitted flow becomes ESTABLISHED/ASSURED when the kernel says so and
// is forgotten when the kernel forgets it. Its first run reads the events
// the follower of listenConntrack queued since the start.
func (d *Daemon) followConntrack(ctx context.Context) error {
	started := func(f *ctnl.Follower) {
		d.obs.setConntrack(f)
		d.followNew(f)
	}
	return d.k.follow(ctx, d.ctEarly.Swap(nil), d.conntrackOptions(), started, d.conntrackEvent)
}

// keysOf returns the flow keys an event may be tracked under: its original
// tuple, and the mirror of its reply tuple (which differs under NAT: the
// engine saw a forwarded flow after DNAT).
func keysOf(ev *ctnl.Event) (engine.FlowKey, engine.FlowKey, bool) {
	k1, _ := engine.KeyOfTuple(ev.Proto, netip.AddrPortFrom(ev.Src, ev.SPort), netip.AddrPortFrom(ev.Dst, ev.DPort))
	if !ev.ReplySrc.IsValid() {
		return k1, k1, false
	}
	k2, _ := engine.KeyOfTuple(ev.Proto, netip.AddrPortFrom(ev.ReplyDst, ev.ReplyDPort), netip.AddrPortFrom(ev.ReplySrc, ev.ReplySPort))
	return k1, k2, k1 != k2
}

func (d *Daemon) conntrackEvent(ev ctnl.Event) {
	t := d.eng.Flows()
	now := clock.Now()
	k1, k2, two := keysOf(&ev)
	switch ev.Type {
	case ctnl.EventDestroy:
		if !t.Delete(k1) && two {
			t.Delete(k2)
		}
	case ctnl.EventNew, ctnl.EventUpdate, ctnl.EventDump:
		if ev.Type == ctnl.EventNew && d.haRole() == roleBackup {
			d.adoptNew(&ev)
		}
		u := engine.FlowUpdate{
			TCPState: engine.TCPState(ev.TCPState),
			Replied:  ev.SeenReply,
			Assured:  ev.Assured,
			Timeout:  time.Duration(ev.Timeout) * time.Second,
		}
		switch {
		case ev.TCPState > uint8(engine.TCPClose):
			u.TCPState = engine.TCPNone
		case ev.Proto == 6 && ev.Assured && ev.TCPState == 0:
			// With flows.kernel_events minimal the kernel sends no TCP
			// state; a TCP flow becomes assured when its handshake
			// completes.
			u.TCPState = engine.TCPEstablished
		}
		if !t.Update(k1, u, now) && two {
			t.Update(k2, u, now)
		}
		if ev.Proto == 6 && (ev.Assured || ev.TCPState == ctnl.TCPStateEstablished) {
			// A completed handshake: the source is not spoofed, and
			// the guards keep it ahead of SYN-only sources.
			d.currentState().guards.Confirm(ev.Src.As16())
		}
	}
}

// resync is called with the whole kernel table after events were lost:
// flows the engine tracks that the kernel no longer has are removed, and
// flows it does not track are adopted where the policy admits them.
func (d *Daemon) resync(table []ctnl.Event) {
	live := make(map[engine.FlowKey]bool, 2*len(table))
	for i := range table {
		k1, k2, _ := keysOf(&table[i])
		live[k1], live[k2] = true, true
		d.conntrackEvent(table[i])
	}
	d.adopt(table)
	var gone []engine.FlowKey
	d.eng.Flows().Walk(func(fi engine.FlowInfo) bool {
		if !live[fi.Key] {
			gone = append(gone, fi.Key)
		}
		return true
	})
	for _, k := range gone {
		d.eng.Flows().Delete(k)
	}
}

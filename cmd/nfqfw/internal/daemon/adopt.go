package daemon

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/ctnl"
	"github.com/nfqfw/nfqfw/rules"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// adoptTimeout bounds the conntrack dump of adoptKernelFlows.
const adoptTimeout = 10 * time.Second

// adoptKernelFlows learns the flows the kernel already tracks (the daemon
// was restarted, crashed, or started after them) and takes those the
// running policy admits as admitted, so that their packets that still reach
// the queue (FTP control connections) continue instead of being INVALID. It
// runs before the queue readers decide anything. A failure is logged: the
// packet path works without it (mid-stream pickup decides those packets).
func (d *Daemon) adoptKernelFlows(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, adoptTimeout)
	defer cancel()
	flows, err := d.k.flows(ctx)
	if err != nil {
		d.log.Warn("read the kernel's flows to adopt them", "err", err)
		return
	}
	n := d.adopt(flows)
	d.log.Info("kernel flows adopted", "flows", len(flows), "admitted", n[engine.AdoptAdmitted],
		"refused_by_policy", n[engine.AdoptRefused], "skipped", n[engine.AdoptSkipped])
}

// adopt gives each kernel flow to the engine's Adopt and counts the
// results.
func (d *Daemon) adopt(flows []ctnl.Event) map[engine.AdoptResult]int {
	n := map[engine.AdoptResult]int{}
	routes := routeCache{}
	for i := range flows {
		n[d.adoptOne(&flows[i], routes)]++
	}
	return n
}

// adoptOne gives one kernel flow to the engine's Adopt, looking its
// addresses up in routes.
func (d *Daemon) adoptOne(ev *ctnl.Event, routes routeCache) engine.AdoptResult {
	f, ok := kernelFlow(ev, routes)
	if !ok {
		return engine.AdoptSkipped
	}
	return d.eng.Adopt(f, clock.Now())
}

// kernelFlow describes ev as the engine would have seen its first packet:
// the source before SNAT, the destination after DNAT (the reply tuple's
// source), the hook and the interfaces found by route lookups.
func kernelFlow(ev *ctnl.Event, routes routeCache) (engine.KernelFlow, bool) {
	if !ev.Src.IsValid() || !ev.ReplySrc.IsValid() {
		return engine.KernelFlow{}, false
	}
	f := engine.KernelFlow{
		Proto:    ev.Proto,
		Src:      netip.AddrPortFrom(ev.Src.Unmap(), ev.SPort),
		Dst:      netip.AddrPortFrom(ev.ReplySrc.Unmap(), ev.ReplySPort),
		Replied:  ev.SeenReply,
		Assured:  ev.Assured,
		Timeout:  time.Duration(ev.Timeout) * time.Second,
		TCPState: engine.TCPState(ev.TCPState),
	}
	if ev.TCPState > uint8(engine.TCPClose) {
		f.TCPState = engine.TCPNone
	}
	if ev.Proto == unix.IPPROTO_ICMP || ev.Proto == unix.IPPROTO_ICMPV6 {
		// The ports carry the echo identifier and type<<8|code.
		f.Dst = netip.AddrPortFrom(f.Dst.Addr(), 0)
		f.ICMPType, f.ICMPCode = uint8(ev.DPort>>8), uint8(ev.DPort)
	}
	src, dst := routes.get(f.Src.Addr()), routes.get(f.Dst.Addr())
	switch {
	case src.local:
		f.Hook, f.OutIf = rules.HookOutput, dst.link
	case dst.local:
		f.Hook, f.InIf = rules.HookInput, src.link
	default:
		f.Hook, f.InIf, f.OutIf = rules.HookForward, src.link, dst.link
	}
	return f, true
}

// route is what a route lookup says about an address: whether it is one
// of the host's own, and the interface toward it.
type route struct {
	local bool
	link  uint32
}

// routeCache memoizes route lookups during one adoption.
type routeCache map[netip.Addr]route

func (c routeCache) get(a netip.Addr) route {
	if r, ok := c[a]; ok {
		return r
	}
	var r route
	if rs, err := netlink.RouteGet(net.IP(a.AsSlice())); err == nil && len(rs) > 0 {
		r = route{local: rs[0].Type == unix.RTN_LOCAL, link: uint32(rs[0].LinkIndex)}
	}
	c[a] = r
	return r
}

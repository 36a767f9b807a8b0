package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/ctnl"
	"github.com/nfqfw/nfqfw/rules"
)

// ErrLockout refuses a start or a reload whose policy would refuse a new
// connection of a management session (see lockout).
var ErrLockout = errors.New("the new policy would lock a management connection out")

// sshPort is the port whose established inbound connections count as
// management sessions, besides the port of the invoking SSH_CONNECTION.
const sshPort = 22

// mgmtFlow is a management session as the new connection its client would
// open next, and where it was found.
type mgmtFlow struct {
	flow   engine.Flow
	origin string // "SSH_CONNECTION", "established connection"
}

// lockout explains, against pol and its matchers m, a new connection from
// the client of each management session to the same port: the invoking
// shell's SSH connection (sshConn, as SSH_CONNECTION reads: client-ip
// client-port server-ip server-port), and the established inbound TCP
// connections to the host's ssh ports in the kernel's conntrack table. A
// refused one refuses the change, naming the rule or chain policy that
// would refuse it. Sessions to an address that is not the host's (the
// daemon runs in another network namespace) are not this host's.
func lockout(ctx context.Context, log *slog.Logger, pol *rules.Policy, m *engine.Matchers, sshConn string,
	dump func(context.Context) ([]ctnl.Event, error)) error {
	flows, err := managementFlows(ctx, sshConn, dump)
	if err != nil {
		log.Warn("management connections not all checked", "err", err)
	}
	for _, mf := range flows {
		x := engine.Explain(pol, m, mf.flow)
		if x.Refused() {
			return fmt.Errorf("%w: a new connection from %s to port %d (%s) would get %s by %s; run with --force to apply it anyway",
				ErrLockout, mf.flow.Src, mf.flow.DstPort, mf.origin, x.Action, x.Decider())
		}
	}
	return nil
}

// managementFlows finds the management sessions. A conntrack table that
// cannot be read is returned as an error along with what was found.
func managementFlows(ctx context.Context, sshConn string, dump func(context.Context) ([]ctnl.Event, error)) ([]mgmtFlow, error) {
	routes := routeCache{}
	var out []mgmtFlow
	ports := map[uint16]bool{sshPort: true}
	if f, ok := parseSSHConnection(sshConn); ok {
		if iface, local := inboundIface(routes, f.Src, f.Dst); local {
			f.InIface = iface
			out = append(out, mgmtFlow{flow: f, origin: "SSH_CONNECTION"})
			ports[f.DstPort] = true
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	evs, err := dump(ctx)
	if err != nil {
		return out, fmt.Errorf("read the kernel's flows for management connections: %w", err)
	}
	seen := map[netip.AddrPort]bool{}
	for _, ev := range evs {
		if ev.Proto != 6 || ev.TCPState != ctnl.TCPStateEstablished || !ev.Src.IsValid() || !ev.ReplySrc.IsValid() {
			continue
		}
		dst := netip.AddrPortFrom(ev.ReplySrc.Unmap(), ev.ReplySPort) // after DNAT
		if !ports[dst.Port()] {
			continue
		}
		src := ev.Src.Unmap()
		iface, local := inboundIface(routes, src, dst.Addr())
		if !local || seen[netip.AddrPortFrom(src, dst.Port())] {
			continue
		}
		seen[netip.AddrPortFrom(src, dst.Port())] = true
		out = append(out, mgmtFlow{origin: "established connection", flow: engine.Flow{Hook: rules.HookInput, Proto: 6,
			Src: src, SrcPort: ev.SPort, Dst: dst.Addr(), DstPort: dst.Port(), InIface: iface}})
	}
	return out, nil
}

// parseSSHConnection reads SSH_CONNECTION: "client-ip client-port
// server-ip server-port".
func parseSSHConnection(s string) (engine.Flow, bool) {
	fs := strings.Fields(s)
	if len(fs) != 4 {
		return engine.Flow{}, false
	}
	src, err1 := netip.ParseAddr(fs[0])
	sport, err2 := strconv.ParseUint(fs[1], 10, 16)
	dst, err3 := netip.ParseAddr(fs[2])
	dport, err4 := strconv.ParseUint(fs[3], 10, 16)
	if err := errors.Join(err1, err2, err3, err4); err != nil || src.Unmap().Is4() != dst.Unmap().Is4() {
		return engine.Flow{}, false
	}
	return engine.Flow{Hook: rules.HookInput, Proto: 6, Src: src.Unmap(), SrcPort: uint16(sport),
		Dst: dst.Unmap(), DstPort: uint16(dport)}, true
}

// inboundIface reports whether dst is one of the host's addresses and the
// interface a packet from src arrives on (the one toward src).
func inboundIface(routes routeCache, src, dst netip.Addr) (string, bool) {
	if !routes.get(dst).local {
		return "", false
	}
	r := routes.get(src)
	if r.link == 0 {
		return "", true
	}
	ifc, err := net.InterfaceByIndex(int(r.link))
	if err != nil {
		return "", true
	}
	return ifc.Name, true
}

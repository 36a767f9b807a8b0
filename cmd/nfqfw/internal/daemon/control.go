package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/rules"
)

var errNothingToConfirm = errors.New("no change is waiting for confirmation")

// CheckState refuses a filter that names no protocol or state: "--state bogus"
// would match nothing and look like an empty table. The error names the
// valid values.
func CheckState(r control.StateRequest) error {
	if r.Proto != "" {
		p := strings.ToLower(r.Proto)
		var names []string
		for n := 0; n < 256; n++ {
			if name := engine.ProtoName(uint8(n)); name != "unknown" {
				names = append(names, name)
				if p == name {
					return nil
				}
			}
		}
		if n, err := strconv.ParseUint(p, 10, 8); err != nil || fmt.Sprint(n) != p {
			return fmt.Errorf("proto %q: want %s or a number 0-255", r.Proto, strings.Join(names, ", "))
		}
	}
	if r.Addr != "" {
		if _, err := netip.ParseAddr(r.Addr); err != nil {
			return fmt.Errorf("addr %q: not an IPv4 or IPv6 address", r.Addr)
		}
	}
	if r.State != "" {
		names := []string{"UNREPLIED", "ASSURED", "RELATED"}
		for s := engine.TCPSynSent; s < engine.NumTCPStates; s++ {
			names = append(names, s.String())
		}
		if !slices.Contains(names, strings.ToUpper(r.State)) {
			return fmt.Errorf("state %q: want one of %s", r.State, strings.Join(names, ", "))
		}
	}
	if r.Limit < 0 {
		return fmt.Errorf("limit %d: want 0 (all) or more", r.Limit)
	}
	return nil
}

func (d *Daemon) registerControl(s *control.Server) {
	s.Handle("status", func(context.Context, json.RawMessage) (any, error) {
		d.mu.Lock()
		cfg := d.cfg
		d.mu.Unlock()
		r := control.StatusResponse{Version: d.opts.Version, PID: os.Getpid(), Config: cfg.File, ConfigHash: d.eng.Policy().Hash(),
			Started: d.start, Flows: d.eng.Flows().Len(), Problems: d.health.list(), Warnings: d.health.warnings(), Fleet: d.fleet.status()}
		if role := d.haRole(); role != roleStandalone {
			r.HARole = role
		}
		for _, q := range d.queues {
			r.Queues = append(r.Queues, q.num)
		}
		if e := d.currentState().shared.saves.lastErr.Load(); e != nil {
			r.StateSaveError = *e
		}
		return r, nil
	})
	s.Handle("reload", func(ctx context.Context, args json.RawMessage) (any, error) {
		var req control.ReloadRequest
		if len(args) > 0 {
			if err := json.Unmarshal(args, &req); err != nil {
				return nil, fmt.Errorf("reload: %w", err)
			}
		}
		var confirm time.Duration
		if req.Confirm != "" {
			c, err := time.ParseDuration(req.Confirm)
			if err != nil || c <= 0 {
				return nil, fmt.Errorf("reload: confirm %q: want a positive duration", req.Confirm)
			}
			confirm = c
		}
		if err := d.ReloadWith(ctx, ReloadOptions{Confirm: confirm, SSHConnection: req.SSHConnection, Force: req.Force}); err != nil {
			return nil, err
		}
		return map[string]string{"hash": d.eng.Policy().Hash()}, nil
	})
	s.Handle(control.CmdExplain, func(_ context.Context, args json.RawMessage) (any, error) {
		var req control.ExplainRequest
		if err := json.Unmarshal(args, &req); err != nil {
			return nil, fmt.Errorf("explain: %w", err)
		}
		if !req.Flow.Src.IsValid() || !req.Flow.Dst.IsValid() {
			return nil, errors.New("explain: the flow needs a source and a destination")
		}
		return d.eng.Explain(req.Flow), nil
	})
	s.Handle("restart", func(context.Context, json.RawMessage) (any, error) {
		d.restart()
		return map[string]bool{"exiting": true}, nil
	})
	s.Handle(control.CmdTrace, func(ctx context.Context, args json.RawMessage) (any, error) {
		var req control.TraceRequest
		if len(args) > 0 {
			if err := json.Unmarshal(args, &req); err != nil {
				return nil, fmt.Errorf("trace: %w", err)
			}
		}
		return d.trace(ctx, req)
	})
	s.Handle("confirm", func(context.Context, json.RawMessage) (any, error) {
		if !d.Confirm() {
			return nil, errNothingToConfirm
		}
		return map[string]bool{"confirmed": true}, nil
	})
	s.Handle(control.CmdHA, d.haAction)
	s.Handle("state", func(_ context.Context, args json.RawMessage) (any, error) {
		var req control.StateRequest
		if len(args) > 0 {
			if err := json.Unmarshal(args, &req); err != nil {
				return nil, fmt.Errorf("state: %w", err)
			}
		}
		return d.stateView(req)
	})
	for name, h := range d.state.controlHandlers(d.currentState) {
		if name == control.CmdAddBan {
			h = d.obs.countManualBan(d.refuseAllowlisted(h))
		}
		s.Handle(name, h)
	}
}

// refuseAllowlisted wraps the manual ban handler: a scope inside the
// management allowlist is never banned (the kernel would accept it first
// anyway, so such a ban would only be a lie in "nfqfw bans list"). A wider
// prefix that merely contains allowlisted addresses is banned: they stay
// admitted, the kernel accepting them before the ban sets.
func (d *Daemon) refuseAllowlisted(h control.Handler) control.Handler {
	return func(ctx context.Context, args json.RawMessage) (any, error) {
		var req control.AddBanRequest
		if err := json.Unmarshal(args, &req); err == nil && req.Target().IsValid() {
			scope, _ := decision.Canonical(req.Target())
			d.mu.Lock()
			allow := d.cfg.Allowlist
			d.mu.Unlock()
			for _, p := range allow {
				if p.Bits() <= scope.Bits() && p.Contains(scope.Addr()) {
					return nil, fmt.Errorf("%s is in the management allowlist (%s): it is never banned", scope, p)
				}
			}
		}
		return h(ctx, args)
	}
}

func (d *Daemon) stateView(req control.StateRequest) (*control.StateResponse, error) {
	if err := CheckState(req); err != nil {
		return nil, err
	}
	var addr netip.Addr
	if req.Addr != "" {
		addr = netip.MustParseAddr(req.Addr).Unmap()
	}
	proto := strings.ToLower(req.Proto)
	state := strings.ToUpper(req.State)
	pol := d.eng.Policy()
	resp := &control.StateResponse{ByState: map[string]int{}, Max: d.eng.Flows().Max(), Flows: []control.StateFlow{}}
	d.eng.Flows().Walk(func(fi engine.FlowInfo) bool {
		resp.Total++
		f := stateFlow(fi, pol)
		resp.ByState[f.Proto+" "+stateLabel(f)]++
		if !matches(&f, fi, proto, addr, req.Port, state) {
			return true
		}
		resp.Matched++
		if req.Limit == 0 || len(resp.Flows) < req.Limit {
			resp.Flows = append(resp.Flows, f)
		}
		return true
	})
	sort.Slice(resp.Flows, func(i, j int) bool { return resp.Flows[i].Line < resp.Flows[j].Line })
	return resp, nil
}

func stateLabel(f control.StateFlow) string {
	if f.State != "" {
		return f.State
	}
	if f.Replied {
		return "REPLIED"
	}
	return "UNREPLIED"
}

func stateFlow(fi engine.FlowInfo, pol *rules.Policy) control.StateFlow {
	f := control.StateFlow{
		Proto: engine.ProtoName(fi.Proto), ProtoNum: fi.Proto, Timeout: fi.Timeout,
		Src: fi.Orig.Src.Addr().String(), Dst: fi.Orig.Dst.Addr().String(),
		SPort: fi.Orig.Src.Port(), DPort: fi.Orig.Dst.Port(),
		RSrc: fi.Reply.Src.Addr().String(), RDst: fi.Reply.Dst.Addr().String(),
		RSPort: fi.Reply.Src.Port(), RDPort: fi.Reply.Dst.Port(),
		Replied: fi.Replied, Assured: fi.Assured, Related: fi.Related,
		Line: fi.String(),
	}
	if fi.Proto == 6 {
		f.State = fi.TCPState.String()
	}
	if rs := pol.Rules(); fi.Rule >= 0 && fi.Rule < len(rs) {
		f.Rule = rs[fi.Rule].Name
	}
	if fi.Related {
		f.Parent = fmt.Sprintf("%s %s -> %s", engine.ProtoName(fi.ParentProto), fi.Parent.Src, fi.Parent.Dst)
	}
	return f
}

func matches(f *control.StateFlow, fi engine.FlowInfo, proto string, addr netip.Addr, port uint16, state string) bool {
	if proto != "" && proto != f.Proto && proto != fmt.Sprint(f.ProtoNum) {
		return false
	}
	if addr.IsValid() {
		ok := false
		for _, a := range []netip.Addr{fi.Orig.Src.Addr(), fi.Orig.Dst.Addr(), fi.Reply.Src.Addr(), fi.Reply.Dst.Addr()} {
			if a.Unmap() == addr {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if port != 0 && f.SPort != port && f.DPort != port && f.RSPort != port && f.RDPort != port {
		return false
	}
	switch state {
	case "":
	case "UNREPLIED":
		return !f.Replied
	case "ASSURED":
		return f.Assured
	case "RELATED":
		return f.Related
	default:
		return f.State == state
	}
	return true
}

// currentState returns the stateful matchers in force.
func (d *Daemon) currentState() *stateful {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

// Bounds of one trace request.
const (
	traceRate     = 10
	traceMaxRate  = 1000
	traceWait     = 5 * time.Second
	traceMaxWait  = 20 * time.Second
	traceLinger   = 250 * time.Millisecond // after the first explanation
	traceMaxBatch = 200
)

// trace collects the explanations of the packets req selects until one
// arrived and traceLinger passed, traceMaxBatch arrived, or the wait ended.
func (d *Daemon) trace(ctx context.Context, req control.TraceRequest) (*control.TraceResponse, error) {
	rate := req.Rate
	if rate == 0 {
		rate = traceRate
	}
	if rate < 0 || rate > traceMaxRate {
		return nil, fmt.Errorf("trace: rate %d: want 1 to %d a second", rate, traceMaxRate)
	}
	wait := traceWait
	if req.Wait != "" {
		w, err := time.ParseDuration(req.Wait)
		if err != nil || w <= 0 {
			return nil, fmt.Errorf("trace: wait %q: want a positive duration", req.Wait)
		}
		wait = min(w, traceMaxWait)
	}
	events, stop, err := d.eng.StartTrace(req.Filter, rate)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	resp := &control.TraceResponse{Events: []engine.Explanation{}}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	var linger <-chan time.Time
collect:
	for len(resp.Events) < traceMaxBatch {
		select {
		case x := <-events:
			resp.Events = append(resp.Events, x)
			if linger == nil {
				linger = time.After(traceLinger)
			}
		case <-linger:
			break collect
		case <-deadline.C:
			break collect
		case <-ctx.Done():
			break collect
		}
	}
	resp.Dropped = stop()
	for {
		select {
		case x := <-events:
			resp.Events = append(resp.Events, x)
		default:
			return resp, nil
		}
	}
}

package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/engine/guard"
)

// Ban commands, served by BanHandlers.
const (
	CmdListBans = "bans.list"
	CmdAddBan   = "bans.add"
	CmdDelBan   = "bans.del"
)

// ListBansResponse is the answer to CmdListBans (which takes no arguments).
type ListBansResponse struct {
	Now time.Time `json:"now"` // the daemon's clock, to judge Until against
	// Gateway is this gateway's name: the origin of the bans whose Origin
	// is empty.
	Gateway string      `json:"gateway,omitempty"`
	Bans    []guard.Ban `json:"bans"` // sorted by scope
}

// AddBanRequest is the argument of CmdAddBan: Scope, an address (a /32 or
// /128) or a prefix; Addr, one address, from clients older than prefix
// bans, is read when Scope is absent.
type AddBanRequest struct {
	Scope      netip.Prefix `json:"scope,omitzero"`
	Addr       netip.Addr   `json:"addr,omitzero"`
	ForSeconds int64        `json:"for_seconds"`
	Reason     string       `json:"reason,omitempty"` // default guard.DefaultManualReason
}

// Target returns the scope the request names, or the zero Prefix.
func (r *AddBanRequest) Target() netip.Prefix { return target(r.Scope, r.Addr) }

// AddBanResponse is the answer to CmdAddBan.
type AddBanResponse struct {
	Ban guard.Ban `json:"ban"`
}

// DelBanRequest is the argument of CmdDelBan: exactly the scope to lift
// (Scope, or Addr alone from older clients).
type DelBanRequest struct {
	Scope netip.Prefix `json:"scope,omitzero"`
	Addr  netip.Addr   `json:"addr,omitzero"`
}

// Target returns the scope the request names, or the zero Prefix.
func (r *DelBanRequest) Target() netip.Prefix { return target(r.Scope, r.Addr) }

func target(scope netip.Prefix, addr netip.Addr) netip.Prefix {
	if scope.IsValid() {
		return scope
	}
	if addr.IsValid() {
		return decision.ScopeOf(addr)
	}
	return netip.Prefix{}
}

// DelBanResponse is the answer to CmdDelBan.
type DelBanResponse struct {
	Deleted bool `json:"deleted"` // false: the scope was not banned
}

// BanHandlers returns the handlers of the ban commands (CmdListBans,
// CmdAddBan, CmdDelBan) on b. now is the daemon's clock (nil: time.Now);
// gateway names this gateway in the list (nil: no name).
func BanHandlers(b *guard.Bans, now func() time.Time, gateway func() string) map[string]Handler {
	if now == nil {
		now = time.Now
	}
	if gateway == nil {
		gateway = func() string { return "" }
	}
	return map[string]Handler{
		CmdListBans: func(context.Context, json.RawMessage) (any, error) {
			t := now()
			return ListBansResponse{Now: t, Gateway: gateway(), Bans: b.List(clock.Mono(t))}, nil
		},
		CmdAddBan: func(_ context.Context, args json.RawMessage) (any, error) {
			var req AddBanRequest
			if err := decode(CmdAddBan, args, &req); err != nil {
				return nil, err
			}
			if req.Reason == "" {
				req.Reason = guard.DefaultManualReason
			}
			scope := req.Target()
			if !scope.IsValid() {
				return nil, fmt.Errorf("%s: %w", CmdAddBan, guard.ErrBadAddress)
			}
			ban, err := b.Add(scope, time.Duration(req.ForSeconds)*time.Second, req.Reason, clock.Mono(now()))
			if err != nil {
				return nil, err
			}
			return AddBanResponse{Ban: ban}, nil
		},
		CmdDelBan: func(_ context.Context, args json.RawMessage) (any, error) {
			var req DelBanRequest
			if err := decode(CmdDelBan, args, &req); err != nil {
				return nil, err
			}
			scope := req.Target()
			if !scope.IsValid() {
				return nil, fmt.Errorf("%s: %w", CmdDelBan, guard.ErrBadAddress)
			}
			return DelBanResponse{Deleted: b.Del(scope)}, nil
		},
	}
}

// decode reads the arguments of cmd into v.
func decode(cmd string, args json.RawMessage, v any) error {
	if len(args) == 0 {
		return fmt.Errorf("%s: %w: missing arguments", cmd, ErrBadRequest)
	}
	if err := json.Unmarshal(args, v); err != nil {
		return fmt.Errorf("%s: %w: %v", cmd, ErrBadRequest, err)
	}
	return nil
}

package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
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
	Now  time.Time   `json:"now"`  // the daemon's clock, to judge Until against
	Bans []guard.Ban `json:"bans"` // sorted by address
}

// AddBanRequest is the argument of CmdAddBan.
type AddBanRequest struct {
	Addr       netip.Addr `json:"addr"`
	ForSeconds int64      `json:"for_seconds"`
	Reason     string     `json:"reason,omitempty"` // default guard.DefaultManualReason
}

// AddBanResponse is the answer to CmdAddBan.
type AddBanResponse struct {
	Ban guard.Ban `json:"ban"`
}

// DelBanRequest is the argument of CmdDelBan.
type DelBanRequest struct {
	Addr netip.Addr `json:"addr"`
}

// DelBanResponse is the answer to CmdDelBan.
type DelBanResponse struct {
	Deleted bool `json:"deleted"` // false: the address was not banned
}

// BanHandlers returns the handlers of the ban commands (CmdListBans,
// CmdAddBan, CmdDelBan) on b. now is the daemon's clock (nil: time.Now).
func BanHandlers(b *guard.Bans, now func() time.Time) map[string]Handler {
	if now == nil {
		now = time.Now
	}
	return map[string]Handler{
		CmdListBans: func(context.Context, json.RawMessage) (any, error) {
			t := now()
			return ListBansResponse{Now: t, Bans: b.List(clock.Mono(t))}, nil
		},
		CmdAddBan: func(_ context.Context, args json.RawMessage) (any, error) {
			var req AddBanRequest
			if err := decode(CmdAddBan, args, &req); err != nil {
				return nil, err
			}
			if req.Reason == "" {
				req.Reason = guard.DefaultManualReason
			}
			ban, err := b.Add(req.Addr, time.Duration(req.ForSeconds)*time.Second, req.Reason, clock.Mono(now()))
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
			if !req.Addr.IsValid() {
				return nil, fmt.Errorf("%s: %w", CmdDelBan, guard.ErrBadAddress)
			}
			return DelBanResponse{Deleted: b.Del(req.Addr)}, nil
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

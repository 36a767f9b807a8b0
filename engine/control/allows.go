package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/engine/guard"
)

// Allow commands, served by AllowHandlers.
const (
	CmdListAllows = "allows.list"
	CmdAddAllow   = "allows.add"
	CmdDelAllow   = "allows.del"
)

// ListAllowsResponse is the answer to CmdListAllows (which takes no
// arguments).
type ListAllowsResponse struct {
	Now time.Time `json:"now"` // the daemon's clock, to judge Expires against
	// Gateway is this gateway's name: the origin of the allows whose
	// Origin is empty.
	Gateway string              `json:"gateway,omitempty"`
	Allows  []decision.Decision `json:"allows"` // sorted by scope
}

// AddAllowRequest is the argument of CmdAddAllow: Scope, an address (a /32
// or /128) or a prefix, allowed for ForSeconds.
type AddAllowRequest struct {
	Scope      netip.Prefix `json:"scope"`
	ForSeconds int64        `json:"for_seconds"`
	Reason     string       `json:"reason,omitempty"`
}

// AddAllowResponse is the answer to CmdAddAllow: the allow as recorded and
// the bans it lifted (those whose scope overlaps it).
type AddAllowResponse struct {
	Allow  decision.Decision `json:"allow"`
	Lifted []netip.Prefix    `json:"lifted,omitempty"`
}

// DelAllowRequest is the argument of CmdDelAllow: exactly the scope whose
// allow ends.
type DelAllowRequest struct {
	Scope netip.Prefix `json:"scope"`
}

// DelAllowResponse is the answer to CmdDelAllow.
type DelAllowResponse struct {
	Deleted bool `json:"deleted"` // false: the scope was not allowed
}

// AllowTable is what the allow commands act on: the daemon's allows, with
// what an allow does to the bans it covers.
type AllowTable interface {
	// AddAllow allows scope for d and returns the allow and the scopes
	// of the bans it lifted.
	AddAllow(scope netip.Prefix, d time.Duration, reason string) (decision.Decision, []netip.Prefix, error)
	// DelAllow ends the allow of exactly scope; false: there was none.
	DelAllow(scope netip.Prefix) bool
	// ListAllows returns the allows in force.
	ListAllows() []decision.Decision
}

// AllowHandlers returns the handlers of the allow commands (CmdListAllows,
// CmdAddAllow, CmdDelAllow) on t. now is the daemon's clock (nil:
// time.Now); gateway names this gateway in the list (nil: no name).
func AllowHandlers(t AllowTable, now func() time.Time, gateway func() string) map[string]Handler {
	if now == nil {
		now = time.Now
	}
	if gateway == nil {
		gateway = func() string { return "" }
	}
	return map[string]Handler{
		CmdListAllows: func(context.Context, json.RawMessage) (any, error) {
			return ListAllowsResponse{Now: now(), Gateway: gateway(), Allows: t.ListAllows()}, nil
		},
		CmdAddAllow: func(_ context.Context, args json.RawMessage) (any, error) {
			var req AddAllowRequest
			if err := decode(CmdAddAllow, args, &req); err != nil {
				return nil, err
			}
			scope, ok := decision.Canonical(req.Scope)
			if !ok {
				return nil, fmt.Errorf("%s: %w", CmdAddAllow, guard.ErrBadAddress)
			}
			d := time.Duration(req.ForSeconds) * time.Second
			if d <= 0 || d > guard.MaxBan {
				return nil, fmt.Errorf("%s %s: %w (got %v)", CmdAddAllow, scope, guard.ErrBadDuration, d)
			}
			a, lifted, err := t.AddAllow(scope, d, req.Reason)
			if err != nil {
				return nil, err
			}
			return AddAllowResponse{Allow: a, Lifted: lifted}, nil
		},
		CmdDelAllow: func(_ context.Context, args json.RawMessage) (any, error) {
			var req DelAllowRequest
			if err := decode(CmdDelAllow, args, &req); err != nil {
				return nil, err
			}
			scope, ok := decision.Canonical(req.Scope)
			if !ok {
				return nil, fmt.Errorf("%s: %w", CmdDelAllow, guard.ErrBadAddress)
			}
			return DelAllowResponse{Deleted: t.DelAllow(scope)}, nil
		},
	}
}

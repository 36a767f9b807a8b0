package recent

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
)

// CmdList is the control command that lists recent list entries.
const CmdList = "recent.list"

// ListRequest is the argument of CmdList.
type ListRequest struct {
	List string `json:"list,omitempty"` // one list; "" lists all
}

// ListResponse is the answer to CmdList.
type ListResponse struct {
	Now     time.Time `json:"now"`     // the daemon's clock, to judge LastSeen against
	Entries []Entry   `json:"entries"` // sorted by list, then address
}

// ControlHandlers returns the handlers the daemon registers on its control
// socket (see CmdList). now is the daemon's clock (nil: time.Now).
func (l *Lists) ControlHandlers(now func() time.Time) map[string]control.Handler {
	if now == nil {
		now = time.Now
	}
	return map[string]control.Handler{
		CmdList: func(_ context.Context, args json.RawMessage) (any, error) {
			var req ListRequest
			if len(args) > 0 {
				if err := json.Unmarshal(args, &req); err != nil {
					return nil, fmt.Errorf("%s: %w: %v", CmdList, ErrBadRequest, err)
				}
			}
			if req.List != "" && l.Index(req.List) < 0 {
				return nil, fmt.Errorf("%s: %w %q", CmdList, ErrUnknownList, req.List)
			}
			resp := ListResponse{Now: now(), Entries: []Entry{}}
			l.Walk(func(e Entry) {
				if req.List == "" || e.List == req.List {
					resp.Entries = append(resp.Entries, e)
				}
			})
			sort.Slice(resp.Entries, func(a, b int) bool {
				x, y := resp.Entries[a], resp.Entries[b]
				if x.List != y.List {
					return x.List < y.List
				}
				return x.Addr.Less(y.Addr)
			})
			return resp, nil
		},
	}
}

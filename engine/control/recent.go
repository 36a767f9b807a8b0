package control

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/nfqfw/nfqfw/engine/recent"
)

// CmdRecentList is the command that lists recent list entries, served by
// RecentHandlers.
const CmdRecentList = "recent.list"

// RecentListRequest is the argument of CmdRecentList.
type RecentListRequest struct {
	List string `json:"list,omitempty"` // one list; "" lists all
}

// RecentListResponse is the answer to CmdRecentList.
type RecentListResponse struct {
	Now     time.Time      `json:"now"`     // the daemon's clock, to judge LastSeen against
	Entries []recent.Entry `json:"entries"` // sorted by list, then address
}

// RecentHandlers returns the handler of CmdRecentList on l. now is the
// daemon's clock (nil: time.Now).
func RecentHandlers(l *recent.Lists, now func() time.Time) map[string]Handler {
	if now == nil {
		now = time.Now
	}
	return map[string]Handler{
		CmdRecentList: func(_ context.Context, args json.RawMessage) (any, error) {
			var req RecentListRequest
			if len(args) > 0 {
				if err := json.Unmarshal(args, &req); err != nil {
					return nil, fmt.Errorf("%s: %w: %v", CmdRecentList, ErrBadRequest, err)
				}
			}
			if req.List != "" && l.Index(req.List) < 0 {
				return nil, fmt.Errorf("%w %q", recent.ErrUnknownList, req.List)
			}
			resp := RecentListResponse{Now: now(), Entries: []recent.Entry{}}
			l.Walk(func(e recent.Entry) {
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

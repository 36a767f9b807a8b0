package control

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/engine/guard"
)

// t0 is the clock of the ban handlers in these tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestControlHandlerErrors(t *testing.T) {
	hs := BanHandlers(guard.NewBans(guard.BanOptions{}), func() time.Time { return t0 }, nil)
	tests := []struct {
		name, cmd, args string
		want            error
	}{
		{"add without arguments", CmdAddBan, "", ErrBadRequest},
		{"add with a bad address", CmdAddBan, `{"addr":"300.1.1.1","for_seconds":60}`, ErrBadRequest},
		{"add without an address", CmdAddBan, `{"for_seconds":60}`, guard.ErrBadAddress},
		{"add for no time", CmdAddBan, `{"addr":"192.0.2.1"}`, guard.ErrBadDuration},
		{"del without an address", CmdDelBan, `{}`, guard.ErrBadAddress},
		{"add a prefix wider than /8", CmdAddBan, `{"scope":"10.0.0.0/7","for_seconds":60}`, guard.ErrBadScope},
		{"add a prefix with host bits", CmdAddBan, `{"scope":"10.0.0.1/8","for_seconds":60}`, guard.ErrBadScope},
		{"del with garbage", CmdDelBan, `[1]`, ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := hs[tt.cmd](context.Background(), json.RawMessage(tt.args))
			if !errors.Is(err, tt.want) {
				t.Errorf("%s(%s) = %v, want %v", tt.cmd, tt.args, err, tt.want)
			}
		})
	}
}

// testAllows is an AllowTable over a guard.Allows alone (no bans).
type testAllows struct{ a *guard.Allows }

func (t testAllows) AddAllow(scope netip.Prefix, d time.Duration, reason string) (decision.Decision, []netip.Prefix, error) {
	a := decision.Decision{Kind: decision.Allow, Scope: scope, Issued: t0, Expires: t0.Add(d), Reason: reason}
	_, err := t.a.Add(a, t0)
	return a, nil, err
}

func (t testAllows) DelAllow(scope netip.Prefix) bool { return t.a.Del(scope) }
func (t testAllows) ListAllows() []decision.Decision  { return t.a.List(t0) }

// FuzzControlHandlers feeds arbitrary arguments to the ban and allow handlers: they
// must answer (a value or an error), never panic, and leave the table
// consistent.
func FuzzControlHandlers(f *testing.F) {
	f.Add(`{"addr":"192.0.2.1","for_seconds":3600,"reason":"x"}`)
	f.Add(`{"addr":"2001:db8::1","for_seconds":-5}`)
	f.Add(`{"addr":"::ffff:192.0.2.1"}`)
	f.Add(`{"addr":""}`)
	f.Add(`{"scope":"2001:db8::/64","for_seconds":60}`)
	f.Add(`{"scope":"::ffff:10.0.0.0/104","for_seconds":60}`)
	f.Add(`null`)
	f.Add(`{"for_seconds":9223372036854775807,"addr":"192.0.2.9"}`)
	f.Fuzz(func(t *testing.T, args string) {
		// A fresh table per input: a table that grows over the whole run
		// makes each list slower until an input outlasts the fuzz
		// deadline.
		b := guard.NewBans(guard.BanOptions{})
		hs := BanHandlers(b, func() time.Time { return t0 }, nil)
		for _, cmd := range []string{CmdAddBan, CmdDelBan, CmdListBans} {
			hs[cmd](context.Background(), json.RawMessage(args))
		}
		as := AllowHandlers(testAllows{guard.NewAllows()}, func() time.Time { return t0 }, nil)
		for _, cmd := range []string{CmdAddAllow, CmdListAllows, CmdDelAllow} {
			as[cmd](context.Background(), json.RawMessage(args))
		}
		if st := b.Stats(); st.Active < 0 || st.Active > st.Records {
			t.Fatalf("inconsistent table after %q: %+v", args, st)
		}
	})
}

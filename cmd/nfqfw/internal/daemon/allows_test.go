package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/cmd/nfqfw/internal/store"
	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/guard"
)

// allowConfig guards ssh: one new connection per minute, then a ban.
const allowConfig = `
guards:
  - name: ssh-guard
    limits: [{count: 1, window: 1m}]
    ban: {duration: 10m}
input:
  policy: drop
  rules:
    - {name: ssh, proto: tcp, dport: 22, guard: ssh-guard, action: accept}
`

// call runs the control command cmd of the daemon with args.
func (td *testDaemon) call(cmd string, args any) (any, error) {
	td.t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		td.t.Fatal(err)
	}
	h := td.d.currentState().controlHandlers(td.d.currentState)[cmd]
	if h == nil {
		td.t.Fatalf("no control command %s", cmd)
	}
	return h(context.Background(), b)
}

// TestAllows: an allow lifts the bans it overlaps, refuses a later manual
// ban and a guard's, admits its source before the guard, and outlives a
// restart with its expiry; its end by del lets the guard ban again.
func TestAllows(t *testing.T) {
	td := startDaemon(t, allowConfig)
	pfx := netip.MustParsePrefix
	if _, err := td.call(control.CmdAddBan, control.AddBanRequest{Scope: pfx("192.0.2.7/32"), ForSeconds: 600}); err != nil {
		t.Fatal(err)
	}
	resp, err := td.call(control.CmdAddAllow, control.AddAllowRequest{Scope: pfx("192.0.2.0/24"), ForSeconds: 3600, Reason: "vendor"})
	if err != nil {
		t.Fatal(err)
	}
	added := resp.(control.AddAllowResponse)
	if len(added.Lifted) != 1 || added.Lifted[0] != pfx("192.0.2.7/32") {
		t.Errorf("lifted %v, want the ban of 192.0.2.7", added.Lifted)
	}
	sh := td.d.currentState().shared
	if n := len(sh.bans.List(clock.Now())); n != 0 {
		t.Errorf("%d bans after the allow, want 0", n)
	}
	if !strings.Contains(td.logs.String(), "ban lifted: an allow covers it") {
		t.Errorf("the lifting is not logged:\n%s", td.logs)
	}
	_, err = td.call(control.CmdAddBan, control.AddBanRequest{Scope: pfx("192.0.2.9/32"), ForSeconds: 600})
	if !errors.Is(err, guard.ErrAllowed) || !strings.Contains(err.Error(), "nfqfw allows del 192.0.2.0/24") {
		t.Errorf("bans add inside an allow = %v, want ErrAllowed naming the allow", err)
	}
	_, err = td.call(control.CmdAddBan, control.AddBanRequest{Scope: pfx("192.0.0.0/16"), ForSeconds: 600})
	if !errors.Is(err, guard.ErrAllowed) {
		t.Errorf("bans add around an allow = %v, want ErrAllowed", err)
	}
	for i := range 5 {
		if v := verdictName(td.k.queue(0).decide(packetFrom(t, "192.0.2.9", uint16(40000+i), "127.0.0.1", 22, "S"), input)); v != "accept" {
			t.Fatalf("SYN %d of an allowed source: %s", i, v)
		}
	}
	if n := len(sh.bans.List(clock.Now())); n != 0 {
		t.Errorf("an allowed source was banned")
	}
	if lifted, own := sh.allowLifted.Load(), func() uint64 { o, _ := sh.bans.AllowRefused(); return o }(); lifted != 1 || own != 2 {
		t.Errorf("counted %d lifted, %d refused; want 1 and 2", lifted, own)
	}

	// Across a restart.
	td.cancel()
	if err := td.wait(); err != nil {
		t.Fatal(err)
	}
	var saved persisted
	if err := store.Load(filepath.Join(td.dir, "state", stateFile), &saved); err != nil {
		t.Fatal(err)
	}
	td2 := startDaemon(t, allowConfig, savedState(t, saved))
	list, _ := td2.call(control.CmdListAllows, nil)
	allows := list.(control.ListAllowsResponse).Allows
	if len(allows) != 1 || allows[0].Scope != pfx("192.0.2.0/24") || !allows[0].Expires.Equal(added.Allow.Expires) || allows[0].Reason != "vendor" {
		t.Fatalf("after a restart: %+v, want the allow of 192.0.2.0/24 until %v", allows, added.Allow.Expires)
	}
	// Ended by hand: the guard bans the source again.
	if resp, err := td2.call(control.CmdDelAllow, control.DelAllowRequest{Scope: pfx("192.0.2.0/24")}); err != nil || !resp.(control.DelAllowResponse).Deleted {
		t.Fatalf("allows del: %v, %v", resp, err)
	}
	for i := range 2 {
		td2.k.queue(0).decide(packetFrom(t, "192.0.2.9", uint16(41000+i), "127.0.0.1", 22, "S"), input)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(td2.d.currentState().shared.bans.List(clock.Now())) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the guard does not ban once the allow ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/nfqfw/nfqfw/engine/control"
)

// TestHARoles: a daemon no hook has told is standalone; a demotion makes
// it backup and a status reports that without changing it; an unknown
// action is refused naming the valid ones and leaves the role as it was;
// a promotion makes it primary. Each change of role is counted once (a
// second demotion is none). A kernel table that cannot be read fails the
// request, counted, with the role changed all the same: the addresses
// have moved. (The adoption of the kernel's flows, at the role changes
// and while backup, is covered by the end-to-end test TestHAFailover.)
func TestHARoles(t *testing.T) {
	k := newFakeKernel(t.TempDir())
	d := &Daemon{log: slog.New(slog.DiscardHandler), k: k}
	call := func(action string) (control.HAResponse, error) {
		args, _ := json.Marshal(control.HARequest{Action: action})
		r, err := d.haAction(context.Background(), args)
		if err != nil {
			return control.HAResponse{}, err
		}
		return r.(control.HAResponse), nil
	}
	steps := []struct {
		action, wantRole, wantErr string
	}{
		{control.HAStatus, roleStandalone, ""},
		{control.HADemote, roleBackup, ""},
		{control.HAStatus, roleBackup, ""},
		{"takeover", "", `ha: action "takeover": want promote, demote or status`},
		{control.HAStatus, roleBackup, ""},
		{control.HADemote, roleBackup, ""},
		{control.HAPromote, rolePrimary, ""},
		{control.HAStatus, rolePrimary, ""},
	}
	for i, s := range steps {
		r, err := call(s.action)
		switch {
		case s.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Errorf("step %d (%s): error %v, want %q", i, s.action, err, s.wantErr)
			}
		case err != nil:
			t.Errorf("step %d (%s): %v", i, s.action, err)
		case r.Role != s.wantRole:
			t.Errorf("step %d (%s): role %q, want %q", i, s.action, r.Role, s.wantRole)
		}
	}
	if p, b := d.ha.toPrimary.Load(), d.ha.toBackup.Load(); p != 1 || b != 1 {
		t.Errorf("transitions to primary %d, to backup %d; want 1 and 1", p, b)
	}
	if _, err := d.haAction(context.Background(), json.RawMessage(`{"action":`)); err == nil {
		t.Error("a malformed request was accepted")
	}

	k.flowsErr = errors.New("netlink: operation not permitted")
	if _, err := call(control.HADemote); err == nil || !strings.Contains(err.Error(), "role backup") || !strings.Contains(err.Error(), "operation not permitted") {
		t.Errorf("demote with an unreadable kernel table: %v, want an error naming the role and the cause", err)
	}
	if r, _ := call(control.HAStatus); r.Role != roleBackup {
		t.Errorf("role after a demotion whose table read failed: %q, want backup", r.Role)
	}
	if n := d.ha.readErrors.Load(); n != 1 {
		t.Errorf("table read failures counted: %d, want 1", n)
	}
}

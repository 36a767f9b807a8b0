package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/nfqfw/nfqfw/engine/control"
)

// TestHARoles: a daemon no hook has told is standalone; a demotion makes
// it backup and a status reports that without changing it; an unknown
// action is refused naming the valid ones and leaves the role as it was.
// (A promotion reads the kernel's flow table: the end-to-end test
// TestHAFailover covers it.)
func TestHARoles(t *testing.T) {
	d := &Daemon{log: slog.New(slog.DiscardHandler)}
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
	if _, err := d.haAction(context.Background(), json.RawMessage(`{"action":`)); err == nil {
		t.Error("a malformed request was accepted")
	}
}

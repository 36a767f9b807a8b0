package daemon

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/control"
)

// Roles of the daemon in a gateway pair, as keepalived's notify hooks set
// them through "nfqfw ha".
const (
	roleStandalone = "standalone"
	rolePrimary    = "primary"
	roleBackup     = "backup"
)

// haAction carries out one "nfqfw ha" request. A promotion reads the
// kernel's flow table, which conntrackd has just filled with the flows
// the former primary tracked ("conntrackd -c" runs first), and adopts them
// exactly as a start does: those the running policy admits are tracked as
// the kernel has them, so their packets that reach the queue (FTP control
// connections) continue on this gateway. A demotion changes nothing but
// the role: flows, bans, knock windows and recent lists stay, so that a
// failback finds them warm.
func (d *Daemon) haAction(ctx context.Context, args json.RawMessage) (any, error) {
	var req control.HARequest
	if err := json.Unmarshal(args, &req); err != nil {
		return nil, fmt.Errorf("ha: %w", err)
	}
	switch req.Action {
	case control.HAStatus:
		return control.HAResponse{Role: d.haRole()}, nil
	case control.HADemote:
		d.role.Store(roleBackup)
		d.log.Info("ha: demoted to backup; state kept")
		return control.HAResponse{Role: roleBackup}, nil
	case control.HAPromote:
	default:
		return nil, fmt.Errorf("ha: action %q: want %s, %s or %s", req.Action, control.HAPromote, control.HADemote, control.HAStatus)
	}
	ctx, cancel := context.WithTimeout(ctx, adoptTimeout)
	defer cancel()
	flows, err := d.k.flows(ctx)
	if err != nil {
		return nil, fmt.Errorf("ha promote: read the kernel's flows: %w", err)
	}
	n := d.adopt(flows)
	d.role.Store(rolePrimary)
	r := control.HAResponse{Role: rolePrimary, Flows: len(flows), Admitted: n[engine.AdoptAdmitted],
		Tracked: n[engine.AdoptTracked], Refused: n[engine.AdoptRefused], Skipped: n[engine.AdoptSkipped]}
	d.log.Info("ha: promoted to primary; kernel flows adopted", "flows", r.Flows, "admitted", r.Admitted,
		"tracked", r.Tracked, "refused_by_policy", r.Refused, "skipped", r.Skipped)
	return r, nil
}

// haRole returns the role the notify hooks last set.
func (d *Daemon) haRole() string {
	if r := d.role.Load(); r != nil {
		return r.(string)
	}
	return roleStandalone
}

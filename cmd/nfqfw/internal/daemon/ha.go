package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/engine/ctnl"
)

// Roles of the daemon in a gateway pair, as keepalived's notify hooks set
// them through "nfqfw ha".
const (
	roleStandalone = "standalone"
	rolePrimary    = "primary"
	roleBackup     = "backup"
)

// haRoutesFor is how long the backup's route lookups for adopted flows are
// reused: routes of a gateway change rarely, and a resync of the peer's
// table brings thousands of flows between the same subnets.
const haRoutesFor = time.Second

// haState is the daemon's role in a gateway pair and what the role
// changes counted. The role is read by any goroutine; routes belong to the
// conntrack follower's goroutine.
type haState struct {
	role      atomic.Value // string: the role "nfqfw ha" last set (rolePrimary, roleBackup); unset: roleStandalone
	toPrimary atomic.Uint64
	toBackup  atomic.Uint64
	// followErrors counts failures to join or leave the kernel's
	// new-flow event group; readErrors failures to read the kernel's
	// flow table at a role change.
	followErrors atomic.Uint64
	readErrors   atomic.Uint64

	routes   routeCache
	routesAt time.Time
}

// haAction carries out one "nfqfw ha" request.
//
// A backup follows the kernel's new flows (its conntrack event socket joins
// the new-flow group) and adopts each as it appears: with conntrackd's
// external cache disabled, the flows the primary tracks are injected into
// this kernel as the primary makes them, so by the time keepalived moves
// the addresses here they are already in the kernel and in the engine's
// table, admitted where the running policy agrees. A demotion also adopts
// the kernel's whole table once (the flows injected before) and changes
// nothing else: flows, bans, knock windows and recent lists stay, so that
// a failback finds them warm.
//
// A promotion leaves the new-flow group (the primary decides its new flows
// itself), reads the kernel's table once more and adopts what is not
// adopted yet (a flow injected in the last instant, or every flow if this
// gateway was never backup), exactly as a start does.
func (d *Daemon) haAction(ctx context.Context, args json.RawMessage) (any, error) {
	var req control.HARequest
	if err := json.Unmarshal(args, &req); err != nil {
		return nil, fmt.Errorf("ha: %w", err)
	}
	var role string
	switch req.Action {
	case control.HAStatus:
		return control.HAResponse{Role: d.haRole()}, nil
	case control.HADemote:
		role = roleBackup
	case control.HAPromote:
		role = rolePrimary
	default:
		return nil, fmt.Errorf("ha: action %q: want %s, %s or %s", req.Action, control.HAPromote, control.HADemote, control.HAStatus)
	}
	d.setRole(role)
	r := control.HAResponse{Role: role}
	ctx, cancel := context.WithTimeout(ctx, adoptTimeout)
	defer cancel()
	flows, err := d.k.flows(ctx)
	if err != nil {
		d.ha.readErrors.Add(1)
		d.log.Error("ha: read the kernel's flows to adopt them; those not adopted yet are picked up by the packet path", "role", role, "err", err)
		return nil, fmt.Errorf("ha %s: role %s; read the kernel's flows: %w", req.Action, role, err)
	}
	n := d.adopt(flows)
	r.Flows, r.Admitted, r.Tracked, r.Refused, r.Skipped = len(flows), n[engine.AdoptAdmitted], n[engine.AdoptTracked], n[engine.AdoptRefused], n[engine.AdoptSkipped]
	msg := "ha: promoted to primary; kernel flows adopted"
	if role == roleBackup {
		msg = "ha: demoted to backup; state kept, the kernel's new flows adopted as they appear"
	}
	d.log.Info(msg, "flows", r.Flows, "admitted", r.Admitted, "tracked", r.Tracked, "refused_by_policy", r.Refused, "skipped", r.Skipped)
	return r, nil
}

// setRole records role, counts it as a transition when it changes the
// role, and has the conntrack follower follow new flows while backup.
func (d *Daemon) setRole(role string) {
	if prev := d.ha.role.Swap(role); prev != role {
		if role == rolePrimary {
			d.ha.toPrimary.Add(1)
		} else {
			d.ha.toBackup.Add(1)
		}
	}
	if d.obs != nil {
		d.followNew(d.obs.ct.Load())
	}
}

// followNew has f (nil: no follower running) follow the kernel's new flows
// while the role is backup, and leave them otherwise. Called at each role
// change and when a follower starts, so that a restarted follower follows
// them too.
func (d *Daemon) followNew(f *ctnl.Follower) {
	if f == nil {
		return
	}
	backup := d.haRole() == roleBackup
	if err := f.FollowNew(backup); err != nil {
		d.ha.followErrors.Add(1)
		d.log.Error("ha: the conntrack follower's new-flow events; flows the peer syncs are adopted at promotion instead", "backup", backup, "err", err)
	}
}

// adoptNew adopts a new kernel flow while backup: one conntrackd injected,
// a flow of the primary's. It runs on the follower's goroutine.
func (d *Daemon) adoptNew(ev *ctnl.Event) {
	now := time.Now()
	if d.ha.routes == nil || now.Sub(d.ha.routesAt) > haRoutesFor {
		d.ha.routes, d.ha.routesAt = routeCache{}, now
	}
	d.adoptOne(ev, d.ha.routes)
}

// haRole returns the role the notify hooks last set.
func (d *Daemon) haRole() string {
	if r := d.ha.role.Load(); r != nil {
		return r.(string)
	}
	return roleStandalone
}

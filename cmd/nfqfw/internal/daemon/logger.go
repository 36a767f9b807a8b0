package daemon

import (
	"io"
	"log/slog"
	"strings"

	"github.com/nfqfw/nfqfw/rules"
)

// NewLogger builds the daemon's logger from the config's log section.
func NewLogger(c rules.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(c.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	o := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

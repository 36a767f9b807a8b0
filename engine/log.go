package engine

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/engine/internal/loglimit"
	"github.com/nfqfw/nfqfw/rules"
)

// packetLog writes the log lines rules ask for, at most rate lines per
// second; lines over the rate are counted as suppressed, never queued.
type packetLog struct {
	l       *slog.Logger
	limit   *LogLimiter
	written atomic.Uint64
}

func newPacketLog(l *slog.Logger, rate int) *packetLog {
	if rate <= 0 {
		rate = 10
	}
	return &packetLog{l: l, limit: NewLogLimiter(rate, time.Second)}
}

// setRate changes the lines allowed per second (<= 0: 10).
func (pl *packetLog) setRate(rate int) {
	if rate <= 0 {
		rate = 10
	}
	pl.limit.SetN(rate)
}

// allow reports whether one more line fits in the current second.
func (pl *packetLog) allow(now time.Time) bool {
	ok, _ := pl.limit.Allow(now)
	return ok
}

// LogLimiter limits log lines to a number per period, windows aligned to
// the wall clock; the engine's packet log and the FTP helper use it.
type LogLimiter = loglimit.Limiter

// NewLogLimiter returns a LogLimiter of n lines per period.
func NewLogLimiter(n int, period time.Duration) *LogLimiter { return loglimit.New(n, period) }

func (pl *packetLog) packet(pol *rules.Policy, p *Parsed, v Verdict) {
	if pl.l == nil || !pl.allow(time.Now()) {
		return
	}
	pl.written.Add(1)
	prefix, rule := "", ""
	if v.Rule >= 0 {
		r := &pol.Rules()[v.Rule]
		rule = r.Name
		if r.Log != nil {
			prefix = r.Log.Prefix
		}
		if v.Reason == ReasonRateLimit && r.Src != nil {
			for _, g := range pol.Config().Guards {
				if g.Name == r.Src.Guard && g.Log != nil {
					prefix = g.Log.Prefix
				}
			}
		}
	} else if c := pol.Chain(p.Hook); c.Log != nil {
		prefix = c.Log.Prefix
	}
	action := v.Action.String()
	if v.Action == rules.ActionReject {
		action += ":" + v.Reject.String()
	}
	pl.l.LogAttrs(context.Background(), slog.LevelInfo, "packet",
		slog.String("prefix", prefix),
		slog.String("action", action),
		slog.String("rule", rule),
		slog.String("reason", v.Reason.String()),
		slog.String("chain", p.Hook.String()),
		slog.String("in", p.InIface),
		slog.String("out", p.OutIface),
		slog.String("proto", ProtoName(p.Proto)),
		slog.String("src", addrString(p.Src)),
		slog.String("dst", addrString(p.Dst)),
		slog.Int("sport", int(p.SrcPort)),
		slog.Int("dport", int(p.DstPort)),
	)
}

// LogCounts returns the packet log lines written and suppressed by the rate
// limit.
func (e *Engine) LogCounts() (written, suppressed uint64) {
	return e.log.written.Load(), e.log.limit.Suppressed()
}

func addrString(a [16]byte) string {
	return netip.AddrFrom16(a).Unmap().String()
}

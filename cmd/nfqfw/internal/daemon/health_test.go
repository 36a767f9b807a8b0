package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSuperviseRestartsAnAuxiliary: an auxiliary subsystem that fails is
// counted, shown as down and by health, and run again after the backoff;
// it never stops the caller.
func TestSuperviseRestartsAnAuxiliary(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHealth(slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	ctx, cancel := context.WithCancel(context.Background())
	var runs atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.supervise(ctx, subMetrics, func(ctx context.Context) error {
			if runs.Add(1) == 1 {
				return errors.New("listen: address already in use")
			}
			<-ctx.Done()
			return nil
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runs.Load() < 2 && time.Now().Before(deadline) {
		if runs.Load() == 1 && testutil.ToFloat64(h.up.WithLabelValues(subMetrics)) == 0 {
			if l := h.list(); len(l) != 1 || !strings.Contains(l[0], "address already in use") {
				t.Errorf("health while failed = %q", l)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if runs.Load() < 2 {
		t.Fatal("the failed subsystem was not run again")
	}
	time.Sleep(20 * time.Millisecond)
	if got := testutil.ToFloat64(h.failures.WithLabelValues(subMetrics)); got != 1 {
		t.Errorf("failures = %v, want 1", got)
	}
	if got := testutil.ToFloat64(h.up.WithLabelValues(subMetrics)); got != 1 {
		t.Errorf("up after the retry = %v, want 1", got)
	}
	if l := h.list(); len(l) != 0 {
		t.Errorf("health after the retry = %q, want nothing", l)
	}
	cancel()
	<-done
}

package daemon

import (
	"testing"
	"time"
)

// idleOrStuck is a queue reader that has been deciding for deciding (0:
// waiting for packets).
type idleOrStuck struct{ deciding time.Duration }

func (q idleOrStuck) Deciding() time.Duration { return q.deciding }

func TestWatchdogFedOnlyWhileThePacketPathMoves(t *testing.T) {
	tests := []struct {
		name      string
		sinceTick time.Duration
		queues    []queueLiveness
		wantFed   bool
	}{
		{"idle queues, housekeeping running", time.Second, []queueLiveness{idleOrStuck{}, idleOrStuck{}}, true},
		{"queues busy deciding, each batch short", time.Second, []queueLiveness{idleOrStuck{50 * time.Microsecond}, idleOrStuck{2 * time.Millisecond}}, true},
		{"one queue reader stuck in a verdict", time.Second, []queueLiveness{idleOrStuck{}, idleOrStuck{6 * time.Second}}, false},
		{"the only reader stuck just at the limit", time.Second, []queueLiveness{idleOrStuck{stuckAfter}}, false},
		{"housekeeping stalled, queues idle", 7 * time.Second, []queueLiveness{idleOrStuck{}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := packetPathAlive(tt.sinceTick, tt.queues)
			if fed := err == nil; fed != tt.wantFed {
				t.Errorf("packetPathAlive = %v, want fed %v", err, tt.wantFed)
			}
		})
	}
}

package guard

import (
	"os"
	"testing"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// TestMain runs the tests on the identity clock: they build times from
// fixed dates and compare them exactly.
func TestMain(m *testing.M) {
	clock.Set(clock.Identity{})
	os.Exit(m.Run())
}

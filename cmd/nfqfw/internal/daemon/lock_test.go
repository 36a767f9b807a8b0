package daemon

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestLockFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "nfqfw.lock")
	l, err := lockFile(path, "test state")
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file: a second open in this process
	// conflicts as another process's would.
	_, err = lockFile(path, "test state")
	if !errors.Is(err, errAnotherInstance) || !strings.Contains(err.Error(), "nothing was installed") {
		t.Fatalf("second lock: %v, want errAnotherInstance saying nothing was installed", err)
	}
	l.release()
	l2, err := lockFile(path, "test state")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.release()
}

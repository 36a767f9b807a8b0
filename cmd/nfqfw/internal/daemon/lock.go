package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// errAnotherInstance is returned when another nfqfw holds a lock this one
// needs: it refuses to start before touching anything.
var errAnotherInstance = errors.New("another nfqfw is running")

// instanceLock is an flock(2) held for the daemon's life. The kernel
// releases it when the process ends, however it ends.
type instanceLock struct{ f *os.File }

// lockFile takes an exclusive lock on path (creating it), writing this
// process's PID into it. A lock another process holds is errAnotherInstance,
// naming its PID and what the lock protects.
func lockFile(path, what string) (*instanceLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (pid %s) with %s (lock %s): refusing to start; nothing was installed",
				errAnotherInstance, strings.TrimSpace(string(b[:n])), what, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &instanceLock{f: f}, nil
}

// release gives the lock up (the file stays: removing it would race with
// a starting instance).
func (l *instanceLock) release() {
	if l != nil {
		l.f.Close()
	}
}

// netnsLockPath is the lock of the network namespace the process runs in:
// two daemons in one namespace would fight over the same NFQFW chains and
// ban sets, whatever their configs say.
func netnsLockPath(dir string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return "", fmt.Errorf("network namespace: %w", err)
	}
	return filepath.Join(dir, fmt.Sprintf("nfqfw-netns-%d.lock", st.Ino)), nil
}

// lockInstance takes the locks that make this the only nfqfw of its
// network namespace (its lock in lockDir, /run) and of its state
// directory.
func lockInstance(lockDir, stateDir string) ([]*instanceLock, error) {
	path, err := netnsLockPath(lockDir)
	if err != nil {
		return nil, err
	}
	ns, err := lockFile(path, "this network namespace's ruleset")
	if err != nil {
		return nil, err
	}
	st, err := lockFile(filepath.Join(stateDir, "nfqfw.lock"), "state directory "+stateDir)
	if err != nil {
		ns.release()
		return nil, err
	}
	return []*instanceLock{ns, st}, nil
}

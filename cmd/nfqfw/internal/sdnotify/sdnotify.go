package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Messages the daemon sends.
const (
	Ready    = "READY=1"    // queues bound, ruleset installed
	Stopping = "STOPPING=1" // an explicit stop began
	Watchdog = "WATCHDOG=1" // the packet path and the supervisor are alive
)

// Notifier sends notifications to systemd. The zero value and a Notifier
// built without $NOTIFY_SOCKET send nothing. Its methods may be called from
// any goroutine.
type Notifier struct {
	addr *net.UnixAddr // nil: not under systemd
}

// FromEnv returns a Notifier for the socket in $NOTIFY_SOCKET ("@name" is
// an abstract socket).
func FromEnv() *Notifier {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return &Notifier{}
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Notify sends state, one or more "KEY=value" lines. It does nothing when
// not under systemd.
func (n *Notifier) Notify(state string) error {
	if !n.Enabled() {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify %q: %w", state, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return nil
}

// Status sends a STATUS= line systemctl status shows.
func (n *Notifier) Status(s string) error { return n.Notify("STATUS=" + s) }

// WatchdogInterval returns how often WATCHDOG=1 must be sent: half of
// $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises, and false when the
// unit has no watchdog or it is meant for another process
// ($WATCHDOG_PID).
func WatchdogInterval() (time.Duration, bool) {
	usec, err := strconv.ParseUint(os.Getenv("WATCHDOG_USEC"), 10, 63)
	if err != nil || usec == 0 {
		return 0, false
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(os.Getpid()) {
		return 0, false
	}
	return time.Duration(usec) * time.Microsecond / 2, true
}

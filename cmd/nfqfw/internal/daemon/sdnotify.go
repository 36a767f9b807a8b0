package daemon

// systemd's notification protocol (sd_notify(3)): READY=1, STOPPING=1,
// STATUS=..., WATCHDOG=1 as datagrams to the socket named by
// $NOTIFY_SOCKET, and the watchdog interval from $WATCHDOG_USEC. Without
// $NOTIFY_SOCKET (not started by systemd with Type=notify) nothing is
// sent. It is the few lines the protocol needs; a library would bring more
// than it saves.

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Notifications the daemon sends.
const (
	sdReady    = "READY=1"    // queues bound, ruleset installed
	sdStopping = "STOPPING=1" // the daemon is exiting
	sdWatchdog = "WATCHDOG=1" // the packet path and the supervisor are alive
)

// Notifier sends notifications to systemd. The zero value and a Notifier
// built without $NOTIFY_SOCKET send nothing. Its methods may be called from
// any goroutine.
type Notifier struct {
	addr *net.UnixAddr // nil: not under systemd
}

// NotifierFromEnv returns a Notifier for the socket in $NOTIFY_SOCKET ("@name" is
// an abstract socket).
func NotifierFromEnv() *Notifier {
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

// watchdogInterval returns how often WATCHDOG=1 must be sent: half of
// $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises, and false when the
// unit has no watchdog or it is meant for another process
// ($WATCHDOG_PID).
func watchdogInterval() (time.Duration, bool) {
	usec, err := strconv.ParseUint(os.Getenv("WATCHDOG_USEC"), 10, 63)
	if err != nil || usec == 0 {
		return 0, false
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(os.Getpid()) {
		return 0, false
	}
	return time.Duration(usec) * time.Microsecond / 2, true
}

package daemon

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestSDNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	n := NotifierFromEnv()
	if !n.Enabled() {
		t.Fatal("Enabled = false with NOTIFY_SOCKET set")
	}
	for _, msg := range []string{sdReady, "STATUS=running", sdStopping} {
		if msg == "STATUS=running" {
			err = n.Status("running")
		} else {
			err = n.Notify(msg)
		}
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		l.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := l.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:k]); got != msg {
			t.Errorf("received %q, want %q", got, msg)
		}
	}
}

func TestSDNotifyOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := NotifierFromEnv()
	if n.Enabled() {
		t.Fatal("Enabled = true without NOTIFY_SOCKET")
	}
	if err := n.Notify(sdReady); err != nil {
		t.Fatalf("Notify without systemd: %v", err)
	}
	var zero *Notifier
	if err := zero.Notify(sdReady); err != nil {
		t.Fatalf("Notify on nil: %v", err)
	}
}

func TestSDWatchdogInterval(t *testing.T) {
	for _, tc := range []struct {
		name      string
		usec, pid string
		want      time.Duration
		ok        bool
	}{
		{"no watchdog", "", "", 0, false},
		{"half the timeout", "20000000", "", 10 * time.Second, true},
		{"for this process", "2000000", strconv.Itoa(os.Getpid()), time.Second, true},
		{"for another process", "2000000", "1", 0, false},
		{"garbage", "x", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tc.usec)
			t.Setenv("WATCHDOG_PID", tc.pid)
			got, ok := watchdogInterval()
			if got != tc.want || ok != tc.ok {
				t.Errorf("watchdogInterval = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

package fleet

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestEagerDialer: a listening server is connected to; a closed port ends
// the dial with its refusal, not with the timeout.
func TestEagerDialer(t *testing.T) {
	d := eagerDialer{timeout: 10 * time.Second, redial: 10 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial a listening server: %v", err)
	}
	c.Close()
	addr := ln.Addr().String()
	ln.Close()
	// The refusal ends the dial, not its timeout.
	if _, err = d.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a closed port: %v, want connection refused", err)
	}
}

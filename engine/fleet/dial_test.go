package fleet

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestEagerDialer: a listening server is connected to, a closed port is
// refused with the dial's error, not after the timeout.
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
	start := time.Now()
	_, err = d.Dial("tcp", addr)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("dial a closed port: %v, want its dial error", err)
	}
	if took := time.Since(start); took >= d.timeout {
		t.Errorf("dial a closed port returned after %v, the whole timeout", took)
	}
}

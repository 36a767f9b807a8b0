package main

import (
	"context"
	"testing"

	"github.com/nfqfw/nfqfw/engine/control"
)

// serveControl listens on srv's socket and answers requests until the test
// ends, then checks that Serve stopped cleanly.
func serveControl(t *testing.T, srv *control.Server) {
	t.Helper()
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

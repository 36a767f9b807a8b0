package fleet

import (
	"context"
	"net"
	"time"
)

// Dialing a server.
const (
	// dialTimeout bounds one connection to a server, the TCP handshake and
	// the NATS one (nats.Timeout): a link of 300 ms round trip with TLS
	// needs about 1.2 s of it.
	dialTimeout = 2 * time.Second
	// redial is how often a dial that has no answer yet sends a new
	// connection attempt beside the ones in flight.
	redial = 250 * time.Millisecond
)

// eagerDialer dials a server with a new attempt every redial while the
// earlier ones get no answer, each with the whole timeout; the first to
// connect is used and the others are closed. A partition healing while a
// dial is in flight is thus answered within about redial, instead of at
// the in-flight attempt's next SYN retransmission (1 s after its first,
// then 3 s: up to 1 s of a reconnect after a heal was measured waiting for
// it), and a slow link still gets the whole timeout. An attempt that fails
// (refused, unreachable) ends the dial with its error at once: the next
// server is tried.
type eagerDialer struct {
	timeout, redial time.Duration
}

// Dial implements nats.CustomDialer.
func (d eagerDialer) Dial(network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	type result struct {
		c   net.Conn
		err error
	}
	results := make(chan result, int(d.timeout/d.redial)+1) // never blocks an attempt
	var nd net.Dialer
	attempt := func() {
		c, err := nd.DialContext(ctx, network, addr)
		results <- result{c, err}
	}
	started, answered := 1, 0
	go attempt()
	// The attempts still out are cancelled (returning): those that
	// connected meanwhile are closed.
	leave := func() {
		cancel()
		go func(left int) {
			for range left {
				if r := <-results; r.c != nil {
					r.c.Close()
				}
			}
		}(started - answered)
	}
	tick := time.NewTicker(d.redial)
	defer tick.Stop()
	for {
		select {
		case r := <-results:
			answered++
			leave()
			return r.c, r.err
		case <-tick.C:
			if started < cap(results) {
				started++
				go attempt()
			}
		case <-ctx.Done():
			leave()
			return nil, &net.OpError{Op: "dial", Net: network, Err: context.DeadlineExceeded}
		}
	}
}

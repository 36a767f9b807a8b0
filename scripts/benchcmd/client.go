package main

import (
	"encoding/json"
	"errors"
	"flag"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// point is what one client run measured; the clients print it as JSON.
type point struct {
	Ops     int64   `json:"ops"`    // connections made or datagrams answered
	Errors  int64   `json:"errors"` // failed connects, unanswered requests
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rate"`             // ops per second
	P50us   float64 `json:"p50_us,omitempty"` // connect latency (tcp, -latency)
	P99us   float64 `json:"p99_us,omitempty"` // connect latency (tcp, -latency)
}

type clientFlags struct {
	addr    string
	conc    int
	dur     time.Duration
	latency bool
}

func parseClient(name string, args []string) (clientFlags, error) {
	var c clientFlags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "", "server `address`")
	fs.IntVar(&c.conc, "c", 1, "concurrent workers")
	fs.DurationVar(&c.dur, "d", 5*time.Second, "duration")
	fs.BoolVar(&c.latency, "latency", false, "record connect latencies (tcp)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.addr == "" || c.conc < 1 || c.conc > 1024 || c.dur <= 0 || c.dur > 10*time.Minute {
		return c, errors.New("need -addr, 1 <= -c <= 1024, 0 < -d <= 10m")
	}
	return c, nil
}

// udpRequest is the UDP client's datagram, the one the server answers.
var udpRequest = []byte("nfqfw-bench")

// maxLatencies bounds the latency samples kept per worker.
const maxLatencies = 1 << 20

// tcpClient connects and closes (SO_LINGER 0: an RST, no TIME_WAIT to run
// out of ports) in a loop per worker until the duration ends.
func tcpClient(args []string) error {
	cf, err := parseClient("tcp", args)
	if err != nil {
		return err
	}
	var ops, errs atomic.Int64
	lat := make([][]time.Duration, cf.conc)
	d := net.Dialer{Timeout: time.Second}
	took := runWorkers(cf, func(w int, end time.Time) {
		for time.Now().Before(end) {
			t0 := time.Now()
			c, err := d.Dial("tcp4", cf.addr)
			if err != nil {
				errs.Add(1)
				time.Sleep(time.Millisecond)
				continue
			}
			if cf.latency && len(lat[w]) < maxLatencies {
				lat[w] = append(lat[w], time.Since(t0))
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			ops.Add(1)
		}
	})
	p := result(ops.Load(), errs.Load(), took)
	if cf.latency {
		all := slices.Concat(lat...)
		slices.Sort(all)
		p.P50us, p.P99us = quantileUS(all, 0.50), quantileUS(all, 0.99)
	}
	return json.NewEncoder(os.Stdout).Encode(p)
}

// udpClient sends one datagram per new flow: each request goes from its
// own socket bound to the worker's next source port (ports cycle through
// 1024-65535, so a port comes back only after ~64k requests and the
// gateway's conntrack, whose UDP timeout the driver lowers, has forgotten
// it), and waits up to 200 ms for the answer.
func udpClient(args []string) error {
	cf, err := parseClient("udp", args)
	if err != nil {
		return err
	}
	raddr, err := net.ResolveUDPAddr("udp4", cf.addr)
	if err != nil {
		return err
	}
	const lo, hi = 1024, 65535
	var ops, errs atomic.Int64
	took := runWorkers(cf, func(w int, end time.Time) {
		msg, buf := udpRequest, make([]byte, 64)
		port := lo + w
		for time.Now().Before(end) {
			laddr := &net.UDPAddr{Port: port}
			port += cf.conc
			if port > hi {
				port = lo + w
			}
			c, err := net.DialUDP("udp4", laddr, raddr)
			if err != nil {
				continue // port in use: take the next
			}
			c.SetDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := c.Write(msg); err != nil {
				errs.Add(1)
			} else if _, err := c.Read(buf); err != nil {
				errs.Add(1)
			} else {
				ops.Add(1)
			}
			c.Close()
		}
	})
	return json.NewEncoder(os.Stdout).Encode(result(ops.Load(), errs.Load(), took))
}

// runWorkers runs work in cf.conc goroutines, each given its worker number
// (0 to cf.conc-1) and the time the run ends, and returns how long the run
// took once every worker returned.
func runWorkers(cf clientFlags, work func(w int, end time.Time)) time.Duration {
	start := time.Now()
	end := start.Add(cf.dur)
	var wg sync.WaitGroup
	for w := range cf.conc {
		wg.Go(func() { work(w, end) })
	}
	wg.Wait()
	return time.Since(start)
}

func result(ops, errs int64, d time.Duration) point {
	return point{Ops: ops, Errors: errs, Seconds: d.Seconds(), Rate: float64(ops) / d.Seconds()}
}

func quantileUS(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return float64(sorted[i]) / float64(time.Microsecond)
}

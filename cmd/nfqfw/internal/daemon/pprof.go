package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"
)

// CheckPprofAddr refuses a net/http/pprof address that is not a loopback
// address with a port: profiles show memory contents an outsider must not
// read. Run checks it before it installs anything.
func CheckPprofAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want a loopback HOST:PORT, e.g. 127.0.0.1:6060", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q: only loopback addresses are allowed (127.0.0.1, [::1] or localhost)", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%q: want a port 1-65535", addr)
	}
	return nil
}

// listenPprof listens on addr for net/http/pprof (see CheckPprofAddr).
func listenPprof(addr string) (net.Listener, error) {
	if err := CheckPprofAddr(addr); err != nil {
		return nil, fmt.Errorf("pprof address %w", err)
	}
	return net.Listen("tcp", addr)
}

// servePprof serves net/http/pprof on ln until ctx ends; it closes ln.
func servePprof(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

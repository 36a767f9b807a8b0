package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// MaxRequest is the largest request line the server reads.
const MaxRequest = 64 << 10

// Request is one control request.
type Request struct {
	Cmd  string          `json:"cmd"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response is the answer to one request.
type Response struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Handler answers one command. args is the raw "args" object (may be empty).
type Handler func(ctx context.Context, args json.RawMessage) (any, error)

// Server serves the control socket. Register handlers with Handle before
// Serve; Handle and Serve may be called from different goroutines.
type Server struct {
	path string
	log  *slog.Logger

	mu       sync.RWMutex
	handlers map[string]Handler

	ln net.Listener
}

// NewServer returns a server for the socket at path.
func NewServer(path string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{path: path, log: log, handlers: make(map[string]Handler)}
}

// Handle registers fn for cmd, replacing any earlier handler.
func (s *Server) Handle(cmd string, fn Handler) {
	s.mu.Lock()
	s.handlers[cmd] = fn
	s.mu.Unlock()
}

// Listen creates the socket (its directory 0700, the socket 0600), removing
// a stale socket file left by a crashed daemon. It fails if another daemon
// answers on the socket.
func (s *Server) Listen() error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("control: create socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", s.path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("control: listen %s: another daemon is running", s.path)
	}
	os.Remove(s.path)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", s.path)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("control: listen %s: %w", s.path, err)
	}
	if err := os.Chmod(s.path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control: chmod %s: %w", s.path, err)
	}
	s.ln = ln
	return nil
}

// Serve answers requests until ctx is done, then closes the socket and
// removes its file. It listens first unless Listen did. After an error the
// socket is closed, and Serve may be called again to listen anew.
func (s *Server) Serve(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	ln := s.ln
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		ln.Close()
	}()
	defer func() { s.ln = nil }()
	defer os.Remove(s.path)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("control: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c.(*net.UnixConn))
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReaderSize(c, 4096)
	if err := checkPeer(c); err != nil {
		s.log.Warn("control: refused peer", "err", err)
		// Take (and discard) the request first: answering and closing
		// before the client has written would make its write fail with
		// EPIPE, and it would never read why it was refused.
		c.SetReadDeadline(time.Now().Add(time.Second))
		readLine(r)
		writeResponse(c, nil, err)
		return
	}
	line, err := readLine(r)
	if err != nil {
		writeResponse(c, nil, err)
		return
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		writeResponse(c, nil, fmt.Errorf("%w: %v", ErrBadRequest, err))
		return
	}
	s.mu.RLock()
	h := s.handlers[req.Cmd]
	s.mu.RUnlock()
	if h == nil {
		writeResponse(c, nil, fmt.Errorf("%w %q", ErrUnknownCommand, req.Cmd))
		return
	}
	data, err := safeCall(ctx, h, req.Args)
	writeResponse(c, data, err)
}

// safeCall runs h, turning a panic into an error: a bad request must never
// take the daemon down.
func safeCall(ctx context.Context, h Handler, args json.RawMessage) (data any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return h(ctx, args)
}

func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		line = append(line, chunk...)
		if len(line) > MaxRequest {
			return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadRequest, MaxRequest)
		}
		if !isPrefix {
			return line, nil
		}
	}
}

func writeResponse(c net.Conn, data any, err error) {
	resp := Response{OK: err == nil}
	if err != nil {
		resp.Error = err.Error()
	} else if data != nil {
		b, merr := json.Marshal(data)
		if merr != nil {
			resp = Response{Error: "encode response: " + merr.Error()}
		} else {
			resp.Data = b
		}
	}
	b, _ := json.Marshal(resp)
	c.Write(append(b, '\n'))
}

// checkPeer allows root and the daemon's own user.
func checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *syscall.Ucred
	var cerr error
	raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if cerr != nil {
		return fmt.Errorf("%w: SO_PEERCRED: %v", ErrPeer, cerr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: uid %d", ErrPeer, cred.Uid)
	}
	return nil
}

// Call sends one request to the daemon at path and decodes the response data
// into out (which may be nil). A missing socket or a refused connection is
// reported as ErrNotRunning.
func Call(ctx context.Context, path, cmd string, args, out any) error {
	var raw json.RawMessage
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("control: encode %s request: %w", cmd, err)
		}
		raw = b
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (no daemon listens on %s)", ErrNotRunning, path)
		}
		return fmt.Errorf("control: connect %s: %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	b, _ := json.Marshal(Request{Cmd: cmd, Args: raw})
	if _, err := c.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("control: send %s: %w", cmd, err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("control: read %s response: %w", cmd, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("control: decode %s response: %w", cmd, err)
	}
	if !resp.OK {
		return &DaemonError{Cmd: cmd, Msg: resp.Error}
	}
	if out != nil && len(resp.Data) > 0 {
		if err := json.Unmarshal(resp.Data, out); err != nil {
			return fmt.Errorf("control: decode %s data: %w", cmd, err)
		}
	}
	return nil
}

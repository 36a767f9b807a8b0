package control

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func startServer(t *testing.T) (string, *Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "nfqfw.sock")
	s := NewServer(path, nil)
	s.Handle("echo", func(_ context.Context, args json.RawMessage) (any, error) {
		var v map[string]any
		if len(args) > 0 {
			if err := json.Unmarshal(args, &v); err != nil {
				return nil, err
			}
		}
		return v, nil
	})
	s.Handle("boom", func(context.Context, json.RawMessage) (any, error) { panic("boom") })
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path, s
}

func TestCallRoundTrip(t *testing.T) {
	path, _ := startServer(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode = %v, want 0600", perm)
	}
	var out map[string]string
	if err := Call(context.Background(), path, "echo", map[string]string{"a": "b"}, &out); err != nil {
		t.Fatal(err)
	}
	if out["a"] != "b" {
		t.Errorf("echo = %v", out)
	}
}

func TestErrors(t *testing.T) {
	path, _ := startServer(t)
	ctx := context.Background()
	tests := []struct {
		name string
		cmd  string
		want string
	}{
		{"unknown command", "nope", `unknown command "nope"`},
		{"handler panic is an error", "boom", "internal error: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Call(ctx, path, tt.cmd, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestMalformedRequests(t *testing.T) {
	path, _ := startServer(t)
	for name, req := range map[string]string{
		"not json":  "hello\n",
		"too long":  strings.Repeat("x", MaxRequest+10) + "\n",
		"no ending": "{\"cmd\":",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(req))
			if name == "no ending" {
				c.(*net.UnixConn).CloseWrite()
			}
			var resp Response
			if err := json.NewDecoder(c).Decode(&resp); err != nil {
				t.Fatal(err)
			}
			if resp.OK || !strings.Contains(resp.Error, "bad request") {
				t.Errorf("resp = %+v, want a bad request error", resp)
			}
		})
	}
	// The server still answers after the bad requests.
	if err := Call(context.Background(), path, "echo", nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestNotRunning(t *testing.T) {
	err := Call(context.Background(), filepath.Join(t.TempDir(), "none.sock"), "state", nil, nil)
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("err = %v, want ErrNotRunning", err)
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	path, _ := startServer(t)
	if err := NewServer(path, nil).Listen(); err == nil {
		t.Fatal("second Listen succeeded, want an error")
	}
}

func FuzzRequest(f *testing.F) {
	f.Add([]byte(`{"cmd":"echo","args":{"a":1}}`))
	f.Add([]byte(`{"cmd":"boom"}`))
	f.Add([]byte(`{"cmd":`))
	f.Add([]byte("\x00\xff"))
	path := filepath.Join(f.TempDir(), "fz.sock")
	s := NewServer(path, nil)
	s.Handle("echo", func(_ context.Context, args json.RawMessage) (any, error) { return string(args), nil })
	s.Handle("boom", func(context.Context, json.RawMessage) (any, error) { panic("boom") })
	if err := s.Listen(); err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	f.Fuzz(func(t *testing.T, req []byte) {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(append(req, '\n'))
		var resp Response
		if err := json.NewDecoder(c).Decode(&resp); err != nil {
			t.Fatalf("no response to %q: %v", req, err)
		}
	})
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/engine/control"
)

// healthStatus is what the fake daemon of the health tests reports.
var healthStatus = control.StatusResponse{
	Version:    "v1.2.3",
	PID:        4242,
	Config:     "/etc/nfqfw/nfqfw.yaml",
	ConfigHash: "0123456789abcdef0123",
	Started:    time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	Queues:     []uint16{0, 1},
	Flows:      17,
}

// serveStatus serves a control socket whose "status" handler is h and
// returns the socket path.
func serveStatus(t *testing.T, h control.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "nfqfw.sock")
	srv := control.NewServer(sock, nil)
	if h != nil {
		srv.Handle("status", h)
	}
	serveControl(t, srv)
	return sock
}

// silentSocket accepts connections and never answers, like a hung daemon.
func silentSocket(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "hung.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return sock
}

func TestHealth(t *testing.T) {
	answering := serveStatus(t, func(context.Context, json.RawMessage) (any, error) { return healthStatus, nil })
	refusing := serveStatus(t, func(context.Context, json.RawMessage) (any, error) {
		return nil, errors.New("engine stopped")
	})
	noStatus := serveStatus(t, nil)
	hung := silentSocket(t)
	missing := filepath.Join(t.TempDir(), "absent.sock")

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // prefix
		wantStderr string // substring
	}{
		{
			name:       "daemon answers",
			args:       []string{"health", "-s", answering},
			wantCode:   0,
			wantStdout: "ok: nfqfw v1.2.3 pid 4242 up ",
		},
		{
			name:       "no daemon listens",
			args:       []string{"health", "-s", missing},
			wantCode:   1,
			wantStderr: "nfqfw health: nfqfw daemon is not running (no daemon listens on " + missing + ")",
		},
		{
			name:       "daemon refuses status",
			args:       []string{"health", "-s", refusing},
			wantCode:   1,
			wantStderr: "nfqfw health: engine stopped\n",
		},
		{
			name:       "daemon without status handler",
			args:       []string{"health", "-s", noStatus},
			wantCode:   1,
			wantStderr: `unknown command "status"`,
		},
		{
			name:       "daemon hangs",
			args:       []string{"health", "-s", hung, "--timeout", "200ms"},
			wantCode:   1,
			wantStderr: "nfqfw health: daemon did not answer within 200ms",
		},
		{
			name:       "non-positive timeout",
			args:       []string{"health", "-s", answering, "--timeout", "0s"},
			wantCode:   1,
			wantStderr: "--timeout 0s: want a positive duration",
		},
		{
			name:       "stray argument",
			args:       []string{"health", "-s", answering, "now"},
			wantCode:   2,
			wantStderr: "nfqfw health: unexpected argument \"now\" (this command takes flags only)\n\nUsage: nfqfw health",
		},
		{
			// The file has an error the daemon would refuse on reload;
			// health reads only control.socket from it.
			name:       "socket from a config with an error elsewhere",
			args:       []string{"health", "-c", brokenConfig(t, answering)},
			wantCode:   0,
			wantStdout: "ok: nfqfw v1.2.3 pid 4242 up ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			start := time.Now()
			code := runMain(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stdout %q, stderr %q)", code, tt.wantCode, stdout.String(), stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout = %q, want prefix %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s: a probe must give up quickly", d)
			}
		})
	}
}

// brokenConfig writes a config naming socket whose rule has a port out of
// range, and returns its path.
func brokenConfig(t *testing.T, socket string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "broken.yaml")
	yaml := "input:\n  rules:\n    - {proto: tcp, dport: 70000, action: accept}\ncontrol: {socket: " + socket + "}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHealthJSON(t *testing.T) {
	sock := serveStatus(t, func(context.Context, json.RawMessage) (any, error) { return healthStatus, nil })
	var stdout, stderr bytes.Buffer
	if code := runMain([]string{"health", "-s", sock, "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code = %d, stderr %q", code, stderr.String())
	}
	var got control.StatusResponse
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not a StatusResponse: %v\n%s", err, stdout.String())
	}
	if diff := cmp.Diff(healthStatus, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestHealthLine(t *testing.T) {
	now := healthStatus.Started.Add(3*time.Minute + 7*time.Second + 500*time.Millisecond)
	tests := []struct {
		name string
		st   control.StatusResponse
		want string
	}{
		{
			name: "running daemon",
			st:   healthStatus,
			want: "ok: nfqfw v1.2.3 pid 4242 up 3m7s, queues [0 1], 17 flows, config /etc/nfqfw/nfqfw.yaml (hash 0123456789ab)",
		},
		{
			name: "no start time",
			st:   control.StatusResponse{Version: "dev", PID: 1, Config: "x.yaml"},
			want: "ok: nfqfw dev pid 1 up ?, queues [], 0 flows, config x.yaml (hash )",
		},
		{
			name: "state save failing",
			st:   control.StatusResponse{Version: "dev", PID: 1, Config: "x.yaml", StateSaveError: "store: save /var/lib/nfqfw/state.json: no space left on device"},
			want: "ok: nfqfw dev pid 1 up ?, queues [], 0 flows, config x.yaml (hash ); state save failing: store: save /var/lib/nfqfw/state.json: no space left on device",
		},
		{
			name: "backup gateway of a pair",
			st:   control.StatusResponse{Version: "dev", PID: 1, Config: "x.yaml", HARole: "backup"},
			want: "ok: nfqfw dev pid 1 up ?, queues [], 0 flows, config x.yaml (hash )\n  ha: backup",
		},
		{
			name: "fleet link down",
			st: control.StatusResponse{Version: "dev", PID: 1, Config: "x.yaml",
				Problems: []string{"fleet: link down (no NATS server reachable): enforcing and deciding alone, 2 decisions queued"},
				Fleet:    "gateway gw-a, link down (no NATS server reachable), enforcing alone, backlog 2, stream NFQFW at 41, published 7, received 30, refused 1"},
			want: "degraded: nfqfw dev pid 1 up ?, queues [], 0 flows, config x.yaml (hash )" +
				"\n  fleet: link down (no NATS server reachable): enforcing and deciding alone, 2 decisions queued" +
				"\n  fleet: gateway gw-a, link down (no NATS server reachable), enforcing alone, backlog 2, stream NFQFW at 41, published 7, received 30, refused 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, healthLine(tt.st, now)); diff != "" {
				t.Errorf("healthLine (-want +got):\n%s", diff)
			}
		})
	}
}

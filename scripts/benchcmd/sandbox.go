package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Addresses of the reference sandbox.
const (
	cliAddr = "10.99.1.2"
	srvAddr = "10.99.2.2"
)

// sandbox is the cli -> gw -> srv namespaces of one run.
type sandbox struct {
	cli, gw, srv string
	procs        []*proc
}

func newSandbox(ctx context.Context) (*sandbox, error) {
	base := fmt.Sprintf("nfqb%d", os.Getpid())
	s := &sandbox{cli: base + "-cli", gw: base + "-gw", srv: base + "-srv"}
	steps := [][]string{
		{"netns", "add", s.cli}, {"netns", "add", s.gw}, {"netns", "add", s.srv},
		{"-n", s.cli, "link", "set", "lo", "up"}, {"-n", s.gw, "link", "set", "lo", "up"}, {"-n", s.srv, "link", "set", "lo", "up"},
		// The veth pairs are born inside their namespaces: never in the host's.
		{"-n", s.cli, "link", "add", "veth-cg", "type", "veth", "peer", "name", "veth-gc", "netns", s.gw},
		{"-n", s.srv, "link", "add", "veth-sg", "type", "veth", "peer", "name", "veth-gs", "netns", s.gw},
		{"-n", s.cli, "addr", "add", cliAddr + "/24", "dev", "veth-cg"}, {"-n", s.cli, "link", "set", "veth-cg", "up"},
		{"-n", s.gw, "addr", "add", "10.99.1.1/24", "dev", "veth-gc"}, {"-n", s.gw, "link", "set", "veth-gc", "up"},
		{"-n", s.gw, "addr", "add", "10.99.2.1/24", "dev", "veth-gs"}, {"-n", s.gw, "link", "set", "veth-gs", "up"},
		{"-n", s.srv, "addr", "add", srvAddr + "/24", "dev", "veth-sg"}, {"-n", s.srv, "link", "set", "veth-sg", "up"},
		{"-n", s.cli, "route", "add", "default", "via", "10.99.1.1"},
		{"-n", s.srv, "route", "add", "default", "via", "10.99.2.1"},
	}
	for _, st := range steps {
		if _, err := run(ctx, append([]string{"ip"}, st...)...); err != nil {
			s.destroy()
			return nil, err
		}
	}
	for _, sc := range [][2]string{
		{s.gw, "net.ipv4.ip_forward=1"},
		{s.cli, "net.ipv4.ip_local_port_range=1024 65535"},
	} {
		if _, err := s.exec(ctx, sc[0], "sysctl", "-qw", sc[1]); err != nil {
			s.destroy()
			return nil, err
		}
	}
	return s, nil
}

// exec runs a command in namespace ns and returns its combined output.
func (s *sandbox) exec(ctx context.Context, ns string, cmd ...string) (string, error) {
	return run(ctx, append([]string{"ip", "netns", "exec", ns}, cmd...)...)
}

// start starts a long-running command in ns; destroy stops it if nobody
// did before.
func (s *sandbox) start(ns string, cmd ...string) (*proc, error) {
	c := exec.Command("ip", append([]string{"netns", "exec", ns}, cmd...)...)
	p := &proc{cmd: c, name: cmd[0]}
	c.Stdout, c.Stderr = &p.out, &p.out
	if err := c.Start(); err != nil {
		return nil, err
	}
	p.done = make(chan struct{})
	go func() { p.err = c.Wait(); close(p.done) }()
	s.procs = append(s.procs, p)
	return p, nil
}

// destroy stops every process it started, by PID, and deletes the
// namespaces (which deletes their links and rules).
func (s *sandbox) destroy() {
	for _, p := range s.procs {
		p.stop()
	}
	for _, ns := range []string{s.cli, s.gw, s.srv} {
		run(context.Background(), "ip", "netns", "del", ns)
	}
}

// proc is a process started in a namespace. `ip netns exec` execs the
// command, so the PID is the command's own.
type proc struct {
	cmd  *exec.Cmd
	name string
	out  bytes.Buffer // not safe to read before done is closed
	done chan struct{}
	err  error
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() error {
	if p.exited() {
		return p.err
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

func run(ctx context.Context, cmd ...string) (string, error) {
	out, err := exec.CommandContext(ctx, cmd[0], cmd[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(cmd, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

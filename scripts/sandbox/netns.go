package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// ExecTimeout bounds every command run by Exec.
const ExecTimeout = 30 * time.Second

// seq numbers the namespaces this process creates, for unique names.
var seq atomic.Uint64

// uniqueBase returns a prefix no other process or call uses: nfq-<pid>-<n>.
func uniqueBase() string {
	return fmt.Sprintf("nfq-%d-%d", os.Getpid(), seq.Add(1))
}

// Netns is one network namespace owned by a test. Its methods may be called
// from any goroutine of the test.
type Netns struct {
	// Name is the namespace's name under /var/run/netns.
	Name string

	t     testing.TB
	mu    sync.Mutex
	procs []*Proc
}

// NewNetns creates a fresh namespace named nfq-<pid>-<n>-<role> with its
// loopback up, and registers a cleanup that stops the processes started in
// it and deletes it.
func NewNetns(t testing.TB, role string) *Netns {
	t.Helper()
	return newNetns(t, uniqueBase()+"-"+role)
}

func newNetns(t testing.TB, name string) *Netns {
	t.Helper()
	if out, err := run("ip", "netns", "add", name); err != nil {
		t.Fatalf("create namespace %s: %v: %s", name, err, out)
	}
	n := &Netns{Name: name, t: t}
	t.Cleanup(n.destroy)
	if out, err := run("ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		t.Fatalf("namespace %s: lo up: %v: %s", name, err, out)
	}
	// No duplicate address detection on links created later (link-local
	// addresses included): tests must not wait for addresses to settle.
	n.MustExec("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
	return n
}

// Handle opens the namespace and returns its file descriptor, suitable for
// netlink.Config.NetNS or netns.Set. It is closed at test cleanup.
func (n *Netns) Handle() int {
	n.t.Helper()
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		n.t.Fatalf("open namespace %s: %v", n.Name, err)
	}
	n.t.Cleanup(func() { h.Close() })
	return int(h)
}

// Do runs fn on a locked OS thread switched into the namespace, then
// switches the thread back. Sockets opened by fn stay in the namespace.
func (n *Netns) Do(fn func() error) error {
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", n.Name, err)
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		// A fresh goroutine whose thread is thrown away if the switch
		// back fails: the test's own thread never changes namespace.
		errc <- doIn(h, fn)
	}()
	return <-errc
}

func doIn(h netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("get current namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(h); err != nil {
		return fmt.Errorf("enter namespace: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime discards it when the
		// goroutine exits.
		return fmt.Errorf("return to original namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// DialTimeout is net.DialTimeout from inside the namespace: the
// connection's socket lives there.
func (n *Netns) DialTimeout(network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return c, err
}

// HTTPClient is an HTTP client whose connections are dialled inside the
// namespace, without keep-alive, each request bounded by 10 s.
func (n *Netns) HTTPClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := n.Do(func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

// Exec runs cmd inside the namespace (ip netns exec), bounded by
// ExecTimeout, and returns its combined output.
func (n *Netns) Exec(cmd ...string) (string, error) {
	return run(append([]string{"ip", "netns", "exec", n.Name}, cmd...)...)
}

// MustExec is Exec that fails the test on error.
func (n *Netns) MustExec(cmd ...string) string {
	n.t.Helper()
	out, err := n.Exec(cmd...)
	if err != nil {
		n.t.Fatalf("%s: %s: %v: %s", n.Name, strings.Join(cmd, " "), err, out)
	}
	return out
}

// Start starts cmd in the background inside the namespace. It is stopped by
// PID at test cleanup if still running.
func (n *Netns) Start(cmd ...string) *Proc {
	n.t.Helper()
	p, err := startProc(append([]string{"ip", "netns", "exec", n.Name}, cmd...))
	if err != nil {
		n.t.Fatalf("%s: start %s: %v", n.Name, strings.Join(cmd, " "), err)
	}
	n.mu.Lock()
	n.procs = append(n.procs, p)
	n.mu.Unlock()
	return p
}

// destroy stops the processes started here, then any other process left in
// the namespace (all of them descend from this test, the name being unique),
// then deletes the namespace.
func (n *Netns) destroy() {
	n.mu.Lock()
	procs := n.procs
	n.procs = nil
	n.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
	if out, err := run("ip", "netns", "pids", n.Name); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if out, err := run("ip", "netns", "del", n.Name); err != nil {
		n.t.Errorf("delete namespace %s: %v: %s", n.Name, err, out)
	}
}

// run runs a host command bounded by ExecTimeout.
func run(cmd ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ExecTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
	out, err := c.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s: %w", strings.Join(cmd, " "), ctx.Err())
	}
	return string(out), err
}

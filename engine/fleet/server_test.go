package fleet

import (
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// natsServer is one real nats-server process with JetStream on loopback.
type natsServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string // nats-server's arguments
	cmd  *exec.Cmd
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNATS starts a nats-server with JetStream; it is stopped when the
// test ends.
func startNATS(t testing.TB) *natsServer {
	s := &natsServer{t: t, bin: sandbox.NATSServerBin(t), dir: t.TempDir(), port: freePort(t)}
	s.args = []string{"-a", "127.0.0.1", "-p", fmt.Sprint(s.port), "-js", "-sd", s.dir}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

func (s *natsServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("nats-server did not listen on %d within 5 s", s.port)
}

func (s *natsServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

package sandbox

import (
	"bytes"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// StopGrace is how long Stop waits after SIGTERM before SIGKILL.
const StopGrace = 2 * time.Second

// Proc is a background process started in a namespace.
type Proc struct {
	// Cmd is the running command; Cmd.Process.Pid is its PID (ip netns
	// exec replaces itself with the command).
	Cmd *exec.Cmd

	out  LockedBuffer
	done chan struct{}
	err  error // valid once done is closed
	once sync.Once
}

func startProc(argv []string) (*Proc, error) {
	p := &Proc{done: make(chan struct{})}
	p.Cmd = exec.Command(argv[0], argv[1:]...)
	p.Cmd.Stdout = &p.out
	p.Cmd.Stderr = &p.out
	if err := p.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Output returns what the process wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Wait waits at most d for the process to exit and returns its exit error;
// it returns ErrStillRunning when d passes first.
func (p *Proc) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		return ErrStillRunning
	}
}

// Stop sends SIGTERM by PID, then SIGKILL after StopGrace, and waits for the
// exit. It is idempotent and returns the exit error.
func (p *Proc) Stop() error {
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(StopGrace):
			p.Cmd.Process.Kill()
			<-p.done
		}
	})
	<-p.done
	return p.err
}

// LockedBuffer is a bytes.Buffer written and read from several
// goroutines: a process's output, a logger's.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

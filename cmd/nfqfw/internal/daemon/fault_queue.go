//go:build nfqfw_fault

package daemon

// A build for the end-to-end tests only (go build -tags nfqfw_fault):
// when the file named by $NFQFW_FAULT_QUEUE appears, every queue reader
// fails as a reader whose socket broke does, so the tests can watch the
// failure policy of an essential subsystem on the real kernel. Release
// builds do not contain this file.

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/nfqfw/nfqfw/engine/nfq"
)

func init() {
	if path := os.Getenv("NFQFW_FAULT_QUEUE"); path != "" {
		defaultKernel = faultKernel{kernel: hostKernel{}, trigger: path}
	}
}

// errInjectedQueueFailure is the failure a faulty queue reader reports.
var errInjectedQueueFailure = errors.New("injected queue reader failure (nfqfw_fault build)")

// faultKernel is the host's kernel whose queues fail on the trigger.
type faultKernel struct {
	kernel
	trigger string // the file whose existence fails the queues
}

func (k faultKernel) openQueue(c nfq.Config, d nfq.Decider) (queue, error) {
	q, err := k.kernel.openQueue(c, d)
	if err != nil {
		return nil, err
	}
	return faultQueue{queue: q, trigger: k.trigger}, nil
}

// faultQueue is a queue reader that fails, closing its socket, once the
// trigger file exists.
type faultQueue struct {
	queue
	trigger string
}

func (q faultQueue) Run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- q.queue.Run(ctx) }()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			if _, err := os.Stat(q.trigger); err == nil {
				q.queue.Close() // its Run returns when ctx ends
				return errInjectedQueueFailure
			}
		}
	}
}

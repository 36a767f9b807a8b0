package engine

import (
	"sync"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/nfq"
	"github.com/nfqfw/nfqfw/rules"
)

// TestPolicySwapWhileDeciding swaps the policy (with other timeouts, log
// rate and failure verdict, as a reload does) while two queue deciders
// decide packets. Run with -race: a reload must never race the packet
// path, and every packet gets the verdict of one whole policy.
func TestPolicySwapWhileDeciding(t *testing.T) {
	e := newServerEngine(t, 0)
	c := e.Policy().Config()
	alt := *c
	alt.Log.Rate = 3
	alt.Queue.FailureVerdict = rules.ActionAccept
	alt.Flows.Timeouts.TCPSynSent = time.Second
	pols := make([]*rules.Policy, 2)
	for i, cfg := range []*rules.Config{c, &alt} {
		p, err := rules.Compile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		pols[i] = p
	}
	ssh := flowTCP(t, "198.51.100.7:40000", "10.99.2.2:22", "S")
	closed := flowTCP(t, "198.51.100.8:40000", "10.99.2.2:9", "S")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for q := 0; q < 2; q++ {
		wg.Add(1)
		go func(q int) {
			defer wg.Done()
			dc := e.NewQueueDecider(nopObserver{}, nil)
			pkts := [][]byte{append([]byte(nil), ssh.b...), append([]byte(nil), closed.b...)}
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				b := pkts[i%2]
				setSrcPort(b, uint16(1024+i%50000)+uint16(q))
				v := dc.Decide(b, nfq.Meta{Hook: nfq.HookInput, InDev: uplinkIndex})
				if i%2 == 0 && !v.Accept {
					t.Errorf("ssh SYN not accepted under either policy: %+v", v)
					return
				}
				if i%2 == 1 && v.Accept {
					t.Errorf("SYN to a closed port accepted under either policy: %+v", v)
					return
				}
			}
		}(q)
	}
	for i := 0; i < 200; i++ {
		e.SetPolicy(pols[i%2], nil)
	}
	close(stop)
	wg.Wait()
}

type nopObserver struct{}

func (nopObserver) Observe(float64) {}

// TestUnplacedHookGetsFailureVerdict: a packet from a hook nfqfw never
// queues from is not accepted implicitly; it gets the failure verdict and
// is counted.
func TestUnplacedHookGetsFailureVerdict(t *testing.T) {
	e := newServerEngine(t, 0)
	dc := e.NewQueueDecider(nopObserver{}, nil)
	syn := flowTCP(t, "198.51.100.7:40000", "10.99.2.2:22", "S")
	if v := dc.Decide(syn.b, nfq.Meta{Hook: 250}); v.Accept {
		t.Errorf("unknown hook: %+v, want the failure verdict drop", v)
	}
	alt := *e.Policy().Config()
	alt.Queue.FailureVerdict = rules.ActionAccept
	p, err := rules.Compile(&alt)
	if err != nil {
		t.Fatal(err)
	}
	e.SetPolicy(p, nil)
	if v := dc.Decide(syn.b, nfq.Meta{Hook: 250}); !v.Accept {
		t.Errorf("unknown hook with failure_verdict accept: %+v", v)
	}
	if n := dc.Unplaced(); n != 2 {
		t.Errorf("Unplaced = %d, want 2", n)
	}
}

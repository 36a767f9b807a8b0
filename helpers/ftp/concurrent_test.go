package ftp

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/rules"
)

// TestConcurrent runs Inspect, Take, Expire and the metrics readers from
// several goroutines at once, as queue readers, the housekeeping ticker and
// a scrape do (run with -race). Every announced data connection is taken
// exactly once.
func TestConcurrent(t *testing.T) {
	h := newHelper(rules.FTP{MaxPerControl: 8})
	const readers, conns = 4, 50
	type work struct{ ann, first pkt }
	jobs := make([][]work, readers)
	for r := range jobs {
		for i := range conns {
			client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 99, 1, byte(10 + r)}), uint16(40000+i))
			c := newCtl(t, client, srv4)
			port := uint16(30000 + i)
			jobs[r] = append(jobs[r], work{
				ann:   c.next(fromServer, "229 Entering Extended Passive Mode (|||"+itoa(port)+"|)\r\n"),
				first: syn(t, netip.AddrPortFrom(client.Addr(), 50000), netip.AddrPortFrom(srv4.Addr(), port)),
			})
		}
	}
	var wg sync.WaitGroup
	taken := make([]int, readers)
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, w := range jobs[r] {
				h.inspectAt(w.ann, t0)
				if _, ok := h.Take(&w.first.p, t0); ok {
					taken[r]++
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			h.Expire(t0, func(engine.FlowKey) bool { return true })
			h.Stats()
		}
	}()
	wg.Wait()
	for r, n := range taken {
		if n != conns {
			t.Errorf("reader %d took %d of %d expectations", r, n, conns)
		}
	}
	if st := h.Stats(); st.Used != readers*conns || st.Expectations != 0 {
		t.Errorf("stats = %+v, want every expectation used once", st)
	}
}

package ftp

import (
	"strings"
	"testing"

	"github.com/nfqfw/nfqfw/rules"
)

// FuzzInspect feeds arbitrary control streams, cut into segments of
// arbitrary sizes, some sent twice or out of order, through the helper.
// Whatever the bytes, it must not panic and every expectation it holds must
// connect the control connection's own two hosts on a port of at least
// 1024, at most max_per_control of them.
func FuzzInspect(f *testing.F) {
	for _, lines := range readTranscripts(f) {
		var cs, ss strings.Builder
		for _, l := range lines {
			if l.fromServer {
				ss.WriteString(l.text)
			} else {
				cs.WriteString(l.text)
			}
		}
		f.Add([]byte(cs.String()), []byte(ss.String()), []byte{7, 1, 200, 3})
	}
	f.Add([]byte("PORT 10,99,1,2,157,189\r\nPORT 10,99,3,2,1,1\r\n"), []byte("227-x\r\n227 (10,99,2,2,117,49)\r\n"), []byte{0, 255, 128})
	f.Fuzz(func(t *testing.T, client, server, cuts []byte) {
		h := newHelper(rules.FTP{MaxPerControl: 4})
		c := newCtl(t, cli4, srv4)
		tmpl := [2]pkt{c.at(fromClient, 0, "x"), c.at(fromServer, 0, "x")}
		var off [2]int
		streams := [2][]byte{client, server}
		for i := 0; i < 64 && (off[0] < len(client) || off[1] < len(server)); i++ {
			cut := 1
			if len(cuts) > 0 {
				cut = int(cuts[i%len(cuts)])
			}
			d := i % 2
			s := streams[d]
			n := min(cut%97+1, len(s)-off[d])
			if n <= 0 {
				continue
			}
			start := off[d]
			if cut >= 240 && start > 0 {
				start -= min(start, cut-239) // a retransmission overlapping sent bytes
			}
			if cut == 239 {
				start += 3 // a gap
			}
			end := min(start+n, len(s))
			if start >= end {
				continue
			}
			p := tmpl[d]
			p.b = s[start:end]
			p.p.PayloadStart, p.p.PayloadLen = 0, end-start
			p.p.TCPSeq = c.seq[d] + uint32(start)
			h.Inspect(&p.p, p.b, t0)
			off[d] = max(off[d], end)
		}
		exps := h.Expectations()
		if len(exps) > 4 {
			t.Fatalf("%d expectations, more than max_per_control", len(exps))
		}
		for _, e := range exps {
			ok := (e.Src == cli4.Addr() && e.Dst.Addr() == srv4.Addr()) || (e.Src == srv4.Addr() && e.Dst.Addr() == cli4.Addr())
			if !ok || e.Dst.Port() < 1024 {
				t.Fatalf("expectation %+v leaves the control connection's hosts or uses a low port", e)
			}
		}
	})
}

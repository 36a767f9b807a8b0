package ftp

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/rules"
)

var sortSummaries = cmp.Transformer("sort", func(in []summary) []summary {
	out := append([]summary(nil), in...)
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
})

// transcriptWant is what each recorded control connection must leave
// behind.
var transcriptWant = map[string]struct {
	client, server netip.AddrPort
	want           []summary
}{
	"curl-epsv-v4.txt": {cli4, srv4, []summary{{KindEPSV, "10.99.1.2", "10.99.2.2:30017"}}},
	"curl-pasv-v4.txt": {cli4, srv4, []summary{{KindPASV, "10.99.1.2", "10.99.2.2:30001"}}},
	"curl-eprt-v4.txt": {cli4, srv4, []summary{{KindEPRT, "10.99.2.2", "10.99.1.2:40321"}}},
	"lftp-port-v4.txt": {cli4, srv4, []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40381"}}},
	"lftp-eprt-v6.txt": {cli6, srv6, []summary{
		{KindEPRT, "fd99:2::2", "[fd99:1::2]:38211"},
		{KindEPSV, "fd99:1::2", "[fd99:2::2]:30042"},
	}},
}

// TestTranscripts replays every recorded control connection, a segment per
// line, and checks the expectations it announces.
func TestTranscripts(t *testing.T) {
	ts := readTranscripts(t)
	for name, lines := range ts {
		t.Run(name, func(t *testing.T) {
			w, ok := transcriptWant[name]
			if !ok {
				t.Fatalf("no expectations listed for transcript %s", name)
			}
			h := newHelper(rules.FTP{})
			c := newCtl(t, w.client, w.server)
			for _, l := range lines {
				d := fromClient
				if l.fromServer {
					d = fromServer
				}
				h.inspectAt(c.next(d, l.text), t0)
			}
			if diff := cmp.Diff(w.want, summaries(h), sortSummaries); diff != "" {
				t.Errorf("expectations mismatch (-want +got):\n%s", diff)
			}
			if st := h.Stats(); st.Malformed != 0 || st.Refused != [NumRefusals]uint64{} {
				t.Errorf("stats = %+v, want nothing malformed or refused", st)
			}
		})
	}
}

// TestSplits cuts each direction of every transcript at every byte
// position (two segments per direction, interleaved with the other
// direction's) and into single bytes: the expectations must not change.
func TestSplits(t *testing.T) {
	for name, lines := range readTranscripts(t) {
		w := transcriptWant[name]
		var stream [2]string
		for _, l := range lines {
			if l.fromServer {
				stream[fromServer] += l.text
			} else {
				stream[fromClient] += l.text
			}
		}
		check := func(t *testing.T, segs [2][]string) {
			t.Helper()
			h := newHelper(rules.FTP{MaxPerControl: 8})
			c := newCtl(t, w.client, w.server)
			for i := 0; i < len(segs[0]) || i < len(segs[1]); i++ {
				for d := range segs {
					if i < len(segs[d]) {
						h.inspectAt(c.next(d, segs[d][i]), t0)
					}
				}
			}
			if diff := cmp.Diff(w.want, summaries(h), sortSummaries); diff != "" {
				t.Errorf("expectations mismatch (-want +got):\n%s", diff)
			}
			if st := h.Stats(); st.Malformed != 0 {
				t.Errorf("malformed = %d, want 0", st.Malformed)
			}
		}
		t.Run(name+"/every position", func(t *testing.T) {
			n := max(len(stream[0]), len(stream[1]))
			for i := 1; i < n; i++ {
				var segs [2][]string
				for d, s := range stream {
					j := min(i, len(s))
					segs[d] = []string{s[:j], s[j:]}
				}
				check(t, segs)
			}
		})
		t.Run(name+"/single bytes", func(t *testing.T) {
			var segs [2][]string
			for d, s := range stream {
				for i := range len(s) {
					segs[d] = append(segs[d], s[i:i+1])
				}
			}
			check(t, segs)
		})
		t.Run(name+"/one segment per direction", func(t *testing.T) {
			check(t, [2][]string{{stream[0]}, {stream[1]}})
		})
	}
}

// step is one segment of a control connection in a test case.
type step struct {
	d    int
	data string
	seq  int64 // >= 0: send at this offset from the direction's first byte instead of in order
}

func in(d int, data string) step { return step{d: d, data: data, seq: -1} }

func TestAnnouncements(t *testing.T) {
	const C, S = fromClient, fromServer
	none := [NumRefusals]uint64{}
	refused := func(r Refusal, n uint64) [NumRefusals]uint64 { x := none; x[r] = n; return x }
	tests := []struct {
		name           string
		client, server netip.AddrPort
		cfg            rules.FTP
		steps          []step
		want           []summary
		refused        [NumRefusals]uint64
		malformed      uint64
	}{
		{name: "PASV", steps: []step{in(S, "227 Entering Passive Mode (10,99,2,2,117,49).\r\n")},
			want: []summary{{KindPASV, "10.99.1.2", "10.99.2.2:30001"}}},
		{name: "EPSV", steps: []step{in(S, "229 Entering Extended Passive Mode (|||30017|)\r\n")},
			want: []summary{{KindEPSV, "10.99.1.2", "10.99.2.2:30017"}}},
		{name: "PORT", steps: []step{in(C, "PORT 10,99,1,2,157,189\r\n")},
			want: []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40381"}}},
		{name: "EPRT IPv4", steps: []step{in(C, "EPRT |1|10.99.1.2|40321|\r\n")},
			want: []summary{{KindEPRT, "10.99.2.2", "10.99.1.2:40321"}}},
		{name: "EPRT IPv6", client: cli6, server: srv6, steps: []step{in(C, "EPRT |2|fd99:1:0::2|40321|\r\n")},
			want: []summary{{KindEPRT, "fd99:2::2", "[fd99:1::2]:40321"}}},
		{name: "EPSV IPv6", client: cli6, server: srv6, steps: []step{in(S, "229 Entering Extended Passive Mode (|||30017|)\r\n")},
			want: []summary{{KindEPSV, "fd99:1::2", "[fd99:2::2]:30017"}}},
		{name: "bare LF ends a line", steps: []step{in(C, "PORT 10,99,1,2,157,189\n")},
			want: []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40381"}}},
		{name: "several lines in one segment", steps: []step{in(C, "TYPE I\r\nPORT 10,99,1,2,157,189\r\nRETR x\r\nPORT 10,99,1,2,157,190\r\n")},
			want: []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40381"}, {KindPORT, "10.99.2.2", "10.99.1.2:40382"}}},
		{name: "command words are read from the client only", steps: []step{in(S, "PORT 10,99,1,2,157,189\r\n"), in(C, "227 Entering Passive Mode (10,99,2,2,117,49).\r\n")}},
		{name: "227 inside a multi-line reply is text", steps: []step{in(S, "211-Status:\r\n227 Entering Passive Mode (10,99,2,2,117,49).\r\n211 End\r\n")}},
		{name: "final line of a multi-line 227 is read", steps: []step{in(S, "227-Here it comes\r\n text\r\n227 Entering Passive Mode (10,99,2,2,117,49).\r\n")},
			want: []summary{{KindPASV, "10.99.1.2", "10.99.2.2:30001"}}},
		{name: "reply after a multi-line reply is read", steps: []step{in(S, "211-Features:\r\n EPSV\r\n211 End\r\n229 Entering Extended Passive Mode (|||30017|)\r\n")},
			want: []summary{{KindEPSV, "10.99.1.2", "10.99.2.2:30017"}}},

		// Refusals.
		{name: "PORT naming a third host (bounce)", steps: []step{in(C, "PORT 10,99,3,2,157,189\r\n")}, refused: refused(RefusedBounce, 1)},
		{name: "PORT naming the server (bounce)", steps: []step{in(C, "PORT 10,99,2,2,157,189\r\n")}, refused: refused(RefusedBounce, 1)},
		{name: "EPRT naming a third host (bounce)", steps: []step{in(C, "EPRT |1|192.0.2.7|40321|\r\n")}, refused: refused(RefusedBounce, 1)},
		{name: "EPRT IPv6 naming a third host (bounce)", client: cli6, server: srv6, steps: []step{in(C, "EPRT |2|fd99:3::2|40321|\r\n")}, refused: refused(RefusedBounce, 1)},
		{name: "EPRT IPv4 on an IPv6 control connection (bounce)", client: cli6, server: srv6, steps: []step{in(C, "EPRT |1|10.99.1.2|40321|\r\n")}, refused: refused(RefusedBounce, 1)},
		{name: "227 naming a third host (bounce)", steps: []step{in(S, "227 Entering Passive Mode (10,99,3,2,117,49).\r\n")}, refused: refused(RefusedBounce, 1)},
		{name: "227 on an IPv6 control connection (bounce)", client: cli6, server: srv6, steps: []step{in(S, "227 Entering Passive Mode (10,99,2,2,117,49).\r\n")}, refused: refused(RefusedBounce, 1)},
		{name: "PORT to port 25 (low_port)", steps: []step{in(C, "PORT 10,99,1,2,0,25\r\n")}, refused: refused(RefusedLowPort, 1)},
		{name: "EPSV to port 1023 (low_port)", steps: []step{in(S, "229 Entering Extended Passive Mode (|||1023|)\r\n")}, refused: refused(RefusedLowPort, 1)},
		{name: "EPSV to port 1024 is allowed", steps: []step{in(S, "229 Entering Extended Passive Mode (|||1024|)\r\n")},
			want: []summary{{KindEPSV, "10.99.1.2", "10.99.2.2:1024"}}},
		{name: "more than max_per_control (too_many)", cfg: rules.FTP{MaxPerControl: 2},
			steps: []step{in(C, "PORT 10,99,1,2,100,1\r\nPORT 10,99,1,2,100,2\r\nPORT 10,99,1,2,100,3\r\n")},
			want:  []summary{{KindPORT, "10.99.2.2", "10.99.1.2:25601"}, {KindPORT, "10.99.2.2", "10.99.1.2:25602"}}, refused: refused(RefusedTooMany, 1)},
		{name: "the same port announced again renews", cfg: rules.FTP{MaxPerControl: 1},
			steps: []step{in(S, "227 Entering Passive Mode (10,99,2,2,117,49).\r\n227 Entering Passive Mode (10,99,2,2,117,49).\r\n")},
			want:  []summary{{KindPASV, "10.99.1.2", "10.99.2.2:30001"}}},

		// Malformed lines.
		{name: "malformed PORT", steps: []step{in(C, "PORT 10,99,1,2,157\r\nPORT 10,99,1,2,157,189\r\n")},
			want: []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40381"}}, malformed: 1},
		{name: "malformed 229", steps: []step{in(S, "229 Entering Extended Passive Mode (|||x|)\r\n")}, malformed: 1},
		{name: "overlong line is skipped whole", steps: []step{
			in(C, "NOOP "+strings.Repeat("x", MaxLine)),
			in(C, "PORT 10,99,1,2,157,189\r\n"),
			in(C, "PORT 10,99,1,2,157,190\r\n"),
		}, want: []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40382"}}, malformed: 1},
		{name: "overlong line in one segment", steps: []step{in(C, strings.Repeat("x", MaxLine+1)+"\r\nPORT 10,99,1,2,157,189\r\n")},
			want: []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40381"}}, malformed: 1},
		{name: "overlong line completed by a later segment", steps: []step{in(C, strings.Repeat("x", 400)), in(C, strings.Repeat("x", 200)+"\r\nPORT 10,99,1,2,157,189\r\n")},
			want: []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40381"}}, malformed: 1},
		{name: "line of exactly MaxLine bytes", steps: []step{in(C, "PORT 10,99,1,2,157,189"+strings.Repeat(" ", MaxLine-22)), in(C, "\n")},
			want: []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40381"}}},

		// TCP sequence handling.
		{name: "retransmitted segment is ignored", steps: []step{
			{d: C, data: "PORT 10,99,1,2,157,189\r\n", seq: 0},
			{d: C, data: "PORT 10,99,1,2,157,189\r\n", seq: 0},
		}, want: []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40381"}}},
		{name: "retransmission overlapping new data", steps: []step{
			{d: C, data: "PORT 10,99,1,2,", seq: 0},
			{d: C, data: "PORT 10,99,1,2,157,189\r\n", seq: 0},
		}, want: []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40381"}}},
		{name: "gap: resync at the next line", steps: []step{
			{d: C, data: "PORT 10,99,1,2,1", seq: 0},
			{d: C, data: "57,189\r\nPORT 10,99,1,2,157,190\r\n", seq: 20}, // 3 bytes lost: the first line is dropped
			{d: C, data: "0,9", seq: 16},                                  // arrives late: ignored
		}, want: []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40382"}}},
		{name: "gap in the middle of the next line", steps: []step{
			{d: C, data: "NOOP\r\n", seq: 0},
			{d: C, data: "10,99,1,2,157,189\r\nPORT 10,99,1,2,157,190\r\n", seq: 11},
		}, want: []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40382"}}},
		{name: "sequence numbers wrap", steps: []step{
			{d: C, data: "PORT 10,99,1,2,1", seq: 1<<32 - 1000 - 8},
			{d: C, data: "57,189\r\n", seq: 1<<32 - 1000 - 8 + 16},
		}, want: []summary{{KindPORT, "10.99.2.2", "10.99.1.2:40381"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.client.IsValid() {
				tt.client, tt.server = cli4, srv4
			}
			h := newHelper(tt.cfg)
			c := newCtl(t, tt.client, tt.server)
			base := c.seq
			for _, s := range tt.steps {
				if s.seq >= 0 {
					h.inspectAt(c.at(s.d, base[s.d]+uint32(s.seq), s.data), t0)
					continue
				}
				h.inspectAt(c.next(s.d, s.data), t0)
			}
			if diff := cmp.Diff(tt.want, summaries(h), sortSummaries); diff != "" {
				t.Errorf("expectations mismatch (-want +got):\n%s", diff)
			}
			st := h.Stats()
			if diff := cmp.Diff(tt.refused, st.Refused); diff != "" {
				t.Errorf("refusals mismatch (-want +got):\n%s", diff)
			}
			if st.Malformed != tt.malformed {
				t.Errorf("malformed = %d, want %d", st.Malformed, tt.malformed)
			}
		})
	}
}

// TestTake specifies which first packets an expectation admits: exact
// source address, destination address and port, any source port, once,
// before it expires.
func TestTake(t *testing.T) {
	pasv := "227 Entering Passive Mode (10,99,2,2,117,49).\r\n"
	port := "PORT 10,99,1,2,157,189\r\n"
	data := netip.MustParseAddrPort("10.99.2.2:30001")
	tests := []struct {
		name     string
		announce step
		first    pkt
		at       time.Duration
		want     bool
	}{
		{name: "passive data connection", announce: in(fromServer, pasv), first: syn(t, netip.MustParseAddrPort("10.99.1.2:51000"), data), want: true},
		{name: "passive: any source port", announce: in(fromServer, pasv), first: syn(t, netip.MustParseAddrPort("10.99.1.2:1"), data), want: true},
		{name: "passive: other source address", announce: in(fromServer, pasv), first: syn(t, netip.MustParseAddrPort("10.99.1.3:51000"), data)},
		{name: "passive: other port", announce: in(fromServer, pasv), first: syn(t, netip.MustParseAddrPort("10.99.1.2:51000"), netip.MustParseAddrPort("10.99.2.2:30002"))},
		{name: "passive: other destination", announce: in(fromServer, pasv), first: syn(t, netip.MustParseAddrPort("10.99.1.2:51000"), netip.MustParseAddrPort("10.99.2.3:30001"))},
		{name: "passive: the server cannot use it", announce: in(fromServer, pasv), first: syn(t, netip.MustParseAddrPort("10.99.2.2:30001"), netip.MustParseAddrPort("10.99.1.2:30001"))},
		{name: "passive: not a SYN", announce: in(fromServer, pasv), first: segment(t, netip.MustParseAddrPort("10.99.1.2:51000"), data, 1, 0x10, nil)},
		{name: "passive: SYN-ACK", announce: in(fromServer, pasv), first: segment(t, netip.MustParseAddrPort("10.99.1.2:51000"), data, 1, 0x12, nil)},
		{name: "passive: just before expiry", announce: in(fromServer, pasv), first: syn(t, netip.MustParseAddrPort("10.99.1.2:51000"), data), at: 30*time.Second - 1, want: true},
		{name: "passive: expired", announce: in(fromServer, pasv), first: syn(t, netip.MustParseAddrPort("10.99.1.2:51000"), data), at: 30 * time.Second},
		{name: "active from port 20", announce: in(fromClient, port), first: syn(t, netip.MustParseAddrPort("10.99.2.2:20"), netip.MustParseAddrPort("10.99.1.2:40381")), want: true},
		{name: "active from any port", announce: in(fromClient, port), first: syn(t, netip.MustParseAddrPort("10.99.2.2:41000"), netip.MustParseAddrPort("10.99.1.2:40381")), want: true},
		{name: "active: the client cannot use it", announce: in(fromClient, port), first: syn(t, netip.MustParseAddrPort("10.99.1.2:40381"), netip.MustParseAddrPort("10.99.2.2:40381"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHelper(rules.FTP{})
			c := newCtl(t, cli4, srv4)
			h.inspectAt(c.next(tt.announce.d, tt.announce.data), t0)
			parent, ok := h.Take(&tt.first.p, t0+int64(tt.at))
			if ok != tt.want {
				t.Fatalf("Take = %v, want %v", ok, tt.want)
			}
			if !ok {
				return
			}
			ctlPkt := c.next(fromClient, "")
			if want, _ := engine.KeyOf(&ctlPkt.p); parent != want {
				t.Errorf("parent = %v, want the control connection %v", parent, want)
			}
			if _, again := h.Take(&tt.first.p, t0+int64(tt.at)); again {
				t.Error("the expectation admitted a second connection")
			}
			if st := h.Stats(); st.Used != 1 || st.Expectations != 0 {
				t.Errorf("stats = %+v, want used 1 and nothing left", st)
			}
		})
	}
}

// TestExpire specifies the sweep: expectations end at their expiry, a
// used or expired expectation frees its control connection's slot, control
// connections the engine no longer tracks are forgotten.
func TestExpire(t *testing.T) {
	h := newHelper(rules.FTP{MaxPerControl: 1, Expiry: 10 * time.Second})
	c := newCtl(t, cli4, srv4)
	h.inspectAt(c.next(fromServer, "229 (|||30001|)\r\n"), t0)
	h.inspectAt(c.next(fromServer, "229 (|||30002|)\r\n"), t0)
	if st := h.Stats(); st.Created != 1 || st.Refused[RefusedTooMany] != 1 {
		t.Fatalf("stats = %+v, want 1 created and 1 refused too_many", st)
	}
	h.Expire(t0+int64(10*time.Second), func(engine.FlowKey) bool { return true })
	if st := h.Stats(); st.Expired != 1 || st.Expectations != 0 || st.Controls != 1 {
		t.Fatalf("stats after expiry = %+v, want 1 expired, none held, the control connection kept", st)
	}
	h.inspectAt(c.next(fromServer, "229 (|||30003|)\r\n"), t0+int64(11*time.Second))
	if st := h.Stats(); st.Created != 2 {
		t.Fatalf("stats = %+v: the expired expectation did not free its slot", st)
	}
	h.Expire(t0+int64(12*time.Second), func(engine.FlowKey) bool { return false })
	if st := h.Stats(); st.Controls != 0 || st.Expectations != 1 {
		t.Fatalf("stats = %+v, want the dead control connection gone, its expectation kept", st)
	}
	h.Expire(t0+int64(30*time.Second), nil)
	if st := h.Stats(); st.Expectations != 0 || st.Expired != 2 {
		t.Fatalf("stats = %+v, want everything expired", st)
	}
}

// TestControlBound specifies that the helper tracks at most MaxControls
// control connections, forgetting the least recently seen, and that a RST
// ends a control connection's state.
func TestControlBound(t *testing.T) {
	h := New(Options{Config: rules.FTP{}, MaxControls: 2})
	var cs []*ctl
	for i := range 3 {
		c := newCtl(t, netip.AddrPortFrom(cli4.Addr(), uint16(40000+i)), srv4)
		cs = append(cs, c)
		h.inspectAt(c.next(fromClient, "USER anonymous\r\n"), t0+int64(i))
	}
	if st := h.Stats(); st.Controls != 2 || st.Evicted != 1 {
		t.Fatalf("stats = %+v, want 2 tracked, 1 evicted", st)
	}
	c := cs[2]
	h.inspectAt(segment(t, c.client, c.server, c.seq[fromClient], 0x14, nil), t0+5)
	if st := h.Stats(); st.Controls != 1 {
		t.Fatalf("stats = %+v, want the reset control connection forgotten", st)
	}
}

func TestNotControl(t *testing.T) {
	h := newHelper(rules.FTP{Ports: []uint16{2121}})
	c := newCtl(t, cli4, srv4) // port 21: not a control port here
	h.inspectAt(c.next(fromClient, "PORT 10,99,1,2,157,189\r\n"), t0)
	if st := h.Stats(); st.Controls != 0 || st.Created != 0 {
		t.Fatalf("stats = %+v, want port 21 ignored", st)
	}
	c = newCtl(t, cli4, netip.AddrPortFrom(srv4.Addr(), 2121))
	h.inspectAt(c.next(fromClient, "PORT 10,99,1,2,157,189\r\n"), t0)
	if st := h.Stats(); st.Created != 1 {
		t.Fatalf("stats = %+v, want the configured port 2121 read", st)
	}
}

func TestFTPRefusals(t *testing.T) {
	h := newHelper(rules.FTP{})
	c := newCtl(t, cli4, srv4)
	h.inspectAt(c.next(fromClient, "PORT 10,99,3,2,157,189\r\nPORT 10,99,1,2,0,21\r\nPORT 1,2\r\n"), t0)
	st := h.Stats()
	got := map[string]uint64{}
	for r := Refusal(0); r < NumRefusals; r++ {
		got[r.String()] = st.Refused[r]
	}
	want := map[string]uint64{"bounce": 1, "low_port": 1, "too_many": 0, "table_full": 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("refusals mismatch (-want +got):\n%s", diff)
	}
	if st.Malformed != 1 || st.Created != 0 {
		t.Errorf("Stats = %+v, want 1 malformed, none created", st)
	}
}

func TestTableFull(t *testing.T) {
	h := New(Options{Config: rules.FTP{}, MaxExpectations: 1})
	c := newCtl(t, cli4, srv4)
	h.inspectAt(c.next(fromClient, "PORT 10,99,1,2,100,1\r\nPORT 10,99,1,2,100,2\r\n"), t0)
	if st := h.Stats(); st.Created != 1 || st.Refused[RefusedTableFull] != 1 {
		t.Fatalf("stats = %+v, want 1 created, 1 refused table_full", st)
	}
}

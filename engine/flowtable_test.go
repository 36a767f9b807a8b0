package engine

import (
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// flowStep is one packet reaching the table: it is classified and, when
// NEW, admitted by rule 1 as the engine would after an accept.
type flowStep struct {
	at   int64 // seconds after flowNow
	pkt  flowPacket
	want Class
}

func runFlowSteps(t *testing.T, tbl *Table, steps []flowStep) {
	t.Helper()
	for i, st := range steps {
		now := flowNow + st.at*sec
		got := tbl.Classify(&st.pkt.p, now)
		if got == ClassNew && !tbl.Admit(&st.pkt.p, 1, now) {
			t.Fatalf("step %d: Admit refused", i)
		}
		if got != st.want {
			t.Errorf("step %d: class %v, want %v", i, got, st.want)
		}
	}
}

// flowLines lists the table as the state view would at flowNow+at seconds,
// sorted.
func flowLines(tbl *Table, at int64) []string {
	tbl.clock = func() int64 { return flowNow + at*sec }
	var lines []string
	tbl.Walk(func(fi FlowInfo) bool {
		lines = append(lines, fi.String())
		return true
	})
	slices.Sort(lines)
	return lines
}

func TestClassify(t *testing.T) {
	var (
		cli, srv = "10.0.0.1", "10.0.0.2"
		router   = "192.0.2.1"
		syn      = flowTCP(t, "10.0.0.1:40000", "10.0.0.2:22", "S")
		synack   = flowTCP(t, "10.0.0.2:22", "10.0.0.1:40000", "SA")
		dns      = flowUDP(t, "10.0.0.1:40000", "10.0.0.2:53")
		dnsReply = flowUDP(t, "10.0.0.2:53", "10.0.0.1:40000")
		dns6     = flowUDP(t, "[2001:db8::1]:40000", "[2001:db8::2]:53")
		ping     = flowEcho(t, cli, srv, 7, true)
		pong     = flowEcho(t, srv, cli, 7, false)
		ping6    = flowEcho(t, "2001:db8::1", "2001:db8::2", 7, true)
		pong6    = flowEcho(t, "2001:db8::2", "2001:db8::1", 7, false)
	)
	tests := []struct {
		name  string
		steps []flowStep
		at    int64    // when the table is listed
		want  []string // the table, as conntrack -L lines
	}{
		{
			name:  "udp without reply",
			steps: []flowStep{{0, dns, ClassNew}},
			want:  []string{"udp      17 30 src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=53 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=40000 rule=1"},
		},
		{
			name:  "udp reply makes an assured stream",
			steps: []flowStep{{0, dns, ClassNew}, {1, dnsReply, ClassEstablished}},
			at:    1,
			want:  []string{"udp      17 180 src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=53 src=10.0.0.2 dst=10.0.0.1 sport=53 dport=40000 [ASSURED] rule=1"},
		},
		{
			name:  "udp from the originator refreshes the timer",
			steps: []flowStep{{0, dns, ClassNew}, {20, dns, ClassEstablished}},
			at:    25,
			want:  []string{"udp      17 25 src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=53 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=40000 rule=1"},
		},
		{
			name:  "udp flow expired: the next datagram is NEW again",
			steps: []flowStep{{0, dns, ClassNew}, {30, dns, ClassNew}},
			at:    30,
			want:  []string{"udp      17 30 src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=53 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=40000 rule=1"},
		},
		{
			name:  "udp reply after the flow expired is NEW in its own direction",
			steps: []flowStep{{0, dns, ClassNew}, {31, dnsReply, ClassNew}},
			at:    31,
			want:  []string{"udp      17 30 src=10.0.0.2 dst=10.0.0.1 sport=53 dport=40000 [UNREPLIED] src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=53 rule=1"},
		},
		{
			name:  "icmp echo request and reply",
			steps: []flowStep{{0, ping, ClassNew}, {1, pong, ClassEstablished}},
			at:    1,
			want:  []string{"icmp     1 30 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7 rule=1"},
		},
		{
			name:  "icmpv6 echo request and reply",
			steps: []flowStep{{0, ping6, ClassNew}, {0, pong6, ClassEstablished}},
			want:  []string{"icmpv6   58 30 src=2001:db8::1 dst=2001:db8::2 type=128 code=0 id=7 src=2001:db8::2 dst=2001:db8::1 type=129 code=0 id=7 rule=1"},
		},
		{
			name:  "echo reply without a request is invalid",
			steps: []flowStep{{0, pong, ClassInvalid}, {0, pong6, ClassInvalid}},
		},
		{
			name:  "echo request from the responder is its own flow",
			steps: []flowStep{{0, ping, ClassNew}, {0, flowEcho(t, srv, cli, 7, true), ClassNew}},
			want: []string{
				"icmp     1 30 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7 rule=1",
				"icmp     1 30 src=10.0.0.2 dst=10.0.0.1 type=8 code=0 id=7 [UNREPLIED] src=10.0.0.1 dst=10.0.0.2 type=0 code=0 id=7 rule=1",
			},
		},
		{
			name:  "icmpv6 router advertisement is NEW, keyed on addresses",
			steps: []flowStep{{0, flowICMPType(t, "fe80::1", "ff02::1", 134), ClassNew}, {5, flowICMPType(t, "fe80::1", "ff02::1", 134), ClassEstablished}},
			at:    5,
			want:  []string{"icmpv6   58 30 src=fe80::1 dst=ff02::1 [UNREPLIED] src=ff02::1 dst=fe80::1 rule=1"},
		},
		{
			name:  "gre has no ports and the generic timeout",
			steps: []flowStep{{0, flowGRE(t, cli, srv), ClassNew}, {0, flowGRE(t, srv, cli), ClassEstablished}},
			want:  []string{"gre      47 600 src=10.0.0.1 dst=10.0.0.2 src=10.0.0.2 dst=10.0.0.1 rule=1"},
		},
		{
			name:  "icmp error quoting our SYN is RELATED",
			steps: []flowStep{{0, syn, ClassNew}, {1, flowICMPError(t, router, cli, syn), ClassRelated}},
			at:    1,
			want:  []string{"tcp      6 119 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=22 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=22 dport=40000 rule=1"},
		},
		{
			name:  "icmp error quoting the reply direction is RELATED",
			steps: []flowStep{{0, syn, ClassNew}, {0, synack, ClassEstablished}, {0, flowICMPError(t, router, srv, synack), ClassRelated}},
			want:  []string{"tcp      6 60 SYN_RECV src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=22 src=10.0.0.2 dst=10.0.0.1 sport=22 dport=40000 rule=1"},
		},
		{
			name:  "icmp error quoting an untracked flow is INVALID",
			steps: []flowStep{{0, syn, ClassNew}, {0, flowICMPError(t, router, cli, flowTCP(t, "10.0.0.1:40001", "10.0.0.2:22", "S")), ClassInvalid}},
			want:  []string{"tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=22 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=22 dport=40000 rule=1"},
		},
		{
			name:  "icmp error quoting an expired flow is INVALID",
			steps: []flowStep{{0, dns, ClassNew}, {30, flowICMPError(t, srv, cli, dns), ClassInvalid}},
			at:    30,
		},
		{
			name:  "icmpv6 error quoting a udp flow is RELATED",
			steps: []flowStep{{0, dns6, ClassNew}, {0, flowICMPError(t, "2001:db8::2", "2001:db8::1", dns6), ClassRelated}},
			want:  []string{"udp      17 30 src=2001:db8::1 dst=2001:db8::2 sport=40000 dport=53 [UNREPLIED] src=2001:db8::2 dst=2001:db8::1 sport=53 dport=40000 rule=1"},
		},
		{
			name:  "icmp error quoting a ping is RELATED",
			steps: []flowStep{{0, ping, ClassNew}, {0, flowICMPError(t, router, cli, ping), ClassRelated}},
			want:  []string{"icmp     1 30 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7 rule=1"},
		},
		{
			name:  "icmp error quoting the echo reply is RELATED",
			steps: []flowStep{{0, ping, ClassNew}, {0, pong, ClassEstablished}, {0, flowICMPError(t, router, srv, pong), ClassRelated}},
			want:  []string{"icmp     1 30 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7 rule=1"},
		},
		{
			name:  "icmpv6 error quoting a ping6 is RELATED",
			steps: []flowStep{{0, ping6, ClassNew}, {0, flowICMPError(t, "2001:db8::ff", "2001:db8::1", ping6), ClassRelated}},
			want:  []string{"icmpv6   58 30 src=2001:db8::1 dst=2001:db8::2 type=128 code=0 id=7 [UNREPLIED] src=2001:db8::2 dst=2001:db8::1 type=129 code=0 id=7 rule=1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable(64, DefaultTimeouts())
			runFlowSteps(t, tbl, tt.steps)
			if diff := cmp.Diff(tt.want, flowLines(tbl, tt.at)); diff != "" {
				t.Errorf("table (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClassifyICMPErrorWithoutQuoteIsInvalid(t *testing.T) {
	tbl := NewTable(64, DefaultTimeouts())
	// A port unreachable whose quote the decoder could not read.
	p := flowICMPType(t, "192.0.2.1", "10.0.0.1", 3).p
	p.HasInner = false
	if got := tbl.Classify(&p, flowNow); got != ClassInvalid {
		t.Errorf("class %v, want INVALID", got)
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{ClassNew: "NEW", ClassEstablished: "ESTABLISHED", ClassRelated: "RELATED", ClassInvalid: "INVALID", 9: "UNKNOWN"} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d) = %q, want %q", c, got, want)
		}
	}
}

func TestAdmitRelatedShowsItsParent(t *testing.T) {
	tbl := NewTable(64, DefaultTimeouts())
	ctrl := flowTCP(t, "10.0.0.1:40000", "10.0.0.2:21", "S")
	runFlowSteps(t, tbl, []flowStep{{0, ctrl, ClassNew}})
	parent, _ := KeyOf(&ctrl.p)

	// Passive mode: the client opens the data connection the server announced.
	data := flowTCP(t, "10.0.0.1:40001", "10.0.0.2:30000", "S")
	if c := tbl.Classify(&data.p, flowNow); c != ClassNew {
		t.Fatalf("data SYN is %v, want NEW", c)
	}
	if !tbl.AdmitRelated(&data.p, parent, 4, flowNow) {
		t.Fatal("AdmitRelated refused")
	}
	want := []string{
		"tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=21 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=21 dport=40000 rule=1",
		"tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40001 dport=30000 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=30000 dport=40001 rule=4 related-to=tcp src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=21",
	}
	if diff := cmp.Diff(want, flowLines(tbl, 0)); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	synack := flowTCP(t, "10.0.0.2:30000", "10.0.0.1:40001", "SA")
	if c := tbl.Classify(&synack.p, flowNow); c != ClassEstablished {
		t.Errorf("data SYN/ACK is %v, want ESTABLISHED", c)
	}

	k, _ := KeyOf(&data.p)
	if !tbl.Delete(k) {
		t.Fatal("Delete of the data flow found nothing")
	}
	s := tbl.shardOf(&k)
	if n := len(s.rel); n != 0 {
		t.Errorf("%d parent records left after the related flow went", n)
	}
}

func TestEviction(t *testing.T) {
	type stats struct {
		Admitted bool
		Len      int
		Stats    TableStats
	}
	tests := []struct {
		name string
		fill func(t *testing.T, tbl *Table, i int) // makes flow i
		at   int64                                 // seconds after flowNow of the extra admission
		want stats
	}{
		{
			name: "unreplied flows make room",
			fill: func(t *testing.T, tbl *Table, i int) {
				runFlowSteps(t, tbl, []flowStep{{0, flowUDP(t, "10.0.0.1:4000"+string(rune('0'+i)), "10.0.0.2:53"), ClassNew}})
			},
			want: stats{Admitted: true, Len: 4, Stats: TableStats{Evicted: 1}},
		},
		{
			name: "replied but unassured flows make room",
			fill: func(t *testing.T, tbl *Table, i int) {
				c, s := "10.0.0.1:4000"+string(rune('0'+i)), "10.0.0.2:22"
				runFlowSteps(t, tbl, []flowStep{{0, flowTCP(t, c, s, "S"), ClassNew}, {0, flowTCP(t, s, c, "SA"), ClassEstablished}})
			},
			want: stats{Admitted: true, Len: 4, Stats: TableStats{Evicted: 1}},
		},
		{
			name: "assured flows are never evicted",
			fill: func(t *testing.T, tbl *Table, i int) {
				c, s := "10.0.0.1:4000"+string(rune('0'+i)), "10.0.0.2:53"
				runFlowSteps(t, tbl, []flowStep{{0, flowUDP(t, c, s), ClassNew}, {0, flowUDP(t, s, c), ClassEstablished}})
			},
			want: stats{Admitted: false, Len: 4, Stats: TableStats{Refused: 1}},
		},
		{
			name: "an expired flow makes room first",
			fill: func(t *testing.T, tbl *Table, i int) {
				c, s := "10.0.0.1:4000"+string(rune('0'+i)), "10.0.0.2:53"
				runFlowSteps(t, tbl, []flowStep{{0, flowUDP(t, c, s), ClassNew}, {0, flowUDP(t, s, c), ClassEstablished}})
			},
			at:   180,
			want: stats{Admitted: true, Len: 4, Stats: TableStats{Expired: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable(4, DefaultTimeouts())
			for i := range 4 {
				tt.fill(t, tbl, i)
			}
			extra := flowUDP(t, "10.0.0.9:1000", "10.0.0.2:53")
			got := stats{Admitted: tbl.Admit(&extra.p, 1, flowNow+tt.at*sec), Len: tbl.Len(), Stats: tbl.Stats()}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestUpdateAndDeleteFollowConntrackEvents(t *testing.T) {
	tbl := NewTable(64, DefaultTimeouts())
	syn := flowTCP(t, "10.0.0.1:40000", "10.0.0.2:22", "S")
	runFlowSteps(t, tbl, []flowStep{{0, syn, ClassNew}})
	k, _ := KeyOfTuple(6, flowSrc(&syn.p), flowDst(&syn.p))

	if !tbl.Update(k, FlowUpdate{TCPState: TCPEstablished, Replied: true, Assured: true, Timeout: 431999 * time.Second}, flowNow) {
		t.Fatal("Update did not find the admitted flow")
	}
	want := []string{"tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=22 src=10.0.0.2 dst=10.0.0.1 sport=22 dport=40000 [ASSURED] rule=1"}
	if diff := cmp.Diff(want, flowLines(tbl, 0)); diff != "" {
		t.Errorf("after ESTABLISHED event (-want +got):\n%s", diff)
	}
	if !tbl.Update(k, FlowUpdate{TCPState: TCPTimeWait}, flowNow) {
		t.Fatal("Update did not find the flow")
	}
	want = []string{"tcp      6 120 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=22 src=10.0.0.2 dst=10.0.0.1 sport=22 dport=40000 [ASSURED] rule=1"}
	if diff := cmp.Diff(want, flowLines(tbl, 0)); diff != "" {
		t.Errorf("after TIME_WAIT event without timeout (-want +got):\n%s", diff)
	}

	other, _ := KeyOfTuple(6, flowSrc(&syn.p), flowSrc(&syn.p))
	if tbl.Update(other, FlowUpdate{Replied: true}, flowNow) {
		t.Error("Update of an untracked flow reported it tracked")
	}
	if !tbl.Delete(k) {
		t.Error("Delete did not find the flow")
	}
	if tbl.Delete(k) {
		t.Error("second Delete found the flow")
	}
	if diff := cmp.Diff(FlowCounts{}, tbl.Counts()); diff != "" || tbl.Len() != 0 {
		t.Errorf("after Delete: Len %d, counts (-want +got):\n%s", tbl.Len(), diff)
	}
}

func TestExpireSweepsTimedOutFlows(t *testing.T) {
	tbl := NewTable(64, DefaultTimeouts())
	runFlowSteps(t, tbl, []flowStep{
		{0, flowUDP(t, "10.0.0.1:40000", "10.0.0.2:53"), ClassNew},              // 30 s
		{0, flowEcho(t, "10.0.0.1", "10.0.0.2", 1, true), ClassNew},             // 30 s
		{0, flowTCP(t, "10.0.0.1:40000", "10.0.0.2:22", "S"), ClassNew},         // 120 s
		{0, flowGRE(t, "10.0.0.1", "10.0.0.2"), ClassNew},                       // 600 s
		{0, flowUDP(t, "[2001:db8::1]:1", "[2001:db8::2]:2"), ClassNew},         // 30 s
		{1, flowUDP(t, "[2001:db8::2]:2", "[2001:db8::1]:1"), ClassEstablished}, // now 180 s
	})
	steps := []struct {
		at        int64
		want, len int
	}{{29, 0, 5}, {30, 2, 3}, {120, 1, 2}, {181, 1, 1}, {600, 1, 0}}
	for _, st := range steps {
		if got := tbl.Expire(flowNow + st.at*sec); got != st.want || tbl.Len() != st.len {
			t.Errorf("Expire at +%ds removed %d leaving %d, want %d leaving %d", st.at, got, tbl.Len(), st.want, st.len)
		}
	}
	if got := tbl.Stats().Expired; got != 5 {
		t.Errorf("Stats().Expired = %d, want 5", got)
	}
}

func TestCountsByState(t *testing.T) {
	tbl := NewTable(64, DefaultTimeouts())
	runFlowSteps(t, tbl, []flowStep{
		{0, flowTCP(t, "10.0.0.1:40000", "10.0.0.2:22", "S"), ClassNew},
		{0, flowTCP(t, "10.0.0.1:40001", "10.0.0.2:22", "S"), ClassNew},
		{0, flowTCP(t, "10.0.0.2:22", "10.0.0.1:40001", "SA"), ClassEstablished},
		{0, flowTCP(t, "10.0.0.1:40001", "10.0.0.2:22", "A"), ClassEstablished},
		{0, flowUDP(t, "10.0.0.1:40000", "10.0.0.2:53"), ClassNew},
		{0, flowEcho(t, "10.0.0.1", "10.0.0.2", 1, true), ClassNew},
		{0, flowEcho(t, "10.0.0.2", "10.0.0.1", 1, false), ClassEstablished},
		{0, flowGRE(t, "10.0.0.1", "10.0.0.2"), ClassNew},
	})
	var want FlowCounts
	want.TCP[TCPSynSent], want.TCP[TCPEstablished] = 1, 1
	want.UDP, want.ICMP, want.Other = 1, 1, 1
	want.Unreplied, want.Assured = 3, 1
	if diff := cmp.Diff(want, tbl.Counts()); diff != "" {
		t.Errorf("Counts() (-want +got):\n%s", diff)
	}
}

func TestWalkStopsWhenAsked(t *testing.T) {
	tbl := NewTable(1<<12, DefaultTimeouts())
	p := flowUDP(t, "10.0.0.1:1", "10.0.0.2:53").p
	for i := range 100 {
		p.SrcPort = uint16(1000 + i)
		tbl.Admit(&p, -1, flowNow)
	}
	n := 0
	tbl.clock = func() int64 { return flowNow }
	tbl.Walk(func(FlowInfo) bool { n++; return n < 10 })
	if n != 10 {
		t.Errorf("Walk called fn %d times after it returned false at 10", n)
	}
}

func TestConcurrentReaders(t *testing.T) {
	const (
		readers = 4
		packets = 3000
		max     = 2048
	)
	tbl := NewTable(max, DefaultTimeouts())
	base := flowUDP(t, "10.0.0.1:1", "10.0.0.2:53").p
	var wg sync.WaitGroup
	for r := range readers {
		wg.Go(func() {
			p := base
			for i := range packets {
				p.SrcPort = uint16(i % 4000) // readers overlap on the same flows
				p.Src[15] = byte(r % 2)
				now := flowNow + int64(i)*sec/100
				if tbl.Classify(&p, now) == ClassNew {
					tbl.Admit(&p, r, now)
				}
				if i%7 == 0 {
					k, _ := KeyOf(&p)
					tbl.Delete(k)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			tbl.Expire(flowNow + int64(i)*sec)
			tbl.Walk(func(FlowInfo) bool { return true })
			tbl.Counts()
		}
	})
	wg.Wait()

	c := tbl.Counts()
	if n := tbl.Len(); n > max || n != c.UDP {
		t.Errorf("Len %d, Counts().UDP %d, max %d", n, c.UDP, max)
	}
	walked := 0
	tbl.clock = func() int64 { return 0 }
	tbl.Walk(func(FlowInfo) bool { walked++; return true })
	if walked != tbl.Len() {
		t.Errorf("Walk saw %d flows, Len is %d", walked, tbl.Len())
	}
}

// TestClassifyAdmitDoNotAllocate proves the packet path allocation-free for
// every protocol, for new flows, tracked flows and a full table.
func TestClassifyAdmitDoNotAllocate(t *testing.T) {
	tracked := flowTCP(t, "10.0.0.1:40000", "10.0.0.2:22", "S")
	tests := []struct {
		name string
		pkt  flowPacket
		vary func(p *Parsed, i int) // makes run i a different flow
	}{
		{"tcp ipv4 SYN", flowTCP(t, "10.0.0.1:1", "10.0.0.2:22", "S"), func(p *Parsed, i int) { p.SrcPort = uint16(i) }},
		{"tcp ipv6 SYN", flowTCP(t, "[2001:db8::1]:1", "[2001:db8::2]:22", "S"), func(p *Parsed, i int) { p.SrcPort = uint16(i) }},
		{"udp ipv4", flowUDP(t, "10.0.0.1:1", "10.0.0.2:53"), func(p *Parsed, i int) { p.SrcPort = uint16(i) }},
		{"udp ipv6", flowUDP(t, "[2001:db8::1]:1", "[2001:db8::2]:53"), func(p *Parsed, i int) { p.SrcPort = uint16(i) }},
		{"icmp echo", flowEcho(t, "10.0.0.1", "10.0.0.2", 1, true), func(p *Parsed, i int) { p.ICMPID = uint16(i) }},
		{"icmpv6 echo", flowEcho(t, "2001:db8::1", "2001:db8::2", 1, true), func(p *Parsed, i int) { p.ICMPID = uint16(i) }},
		{"icmpv6 neighbour solicitation", flowICMPType(t, "fe80::1", "ff02::1:ff00:2", 135), func(p *Parsed, i int) { p.Src[14], p.Src[15] = byte(i>>8), byte(i) }},
		{"gre", flowGRE(t, "10.0.0.1", "10.0.0.2"), func(p *Parsed, i int) { p.Src[14], p.Src[15] = byte(i>>8), byte(i) }},
		{"icmp error about a tracked flow", flowICMPError(t, "192.0.2.1", "10.0.0.1", tracked), func(*Parsed, int) {}},
		{"tracked tcp flow", tracked, func(*Parsed, int) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable(1<<16, DefaultTimeouts())
			tbl.Admit(&tracked.p, 0, flowNow)
			p := tt.pkt.p
			i := 0
			allocs := testing.AllocsPerRun(1000, func() {
				i++
				tt.vary(&p, i)
				if tbl.Classify(&p, flowNow) == ClassNew {
					tbl.Admit(&p, 1, flowNow)
				}
			})
			if allocs != 0 {
				t.Errorf("Classify+Admit: %v allocations per packet, want 0", allocs)
			}
		})
	}
	t.Run("full table evicting", func(t *testing.T) {
		tbl := NewTable(256, DefaultTimeouts())
		p := flowUDP(t, "10.0.0.1:1", "10.0.0.2:53").p
		i := 0
		allocs := testing.AllocsPerRun(2000, func() {
			i++
			p.SrcPort = uint16(i)
			if tbl.Classify(&p, flowNow) == ClassNew {
				tbl.Admit(&p, 1, flowNow)
			}
		})
		if allocs != 0 {
			t.Errorf("%v allocations per packet, want 0", allocs)
		}
		if tbl.Stats().Evicted == 0 {
			t.Error("nothing was evicted: the table never filled")
		}
	})
}

// TestSteadyChurnDoesNotAllocate proves that a table which has grown to
// its working set allocates nothing while flows come and go: every new
// flow is matched by the destroy of one admitted 20,000 flows earlier, as
// conntrack events do. Allocations are counted exactly, not averaged.
func TestSteadyChurnDoesNotAllocate(t *testing.T) {
	tbl := NewTable(DefaultMaxFlows, DefaultTimeouts())
	const window, warm, measured = 20_000, 200_000, 200_000
	var p, old Parsed
	step := func(i int) {
		benchSYN(&p, i)
		if tbl.Classify(&p, flowNow) == ClassNew {
			tbl.Admit(&p, 1, flowNow)
		}
		if i >= window {
			benchSYN(&old, i-window)
			k, _ := KeyOf(&old)
			tbl.Delete(k)
		}
	}
	for i := range warm {
		step(i)
	}
	// The count is the process's: a goroutine another test left behind
	// (a logger, a timer) may allocate during a window. Up to three windows
	// of churn are measured; the table passes when one of them counts no
	// allocation at all, and fails when every one does.
	var counts []uint64
	next := warm
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := next; i < next+measured; i++ {
			step(i)
		}
		runtime.ReadMemStats(&after)
		next += measured
		counts = append(counts, after.Mallocs-before.Mallocs)
		if counts[len(counts)-1] == 0 {
			break
		}
	}
	if n := counts[len(counts)-1]; n != 0 {
		t.Errorf("allocations in each window of %d packets of a grown table: %v, want 0 in one", measured, counts)
	}
	if tbl.Len() != window {
		t.Errorf("Len %d, want %d", tbl.Len(), window)
	}
}

// TestBytesPerFlow measures the heap a tracked flow costs at 1,000,000
// flows; the budget is 256 bytes.
func TestBytesPerFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a table with 1,000,000 flows; skipped with -short")
	}
	const flows = 1_000_000
	per := bytesPerFlow(t, flows)
	t.Logf("%.1f bytes per flow at %d flows", per, flows)
	if per > 256 {
		t.Errorf("%.1f bytes per flow, budget 256", per)
	}
}

// bytesPerFlow fills a table for n flows with n flows and returns the heap
// growth divided by n.
func bytesPerFlow(tb testing.TB, n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tbl := NewTable(n, DefaultTimeouts())
	var p Parsed
	p.Kind, p.Family, p.Proto, p.TCPFlags = KindOK, 4, 6, tcpFlagSYN
	p.Src = [16]byte{10: 0xff, 11: 0xff, 12: 10}
	p.Dst = [16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: 1}
	p.DstPort = 443
	for i := range n {
		p.Src[13], p.Src[14], p.Src[15] = byte(i>>16), byte(i>>8), byte(i)
		p.SrcPort = uint16(i)
		if !tbl.Admit(&p, 0, flowNow) {
			tb.Fatalf("flow %d refused", i)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if tbl.Len() != n {
		tb.Fatalf("Len %d, want %d", tbl.Len(), n)
	}
	runtime.KeepAlive(tbl)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// TestShardsSpreadIPv4Flows guards the shard hash: IPv4-mapped addresses
// share their first 12 bytes, and sequential sources and ports must still
// spread evenly over the shards.
func TestShardsSpreadIPv4Flows(t *testing.T) {
	tbl := NewTable(1<<16, DefaultTimeouts())
	p := flowUDP(t, "10.0.0.1:1", "10.0.0.2:53").p
	const flows = 1 << 15
	for i := range flows {
		p.Src[14], p.Src[15] = byte(i>>8), byte(i)
		p.SrcPort = uint16(1024 + i%64)
		tbl.Admit(&p, 1, flowNow)
	}
	mean := flows / len(tbl.shards)
	for i := range tbl.shards {
		if n := len(tbl.shards[i].m); n < mean*3/4 || n > mean*5/4 {
			t.Errorf("shard %d holds %d flows, mean %d", i, n, mean)
		}
	}
}

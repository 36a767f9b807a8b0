package engine

import (
	"testing"
	"time"
)

// flowEntry returns the stored entry of p's flow.
func flowEntry(tbl *Table, p *Parsed) (entry, bool) {
	k, _ := KeyOf(p)
	s := tbl.shardOf(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	return e, ok
}

// tcpStep is one segment of a TCP conversation between the client
// 10.0.0.1:40000 and the server 10.0.0.2:22.
type tcpStep struct {
	from    string // "c" client or "s" server
	flags   string // see flowTCP
	want    Class
	state   TCPState // the flow's state afterwards; TCPNone: not tracked
	assured bool
}

func TestTCPStateMachine(t *testing.T) {
	tests := []struct {
		name  string
		steps []tcpStep
	}{
		{"handshake and close started by the client", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"s", "SA", ClassEstablished, TCPSynRecv, false},
			{"c", "A", ClassEstablished, TCPEstablished, true},
			{"c", "PA", ClassEstablished, TCPEstablished, true},
			{"c", "FA", ClassEstablished, TCPFinWait, true},
			{"s", "A", ClassEstablished, TCPCloseWait, true},
			{"s", "FA", ClassEstablished, TCPLastAck, true},
			{"c", "A", ClassEstablished, TCPTimeWait, true},
		}},
		{"close started by the server", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"s", "SA", ClassEstablished, TCPSynRecv, false},
			{"c", "A", ClassEstablished, TCPEstablished, true},
			{"s", "FA", ClassEstablished, TCPFinWait, true},
			{"c", "FA", ClassEstablished, TCPLastAck, true},
			{"s", "A", ClassEstablished, TCPTimeWait, true},
		}},
		{"retransmitted SYN belongs to the flow", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"c", "S", ClassEstablished, TCPSynSent, false},
		}},
		{"SYN with ECN setup bits is NEW", []tcpStep{
			{"c", "SEC", ClassNew, TCPSynSent, false},
		}},
		{"RST answering the SYN ends the flow", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"s", "RA", ClassEstablished, TCPNone, false},
		}},
		{"RST after the reply closes the flow", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"s", "SA", ClassEstablished, TCPSynRecv, false},
			{"s", "R", ClassEstablished, TCPClose, false},
		}},
		{"ACK before the SYN/ACK is invalid", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"c", "A", ClassInvalid, TCPSynSent, false},
		}},
		{"server FIN in SYN_SENT is invalid", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"s", "FA", ClassInvalid, TCPSynSent, false},
		}},
		{"client SYN/ACK in SYN_SENT is invalid", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"c", "SA", ClassInvalid, TCPSynSent, false},
		}},
		{"simultaneous open", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"s", "S", ClassEstablished, TCPSynSent2, false},
			{"c", "SA", ClassEstablished, TCPSynRecv, false},
		}},
		{"retransmitted SYN/ACK is ignored", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"s", "SA", ClassEstablished, TCPSynRecv, false},
			{"s", "SA", ClassEstablished, TCPSynRecv, false},
		}},
		{"SYN in ESTABLISHED is ignored", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"s", "SA", ClassEstablished, TCPSynRecv, false},
			{"c", "A", ClassEstablished, TCPEstablished, true},
			{"c", "S", ClassEstablished, TCPEstablished, true},
		}},
		{"SYN reopens a flow in TIME_WAIT", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"s", "SA", ClassEstablished, TCPSynRecv, false},
			{"c", "A", ClassEstablished, TCPEstablished, true},
			{"c", "FA", ClassEstablished, TCPFinWait, true},
			{"s", "FA", ClassEstablished, TCPLastAck, true},
			{"c", "A", ClassEstablished, TCPTimeWait, true},
			{"c", "S", ClassNew, TCPSynSent, false},
		}},
		{"SYN reopens a flow closed by RST", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"s", "SA", ClassEstablished, TCPSynRecv, false},
			{"c", "R", ClassEstablished, TCPClose, false},
			{"c", "S", ClassNew, TCPSynSent, false},
		}},
		{"ACK without a flow is picked up mid-stream as ESTABLISHED", []tcpStep{
			{"c", "A", ClassPickup, TCPEstablished, false},
			{"s", "A", ClassEstablished, TCPEstablished, false},
			{"c", "PA", ClassEstablished, TCPEstablished, true},
		}},
		{"data without a flow is picked up", []tcpStep{{"c", "PA", ClassPickup, TCPEstablished, false}}},
		{"SYN/ACK without a flow is invalid", []tcpStep{{"s", "SA", ClassInvalid, TCPNone, false}}},
		{"FIN/ACK without a flow is invalid", []tcpStep{{"c", "FA", ClassInvalid, TCPNone, false}}},
		{"RST without a flow is invalid", []tcpStep{{"c", "R", ClassInvalid, TCPNone, false}}},
		{"SYN+FIN is invalid", []tcpStep{{"c", "SF", ClassInvalid, TCPNone, false}}},
		{"SYN+RST is invalid", []tcpStep{{"c", "SR", ClassInvalid, TCPNone, false}}},
		{"null scan is invalid", []tcpStep{{"c", "", ClassInvalid, TCPNone, false}}},
		{"xmas scan is invalid", []tcpStep{{"c", "FPU", ClassInvalid, TCPNone, false}}},
		{"SYN+FIN in a tracked flow is invalid", []tcpStep{
			{"c", "S", ClassNew, TCPSynSent, false},
			{"c", "SF", ClassInvalid, TCPSynSent, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable(64, DefaultTimeouts())
			now := flowNow
			for i, st := range tt.steps {
				src, dst := "10.0.0.1:40000", "10.0.0.2:22"
				if st.from == "s" {
					src, dst = dst, src
				}
				pkt := flowTCP(t, src, dst, st.flags)
				now += sec
				got := tbl.Classify(&pkt.p, now)
				if (got == ClassNew || got == ClassPickup) && !tbl.Admit(&pkt.p, 0, now) {
					t.Fatalf("step %d: Admit refused", i)
				}
				if got != st.want {
					t.Errorf("step %d (%s %s): class %v, want %v", i, st.from, st.flags, got, st.want)
				}
				e, ok := flowEntry(tbl, &pkt.p)
				switch {
				case st.state == TCPNone && ok:
					t.Errorf("step %d (%s %s): flow tracked in %v, want none", i, st.from, st.flags, e.state)
				case st.state != TCPNone && !ok:
					t.Errorf("step %d (%s %s): flow not tracked, want %v", i, st.from, st.flags, st.state)
				case ok && (e.state != st.state || (e.flags&flagAssured != 0) != st.assured):
					t.Errorf("step %d (%s %s): state %v assured %t, want %v assured %t", i, st.from, st.flags,
						e.state, e.flags&flagAssured != 0, st.state, st.assured)
				}
				if n := tbl.Len(); n > 1 {
					t.Errorf("step %d: %d flows tracked, want at most 1", i, n)
				}
			}
		})
	}
}

func TestTCPTimeoutFollowsState(t *testing.T) {
	to := DefaultTimeouts()
	tests := []struct {
		name  string
		flags []string // client, server, client, ... alternating
		want  time.Duration
	}{
		{"SYN_SENT", []string{"S"}, to.TCPSynSent},
		{"SYN_RECV", []string{"S", "SA"}, to.TCPSynRecv},
		{"ESTABLISHED", []string{"S", "SA", "A"}, to.TCPEstablished},
		{"FIN_WAIT", []string{"S", "SA", "A", "FA"}, to.TCPFinWait},
		{"LAST_ACK", []string{"S", "SA", "A", "FA", "FA"}, to.TCPLastAck},
		{"TIME_WAIT", []string{"S", "SA", "A", "FA", "FA", "A"}, to.TCPTimeWait},
		{"CLOSE", []string{"S", "SA", "R"}, to.TCPClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable(64, to)
			var pkt flowPacket
			for i, f := range tt.flags {
				src, dst := "10.0.0.1:40000", "10.0.0.2:22"
				if i%2 == 1 {
					src, dst = dst, src
				}
				pkt = flowTCP(t, src, dst, f)
				if tbl.Classify(&pkt.p, flowNow) == ClassNew {
					tbl.Admit(&pkt.p, 0, flowNow)
				}
			}
			e, ok := flowEntry(tbl, &pkt.p)
			if !ok {
				t.Fatal("flow not tracked")
			}
			if got := time.Duration(e.expires - flowNow); got != tt.want {
				t.Errorf("timeout %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRetransmittedSYNKeepsTheTimer(t *testing.T) {
	tbl := NewTable(64, DefaultTimeouts())
	syn := flowTCP(t, "10.0.0.1:40000", "10.0.0.2:22", "S")
	tbl.Admit(&syn.p, 0, flowNow)
	if c := tbl.Classify(&syn.p, flowNow+60*sec); c != ClassEstablished {
		t.Fatalf("retransmitted SYN is %v", c)
	}
	e, _ := flowEntry(tbl, &syn.p)
	if got, want := time.Duration(e.expires-flowNow), 2*time.Minute; got != want {
		t.Errorf("flow expires %v after the first SYN, want %v", got, want)
	}
}

func TestTCPStateString(t *testing.T) {
	want := []string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}
	for s := TCPNone; s < NumTCPStates; s++ {
		if got := s.String(); got != want[s] {
			t.Errorf("TCPState(%d) = %q, want %q", s, got, want[s])
		}
	}
	if got := NumTCPStates.String(); got != "UNKNOWN" {
		t.Errorf("out of range state = %q", got)
	}
}

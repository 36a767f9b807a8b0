package engine

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nfqfw/nfqfw/rules"
)

// uplinkIndex is the interface index the tests pretend packets arrive on;
// it is named veth-sg, the uplink of the server example.
const uplinkIndex = 7

// newServerEngine returns an engine running the shipped server example
// (DESIGN setup 2) with the uplink interface known.
func newServerEngine(tb testing.TB, max int) *Engine {
	tb.Helper()
	c, err := rules.Load("../rules/examples/server.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	if max > 0 {
		c.Flows.Max = max
	}
	p, err := rules.Compile(c)
	if err != nil {
		tb.Fatal(err)
	}
	e := New(p, Options{})
	e.ifs.store(uplinkIndex, "veth-sg")
	return e
}

// want is a verdict as the tests spell it: the action, the reject kind, the
// deciding rule's name ("" for none) and the reason.
type want struct {
	Action rules.Action
	Reject rules.RejectKind
	Rule   string
	Reason Reason
}

func got(e *Engine, v Verdict) want {
	w := want{Action: v.Action, Reject: v.Reject, Reason: v.Reason}
	if v.Rule >= 0 {
		w.Rule = e.Policy().Rules()[v.Rule].Name
	}
	return w
}

// TestWorkerServerPolicy sends a scripted sequence of packets through one
// worker under the server policy. Order matters: later packets belong to
// flows admitted by earlier ones.
func TestWorkerServerPolicy(t *testing.T) {
	const cli, srv = "198.51.100.7", "10.99.2.2"
	const cli6, srv6 = "2001:db8::7", "fd99:2::2"
	dnsQuery := flowUDP(t, cli+":40002", srv+":53")
	steps := []struct {
		name string
		pkt  flowPacket
		want want
	}{
		{"ssh SYN is admitted by rule ssh", flowTCP(t, cli+":40000", srv+":22", "S"),
			want{Action: rules.ActionAccept, Rule: "ssh", Reason: ReasonRule}},
		{"retransmitted ssh SYN belongs to the admitted flow", flowTCP(t, cli+":40000", srv+":22", "S"),
			want{Action: rules.ActionAccept, Reason: ReasonEstablished}},
		{"SYN to a closed port gets tcp-reset", flowTCP(t, cli+":40001", srv+":23", "S"),
			want{Action: rules.ActionReject, Reject: rules.RejectTCPReset, Rule: "closed-tcp", Reason: ReasonRule}},
		{"ACK without a flow is picked up: rule ssh admits it as it admits the SYN", flowTCP(t, cli+":40009", srv+":22", "A"),
			want{Action: rules.ActionAccept, Rule: "ssh", Reason: ReasonRule}},
		{"the picked-up flow's next segment is ESTABLISHED", flowTCP(t, cli+":40009", srv+":22", "PA"),
			want{Action: rules.ActionAccept, Reason: ReasonEstablished}},
		{"ACK without a flow to a closed port gets tcp-reset, as its SYN would", flowTCP(t, cli+":40010", srv+":23", "A"),
			want{Action: rules.ActionReject, Reject: rules.RejectTCPReset, Rule: "closed-tcp", Reason: ReasonRule}},
		{"FIN/ACK without a flow is INVALID (conntrack picks up no FIN)", flowTCP(t, cli+":40011", srv+":22", "FA"),
			want{Action: rules.ActionDrop, Reason: ReasonInvalid}},
		{"XMAS probe is INVALID", flowTCP(t, cli+":40012", srv+":23", "FPU"),
			want{Action: rules.ActionDrop, Reason: ReasonInvalid}},
		{"DNS query is admitted", dnsQuery,
			want{Action: rules.ActionAccept, Rule: "dns-udp", Reason: ReasonRule}},
		{"ICMP error quoting the DNS flow is RELATED", flowICMPError(t, "192.0.2.254", srv, flowUDP(t, srv+":53", cli+":40002")),
			want{Action: rules.ActionAccept, Reason: ReasonRelated}},
		{"ICMP error quoting nothing known is INVALID", flowICMPError(t, "192.0.2.254", srv, flowUDP(t, srv+":53", cli+":49999")),
			want{Action: rules.ActionDrop, Reason: ReasonInvalid}},
		{"UDP to a closed port gets port unreachable", flowUDP(t, cli+":40003", srv+":999"),
			want{Action: rules.ActionReject, Reject: rules.RejectICMPPortUnreachable, Rule: "closed-udp", Reason: ReasonRule}},
		{"ping is admitted", flowEcho(t, cli, srv, 77, true),
			want{Action: rules.ActionAccept, Rule: "ping", Reason: ReasonRule}},
		{"echo reply of the ping flow is ESTABLISHED", flowEcho(t, srv, cli, 77, false),
			want{Action: rules.ActionAccept, Reason: ReasonEstablished}},
		{"unsolicited echo reply is INVALID", flowEcho(t, cli, srv, 78, false),
			want{Action: rules.ActionDrop, Reason: ReasonInvalid}},
		{"other protocol gets the policy: proto unreachable", flowGRE(t, cli, srv),
			want{Action: rules.ActionReject, Reject: rules.RejectICMPProtoUnreachable, Reason: ReasonPolicy}},
		{"IPv6 ssh SYN is admitted", flowTCP(t, "["+cli6+"]:40000", "["+srv6+"]:22", "S"),
			want{Action: rules.ActionAccept, Rule: "ssh", Reason: ReasonRule}},
		{"IPv6 SYN to a closed port gets tcp-reset", flowTCP(t, "["+cli6+"]:40001", "["+srv6+"]:25", "S"),
			want{Action: rules.ActionReject, Reject: rules.RejectTCPReset, Rule: "closed-tcp", Reason: ReasonRule}},
		{"ping6 is admitted", flowEcho(t, cli6, srv6, 5, true),
			want{Action: rules.ActionAccept, Rule: "ping6", Reason: ReasonRule}},
		{"truncated packet is malformed", flowPacket{b: []byte{0x45, 0, 0, 40, 0, 0}},
			want{Action: rules.ActionDrop, Reason: ReasonMalformed}},
		{"not IP at all", flowPacket{b: []byte{0x10, 1, 2, 3}},
			want{Action: rules.ActionDrop, Reason: ReasonUnsupported}},
	}
	e := newServerEngine(t, 0)
	w := e.NewWorker()
	for i, s := range steps {
		v := w.Decide(s.pkt.b, rules.HookInput, uplinkIndex, 0, 0, flowNow+int64(i)*sec)
		if diff := cmp.Diff(s.want, got(e, v)); diff != "" {
			t.Errorf("step %d %q: verdict (-want +got):\n%s", i, s.name, diff)
		}
	}
	counts := map[string]uint64{}
	e.RuleCounts(func(c RuleCount) { counts[fmt.Sprintf("%s/%s/%s", c.Hook, c.Rule, c.Action)] = c.Packets })
	wantCounts := map[string]uint64{
		"input/ssh/accept": 3, "input/closed-tcp/reject": 3, "input/dns-udp/accept": 1, "input/closed-udp/reject": 1,
		"input/ping/accept": 1, "input/ping6/accept": 1, "input//reject": 1,
	}
	if diff := cmp.Diff(wantCounts, counts); diff != "" {
		t.Errorf("rule counters (-want +got):\n%s", diff)
	}
}

// TestPickupDrop: with flows.tcp_pickup drop, a segment without SYN and
// without a flow is INVALID and gets the chain's invalid action, here a
// reject answering TCP with a reset (invalid: reject).
func TestPickupDrop(t *testing.T) {
	c, err := rules.Load("../rules/examples/server.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Flows.TCPPickup = rules.TCPPickupDrop
	c.Input.Invalid = rules.ActionReject
	p, err := rules.Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	e := New(p, Options{})
	e.ifs.store(uplinkIndex, "veth-sg")
	v := e.NewWorker().Decide(flowTCP(t, "198.51.100.7:40000", "10.99.2.2:22", "A").b, rules.HookInput, uplinkIndex, 0, 0, flowNow)
	if diff := cmp.Diff(want{Action: rules.ActionReject, Reason: ReasonInvalid}, got(e, v)); diff != "" {
		t.Errorf("verdict (-want +got):\n%s", diff)
	}
	if n := e.Flows().Len(); n != 0 {
		t.Errorf("%d flows tracked, want none", n)
	}
	if n := e.Pickups(); n != 0 {
		t.Errorf("%d pickups counted, want none", n)
	}
}

// TestWorkerNeedsTheUplink: the ssh rule only matches on the uplink, so the
// same SYN arriving on another interface falls to closed-tcp.
func TestWorkerNeedsTheUplink(t *testing.T) {
	e := newServerEngine(t, 0)
	e.ifs.store(8, "eth9")
	v := e.NewWorker().Decide(flowTCP(t, "198.51.100.7:40000", "10.99.2.2:22", "S").b, rules.HookInput, 8, 0, 0, flowNow)
	if diff := cmp.Diff(want{Action: rules.ActionReject, Reject: rules.RejectTCPReset, Rule: "closed-tcp", Reason: ReasonRule}, got(e, v)); diff != "" {
		t.Errorf("verdict (-want +got):\n%s", diff)
	}
}

// TestReloadKeepsFlowsAndCounters swaps in the same policy again: admitted
// flows stay admitted and rule counters keep counting.
func TestReloadKeepsFlowsAndCounters(t *testing.T) {
	e := newServerEngine(t, 0)
	w := e.NewWorker()
	syn := flowTCP(t, "198.51.100.7:40000", "10.99.2.2:22", "S")
	w.Decide(syn.b, rules.HookInput, uplinkIndex, 0, 0, flowNow)
	p2, err := rules.Compile(e.Policy().Config())
	if err != nil {
		t.Fatal(err)
	}
	e.SetPolicy(p2, nil)
	if v := w.Decide(syn.b, rules.HookInput, uplinkIndex, 0, 0, flowNow+sec); v.Reason != ReasonEstablished {
		t.Errorf("after reload: reason %v, want established", v.Reason)
	}
	w.Decide(flowTCP(t, "198.51.100.7:40001", "10.99.2.2:22", "S").b, rules.HookInput, uplinkIndex, 0, 0, flowNow+2*sec)
	var ssh uint64
	e.RuleCounts(func(c RuleCount) {
		if c.Rule == "ssh" {
			ssh += c.Packets
		}
	})
	if ssh != 2 {
		t.Errorf("ssh counter = %d, want 2 (one before, one after the reload)", ssh)
	}
}

// setSrcPort rewrites the TCP/UDP source port of an IPv4 or IPv6 packet in
// place (checksums are not verified by the engine).
func setSrcPort(b []byte, port uint16) {
	off := 40
	if b[0]>>4 == 4 {
		off = int(b[0]&0x0f) * 4
	}
	binary.BigEndian.PutUint16(b[off:], port)
}

// TestWorkerAllocs proves that decode + classify + verdict allocate nothing,
// for new flows and for packets of known flows, on every protocol and family.
func TestWorkerAllocs(t *testing.T) {
	e := newServerEngine(t, 1<<16)
	w := e.NewWorker()
	cases := []struct {
		name  string
		pkt   flowPacket
		ports bool // vary the source port so every run is a new flow
	}{
		{"ipv4 tcp syn new flow", flowTCP(t, "198.51.100.7:1", "10.99.2.2:22", "S"), true},
		{"ipv4 tcp syn closed port", flowTCP(t, "198.51.100.7:1", "10.99.2.2:23", "S"), true},
		{"ipv6 tcp syn new flow", flowTCP(t, "[2001:db8::7]:1", "[fd99:2::2]:443", "S"), true},
		{"ipv4 udp new flow", flowUDP(t, "198.51.100.7:1", "10.99.2.2:53"), true},
		{"ipv6 udp closed port", flowUDP(t, "[2001:db8::7]:1", "[fd99:2::2]:999"), true},
		{"ipv4 icmp echo", flowEcho(t, "198.51.100.7", "10.99.2.2", 9, true), false},
		{"ipv6 icmp echo", flowEcho(t, "2001:db8::7", "fd99:2::2", 9, true), false},
		{"ipv4 icmp error", flowICMPError(t, "192.0.2.1", "10.99.2.2", flowUDP(t, "10.99.2.2:53", "198.51.100.7:5")), false},
		{"ipv4 gre policy", flowGRE(t, "198.51.100.7", "10.99.2.2"), false},
		{"ipv4 tcp ack invalid", flowTCP(t, "198.51.100.7:1", "10.99.2.2:22", "A"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { expectNoAllocs(t, w, c.pkt, c.ports) })
	}
}

// expectNoAllocs decides pkt on the input hook 500 times (with a new
// source port each time when ports, so every run is a new flow) and fails
// t unless nothing was allocated.
func expectNoAllocs(t *testing.T, w *Worker, pkt flowPacket, ports bool) {
	t.Helper()
	b := append([]byte(nil), pkt.b...)
	port := uint16(1000)
	now := flowNow
	allocs := testing.AllocsPerRun(500, func() {
		if ports {
			port++
			setSrcPort(b, port)
		}
		now += 1000
		w.Decide(b, rules.HookInput, uplinkIndex, 0, 0, now)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet, want 0", allocs)
	}
}

// BenchmarkWorkerDecide measures decode + classify + verdict for new flows
// under the server policy with 100,000 flows already tracked.
func BenchmarkWorkerDecide(b *testing.B) {
	for _, bc := range []struct {
		name string
		pkt  string
	}{
		{"tcp-syn-accept", "syn22"},
		{"tcp-syn-reject", "syn23"},
		{"udp-accept", "udp53"},
		{"tcp-syn-accept-ipv6", "syn6"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newServerEngine(b, 1<<20) // room for every flow the run admits: no eviction
			w := e.NewWorker()
			now := flowNow
			// 100,000 tracked flows from 100 sources.
			fill := flowTCP(b, "203.0.113.1:1", "10.99.2.2:443", "S").b
			for i := 0; i < 100_000; i++ {
				fill[15] = byte(i / 1000)
				setSrcPort(fill, uint16(1024+i%1000))
				w.Decide(fill, rules.HookInput, uplinkIndex, 0, 0, now)
			}
			if n := e.Flows().Len(); n < 99_000 {
				b.Fatalf("tracked %d flows, want 100,000", n)
			}
			var pkt []byte
			switch bc.pkt {
			case "syn22":
				pkt = flowTCP(b, "198.51.100.7:1", "10.99.2.2:22", "S").b
			case "syn23":
				pkt = flowTCP(b, "198.51.100.7:1", "10.99.2.2:23", "S").b
			case "udp53":
				pkt = flowUDP(b, "198.51.100.7:1", "10.99.2.2:53").b
			case "syn6":
				pkt = flowTCP(b, "[2001:db8::7]:1", "[fd99:2::2]:22", "S").b
			}
			srcLast := 15
			if pkt[0]>>4 == 6 {
				srcLast = 23
			}
			run := func() {
				for i := 0; i < b.N; i++ {
					setSrcPort(pkt, uint16(i))
					pkt[srcLast] = byte(i >> 16)
					now += 1000
					w.Decide(pkt, rules.HookInput, uplinkIndex, 0, 0, now)
				}
			}
			// The table grows with use: let it grow to this run's
			// working set first (the same flows, then expired), so the
			// timed run is the steady path of a daemon that has been up.
			run()
			e.Flows().Expire(now + int64(24*time.Hour))
			for i := 0; i < 100_000; i++ {
				fill[15] = byte(i / 1000)
				setSrcPort(fill, uint16(1024+i%1000))
				w.Decide(fill, rules.HookInput, uplinkIndex, 0, 0, now)
			}
			b.ReportAllocs()
			b.ResetTimer()
			run()
		})
	}
}

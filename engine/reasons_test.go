package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"

	"github.com/nfqfw/nfqfw/engine/guard"
	"github.com/nfqfw/nfqfw/engine/knock"
	"github.com/nfqfw/nfqfw/engine/recent"
	"github.com/nfqfw/nfqfw/rules"
)

// reasonsConfig has a guard on ssh and a knock sequence on 2222.
const reasonsConfig = `
zones: {uplink: [veth-sg]}
guards:
  - name: ssh
    limits: [{count: 3, window: 10s}]
knocks:
  - name: k
    steps: [tcp/7000, tcp/8000]
    step_window: 5s
    open: [{proto: tcp, ports: [2222]}]
    open_for: 30s
input:
  policy: drop
  rules:
    - {name: ssh, in: uplink, proto: tcp, dport: 22, guard: ssh, action: accept}
    - {name: knocked, in: uplink, proto: tcp, dport: 2222, knock: k, action: accept}
`

// TestStatefulReasons: the verdict reasons the stateful matchers and the
// decoder give, each produced by the packet that should produce it:
// banned, knock, rate_limit and fragment (the README lists them).
func TestStatefulReasons(t *testing.T) {
	c, err := rules.Parse("reasons.yaml", []byte(reasonsConfig))
	if err != nil {
		t.Fatal(err)
	}
	c.Flows.Max = 8
	pol, err := rules.Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	e := New(pol, Options{})
	e.ifs.store(uplinkIndex, "veth-sg")
	bans := guard.NewBans(guard.BanOptions{})
	e.SetPolicy(pol, &Matchers{Bans: bans, Recent: recent.New(c.Recent), Knock: knock.New(c.Knocks), Guards: guard.New(c.Guards, nil, bans)})
	w := e.NewWorker()
	const banned, cli, srv = "198.51.100.66", "198.51.100.7", "203.0.113.1"
	now := flowNow
	if _, err := bans.Add(netip.MustParsePrefix(banned+"/32"), time.Hour, "test", now); err != nil {
		t.Fatal(err)
	}
	syn := func(src string, sport, dport uint16) flowPacket {
		return flowDecode(t, flowSerialize(t, netip.MustParseAddr(src), netip.MustParseAddr(srv), layers.IPProtocolTCP,
			&layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Window: 1024}))
	}
	// A non-first fragment of a UDP datagram: offset 8 bytes, no header.
	frag := []byte{0x45, 0, 0, 28, 0, 1, 0, 1, 64, 17, 0, 0, 198, 51, 100, 7, 203, 0, 113, 1, 1, 2, 3, 4, 5, 6, 7, 8}
	steps := []struct {
		name string
		b    []byte
		want want
	}{
		{"a banned source", syn(banned, 40000, 22).b, want{Action: rules.ActionDrop, Reason: ReasonBanned}},
		{"a knock step", syn(cli, 40001, 7000).b, want{Action: rules.ActionDrop, Reason: ReasonKnock}},
		{"1st ssh", syn(cli, 40002, 22).b, want{Action: rules.ActionAccept, Rule: "ssh", Reason: ReasonRule}},
		{"2nd ssh", syn(cli, 40003, 22).b, want{Action: rules.ActionAccept, Rule: "ssh", Reason: ReasonRule}},
		{"3rd ssh", syn(cli, 40004, 22).b, want{Action: rules.ActionAccept, Rule: "ssh", Reason: ReasonRule}},
		{"4th ssh in 10 s", syn(cli, 40005, 22).b, want{Action: rules.ActionDrop, Rule: "ssh", Reason: ReasonRateLimit}},
		{"a non-first fragment", frag, want{Action: rules.ActionDrop, Reason: ReasonFragment}},
	}
	for i, s := range steps {
		v := w.Decide(s.b, rules.HookInput, uplinkIndex, 0, 0, now)
		if diff := cmp.Diff(s.want, got(e, v)); diff != "" {
			t.Errorf("step %d %q: verdict (-want +got):\n%s", i, s.name, diff)
		}
	}
}

package engine

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/recent"
	"github.com/nfqfw/nfqfw/rules"
)

const explainConfig = `
zones:
  uplink: [veth-x]
trusted: [lo]
allowlist: [192.0.2.10]
recent:
  - {name: scanners}
guards:
  - name: ssh-brute
    limits:
      - {count: 2, window: 1m}
knocks:
  - name: k
    steps: [tcp/7000, udp/8000]
    open:
      - {proto: tcp, ports: [2222]}
    open_for: 30s
input:
  policy: drop
  rules:
    - {name: scanner-block, in: uplink, recent: {list: scanners, op: check, seconds: 60s}, action: drop}
    - {name: ssh, in: uplink, proto: tcp, dport: 22, guard: ssh-brute, action: accept}
    - {name: ssh-knocked, in: uplink, proto: tcp, dport: 2222, knock: k, action: accept}
    - {name: trap, in: uplink, proto: tcp, dport: 23, recent: {list: scanners, op: set}, action: reject, reject_with: tcp-reset}
    - {name: ident, in: uplink, proto: tcp, dport: 113, action: reject}
output:
  policy: accept
`

func explainFixture(t *testing.T) (*rules.Policy, *Matchers) {
	t.Helper()
	c, err := rules.Parse("explain.yaml", []byte(explainConfig))
	if err != nil {
		t.Fatal(err)
	}
	p, err := rules.Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return p, NewMatchers(c)
}

func tcpFlow(src, dst string, in string) Flow {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	return Flow{Hook: rules.HookInput, Proto: 6, Src: s.Addr(), Dst: d.Addr(), SrcPort: s.Port(), DstPort: d.Port(), InIface: in}
}

// TestExplain checks the explanation of a table of flows, line by line,
// against empty state and then against state the packet path built.
func TestExplain(t *testing.T) {
	pol, m := explainFixture(t)
	const stranger = "198.51.100.7:40000"
	for _, c := range []struct {
		name string
		flow Flow
		want []string
	}{
		{"trusted interface", tcpFlow(stranger, "127.0.0.1:22", "lo"), []string{
			"flow     tcp 198.51.100.7:40000 -> 127.0.0.1:22 in lo (input)",
			"kernel   trusted interface lo: accepted by the kernel before the queue  <- decides",
			"verdict  accept, reason trusted",
		}},
		{"allowlist", tcpFlow("192.0.2.10:5000", "10.0.0.1:2222", "veth-x"), []string{
			"flow     tcp 192.0.2.10:5000 -> 10.0.0.1:2222 in veth-x (input)",
			"kernel   management allowlist 192.0.2.10/32: accepted by the kernel before the queue  <- decides",
			"verdict  accept, reason allowlist",
		}},
		{"guarded ssh", tcpFlow(stranger, "10.0.0.1:22", "veth-x"), []string{
			"flow     tcp 198.51.100.7:40000 -> 10.0.0.1:22 in veth-x (input)",
			"ban      198.51.100.7 is not banned",
			"knock    no knock step",
			`recent   recent check "scanners" seconds 60: 198.51.100.7 has 0 hits listed: does not match: the rule does not match`,
			`rule     rule "ssh" (input chain) matches: accept  <- decides`,
			`guard    guard "ssh-brute" admits 198.51.100.7 (no attempts counted)`,
			`verdict  accept by rule "ssh", reason rule`,
		}},
		{"knock window closed", tcpFlow(stranger, "10.0.0.1:2222", "veth-x"), []string{
			"flow     tcp 198.51.100.7:40000 -> 10.0.0.1:2222 in veth-x (input)",
			"ban      198.51.100.7 is not banned",
			"knock    no knock step",
			`recent   recent check "scanners" seconds 60: 198.51.100.7 has 0 hits listed: does not match: the rule does not match`,
			`knock    knock "k": no window open for 198.51.100.7: the rule does not match`,
			"policy   no rule of the input chain matched: its policy drop  <- decides",
			"verdict  drop, reason policy",
		}},
		{"knock step", tcpFlow(stranger, "10.0.0.1:7000", "veth-x"), []string{
			"flow     tcp 198.51.100.7:40000 -> 10.0.0.1:7000 in veth-x (input)",
			"ban      198.51.100.7 is not banned",
			`knock    step 1 of knock "k": dropped, the sequence stays invisible  <- decides`,
			"verdict  drop, reason knock",
		}},
		{"reject kind", tcpFlow(stranger, "10.0.0.1:113", "veth-x"), []string{
			"flow     tcp 198.51.100.7:40000 -> 10.0.0.1:113 in veth-x (input)",
			"ban      198.51.100.7 is not banned",
			"knock    no knock step",
			`recent   recent check "scanners" seconds 60: 198.51.100.7 has 0 hits listed: does not match: the rule does not match`,
			`rule     rule "ident" (input chain) matches: reject  <- decides`,
			`verdict  reject with tcp-reset by rule "ident", reason rule`,
		}},
		{"output policy", Flow{Hook: rules.HookOutput, Proto: 17, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("192.0.2.53"),
			SrcPort: 5353, DstPort: 53, OutIface: "veth-x"}, []string{
			"flow     udp 10.0.0.1:5353 -> 192.0.2.53:53 out veth-x (output)",
			"ban      10.0.0.1 is not banned",
			"knock    no knock step",
			"policy   no rule of the output chain matched: its policy accept  <- decides",
			"verdict  accept, reason policy",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := Explain(pol, m, c.flow)
			if got := strings.Join(x.Lines(), "\n"); got != strings.Join(c.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", got, strings.Join(c.want, "\n"))
			}
		})
	}
}

// TestExplainLiveState explains against state the packet path changed: a
// ban, a knock window, a recent entry, a guard at its limit.
func TestExplainLiveState(t *testing.T) {
	pol, m := explainFixture(t)
	now := clock.Now()
	src := netip.MustParseAddr("198.51.100.7")
	dst := netip.MustParseAddr("10.0.0.1").As16()
	s16 := src.As16()
	// A knock sequence completed, a guard at its limit, a recent entry.
	m.Knock.Observe(s16, dst, true, 6, 7000, now)
	m.Knock.Observe(s16, dst, true, 17, 8000, now)
	g := m.Guards.Index("ssh-brute")
	m.Guards.Allow(g, s16, now)
	m.Guards.Allow(g, s16, now)

	x := Explain(pol, m, tcpFlow("198.51.100.7:40000", "10.0.0.1:2222", "veth-x"))
	if x.Action != "accept" || x.Rule != "ssh-knocked" || !hasStep(x, `knock "k" window open for 198.51.100.7 until`) {
		t.Errorf("knock window: %s", strings.Join(x.Lines(), "\n"))
	}
	x = Explain(pol, m, tcpFlow("198.51.100.7:40001", "10.0.0.1:22", "veth-x"))
	if x.Action != "drop" || x.Reason != "rate_limit" || !hasStep(x, `guard "ssh-brute" refuses 198.51.100.7: more than 2 new connections in 1m`) {
		t.Errorf("guard: %s", strings.Join(x.Lines(), "\n"))
	}
	if _, err := m.Bans.Add(netip.PrefixFrom(src, src.BitLen()), time.Hour, "test", now); err != nil {
		t.Fatal(err)
	}
	x = Explain(pol, m, tcpFlow("198.51.100.7:40002", "10.0.0.1:2222", "veth-x"))
	if x.Action != "drop" || x.Reason != "banned" || !hasStep(x, "198.51.100.7 is banned until") {
		t.Errorf("ban: %s", strings.Join(x.Lines(), "\n"))
	}
}

// TestExplainChangesNothing explains, many times, flows that on the packet
// path would advance a knock, count a guard attempt and set a recent
// entry, and proves the state unchanged.
func TestExplainChangesNothing(t *testing.T) {
	pol, m := explainFixture(t)
	src := "198.51.100.9"
	for i := 0; i < 10; i++ {
		Explain(pol, m, tcpFlow(src+":1000", "10.0.0.1:7000", "veth-x")) // knock step 1
		Explain(pol, m, tcpFlow(src+":1000", "10.0.0.1:22", "veth-x"))   // guarded
		Explain(pol, m, tcpFlow(src+":1000", "10.0.0.1:23", "veth-x"))   // recent set
	}
	s16 := netip.MustParseAddr(src).As16()
	now := clock.Now()
	if ok, why := m.Guards.Peek(m.Guards.Index("ssh-brute"), s16, now); !ok || why != "no attempts counted" {
		t.Errorf("guard counted explanations: %v %s", ok, why)
	}
	if st := m.Knock.Status(now); len(st.Progress) != 0 {
		t.Errorf("knock progress after explanations: %+v", st.Progress)
	}
	n := 0
	m.Recent.Walk(func(recent.Entry) { n++ })
	if n != 0 {
		t.Errorf("recent entries after explanations: %d", n)
	}
}

func hasStep(x Explanation, prefix string) bool {
	for _, s := range x.Steps {
		if strings.HasPrefix(s.Text, prefix) {
			return true
		}
	}
	return false
}

// TestWorkerAllocsStateful proves the packet path, which runs the same
// decision with a nil Trace, still allocates nothing with stateful
// matchers: a recent check, a knock window, a guard at its limit.
func TestWorkerAllocsStateful(t *testing.T) {
	pol, m := explainFixture(t)
	e := New(pol, Options{})
	e.SetPolicy(pol, m)
	e.ifs.store(uplinkIndex, "veth-x")
	w := e.NewWorker()
	g := m.Guards.Index("ssh-brute")
	src := netip.MustParseAddr("198.51.100.7").As16()
	m.Guards.Allow(g, src, flowNow)
	m.Guards.Allow(g, src, flowNow)
	for _, c := range []struct {
		name string
		pkt  flowPacket
	}{
		{"knock window closed", flowTCP(t, "198.51.100.7:1", "10.0.0.1:2222", "S")},
		{"rule after a recent check", flowTCP(t, "198.51.100.7:1", "10.0.0.1:113", "S")},
		{"guard refuses", flowTCP(t, "198.51.100.7:1", "10.0.0.1:22", "S")},
	} {
		t.Run(c.name, func(t *testing.T) { expectNoAllocs(t, w, c.pkt, true) })
	}
	// A trace running for other packets costs them nothing either.
	_, stop, err := e.StartTrace(TraceFilter{Port: 9}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	t.Run("trace of other packets running", func(t *testing.T) {
		expectNoAllocs(t, w, flowTCP(t, "198.51.100.7:1", "10.0.0.1:113", "S"), true)
	})
}

// TestTrace streams the explanations of the decided packets a trace
// selects: a new flow with its steps, a packet of it with the table's
// word; other packets are not explained; a second trace is refused.
func TestTrace(t *testing.T) {
	pol, m := explainFixture(t)
	e := New(pol, Options{})
	e.SetPolicy(pol, m)
	e.ifs.store(uplinkIndex, "veth-x")
	w := e.NewWorker()
	events, stop, err := e.StartTrace(TraceFilter{Port: 113}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.StartTrace(TraceFilter{}, 1); err != ErrTraceBusy {
		t.Errorf("second trace: %v, want ErrTraceBusy", err)
	}
	w.Decide(flowTCP(t, "198.51.100.7:1000", "10.0.0.1:22", "S").b, rules.HookInput, uplinkIndex, 0, 0, flowNow)
	w.Decide(flowTCP(t, "198.51.100.7:1000", "10.0.0.1:113", "S").b, rules.HookInput, uplinkIndex, 0, 0, flowNow)
	if dropped := stop(); dropped != 0 {
		t.Errorf("dropped %d", dropped)
	}
	var got []string
	for len(events) > 0 {
		x := <-events
		got = append(got, strings.Join(x.Lines(), "\n"))
	}
	want := `flow     tcp 198.51.100.7:1000 -> 10.0.0.1:113 in veth-x (input)
ban      198.51.100.7 is not banned
knock    no knock step
recent   recent check "scanners" seconds 60: 198.51.100.7 has 0 hits listed: does not match: the rule does not match
rule     rule "ident" (input chain) matches: reject  <- decides
verdict  reject with tcp-reset by rule "ident", reason rule`
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %d explanations:\n%s\nwant\n%s", len(got), strings.Join(got, "\n--\n"), want)
	}
	// Stopped: the packet path no longer explains.
	w.Decide(flowTCP(t, "198.51.100.7:1001", "10.0.0.1:113", "S").b, rules.HookInput, uplinkIndex, 0, 0, flowNow)
	if len(events) != 0 {
		t.Errorf("explained after stop")
	}
}

package engine

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/guard"
	"github.com/nfqfw/nfqfw/engine/knock"
	"github.com/nfqfw/nfqfw/engine/recent"
	"github.com/nfqfw/nfqfw/rules"
)

// Flow is a connection to explain: what its first packet carries.
type Flow struct {
	Hook     rules.Hook
	Proto    uint8 // 6 tcp, 17 udp, 1 icmp, 58 icmpv6, ...
	Src, Dst netip.Addr
	SrcPort  uint16
	DstPort  uint16
	InIface  string // "" on the output hook
	OutIface string // "" on the input hook
	ICMPType uint8  // for icmp and icmpv6; an echo request when both are 0
	ICMPCode uint8
}

// String prints the flow as "nfqfw explain" reads it.
func (f Flow) String() string {
	var b strings.Builder
	b.WriteString(ProtoName(f.Proto))
	if f.Proto == ctTCP || f.Proto == ctUDP || f.Proto == 132 {
		fmt.Fprintf(&b, " %s -> %s", netip.AddrPortFrom(f.Src, f.SrcPort), netip.AddrPortFrom(f.Dst, f.DstPort))
	} else {
		fmt.Fprintf(&b, " %s -> %s", f.Src, f.Dst)
	}
	if f.InIface != "" {
		b.WriteString(" in " + f.InIface)
	}
	if f.OutIface != "" {
		b.WriteString(" out " + f.OutIface)
	}
	b.WriteString(" (" + f.Hook.String() + ")")
	return b.String()
}

// Step is one thing the decision consulted, in order.
type Step struct {
	Matcher string `json:"matcher"`        // kernel, ban, ftp, knock, rule, guard, recent, policy
	Rule    string `json:"rule,omitempty"` // the rule whose condition it is
	Text    string `json:"text"`
	Decided bool   `json:"decided,omitempty"` // this step gave the verdict
}

// Explanation is the verdict a flow's first packet gets and why.
type Explanation struct {
	Flow   string `json:"flow"`
	Steps  []Step `json:"steps"`
	Action string `json:"action"`           // accept, drop, reject
	Reject string `json:"reject,omitempty"` // the reject kind
	Rule   string `json:"rule,omitempty"`   // the deciding rule
	Reason string `json:"reason"`           // the metric and log label
	Log    bool   `json:"log,omitempty"`    // a log line is written
}

// Refused reports whether the flow would be refused.
func (x *Explanation) Refused() bool { return x.Action != rules.ActionAccept.String() }

// Decider names what refused or admitted the flow: the rule, or the chain
// policy, or the matcher.
func (x *Explanation) Decider() string {
	for _, s := range x.Steps {
		if !s.Decided {
			continue
		}
		if s.Rule != "" {
			return fmt.Sprintf("rule %q", s.Rule)
		}
		return s.Text
	}
	return x.Reason
}

// Trace records what a decision consulted. A decision with a nil Trace is
// the packet path; with one it explains, and changes no state.
type Trace struct {
	pol   *rules.Policy
	steps []Step
}

func (t *Trace) add(matcher, rule string, decided bool, format string, args ...any) {
	t.steps = append(t.steps, Step{Matcher: matcher, Rule: rule, Text: fmt.Sprintf(format, args...), Decided: decided})
}

func (t *Trace) ruleName(i int) string {
	if rs := t.pol.Rules(); i >= 0 && i < len(rs) {
		return rs[i].Name
	}
	return fmt.Sprint(i)
}

func (t *Trace) ban(b *guard.Bans, src [16]byte, now int64) {
	if bn, banned := b.Covering(src, now); banned {
		by := bn.Source
		if bn.Origin != "" {
			by += " at " + bn.Origin
		}
		t.add("ban", "", true, "%s is banned until %s (ban of %s by %s)", unmapped(src), bn.Until.UTC().Format(time.RFC3339), bn.Scope, by)
		return
	}
	t.add("ban", "", false, "%s is not banned", unmapped(src))
}

func (t *Trace) knockStep(k *knock.Knocker, p *Parsed, local bool, now int64) bool {
	name, n, ok := k.Peek(p.Src, p.Dst, local, p.Proto, p.DstPort, now)
	if ok {
		t.add("knock", "", true, "step %d of knock %q: dropped, the sequence stays invisible", n, name)
		return true
	}
	t.add("knock", "", false, "no knock step")
	return false
}

func (t *Trace) knockWindow(k *knock.Knocker, seq, rule int, pkt *rules.Packet, now int64) bool {
	name := t.pol.Rules()[rule].Src.Knock
	until, open := k.Window(seq, pkt.Src, pkt.Dst, pkt.Proto, pkt.DstPort, now)
	if open {
		t.add("knock", t.ruleName(rule), false, "knock %q window open for %s until %s", name, unmapped(pkt.Src),
			clock.Wall(until).UTC().Format(time.RFC3339))
		return true
	}
	t.add("knock", t.ruleName(rule), false, "knock %q: no window open for %s: the rule does not match", name, unmapped(pkt.Src))
	return false
}

func (t *Trace) recent(l *recent.Lists, list int, m *rules.RecentMatch, rule int, addr [16]byte, ttl uint8, now int64) bool {
	matched, hits := l.Peek(list, m, addr, ttl, now)
	op := map[rules.RecentOp]string{rules.RecentSet: "set", rules.RecentCheck: "check", rules.RecentUpdate: "update", rules.RecentRemove: "remove"}[m.Op]
	cond := fmt.Sprintf("recent %s %q", op, m.List)
	if m.Seconds > 0 {
		cond += fmt.Sprintf(" seconds %d", int64(m.Seconds/time.Second))
	}
	if m.HitCount > 0 {
		cond += fmt.Sprintf(" hitcount %d", m.HitCount)
	}
	verb := "matches"
	if !matched {
		verb = "does not match: the rule does not match"
	}
	t.add("recent", t.ruleName(rule), false, "%s: %s has %d hits listed: %s", cond, unmapped(addr), hits, verb)
	return matched
}

func (t *Trace) guard(g *guard.Guards, idx, rule int, src [16]byte, now int64) bool {
	name := t.pol.Rules()[rule].Src.Guard
	ok, why := g.Peek(idx, src, now)
	if ok {
		t.add("guard", t.ruleName(rule), false, "guard %q admits %s (%s)", name, unmapped(src), why)
		return true
	}
	for i := len(t.steps) - 1; i >= 0; i-- {
		if t.steps[i].Matcher == "rule" {
			t.steps[i].Decided = false // matched, but its guard decides
			break
		}
	}
	t.add("guard", t.ruleName(rule), true, "guard %q refuses %s: %s", name, unmapped(src), why)
	return false
}

func (t *Trace) matched(i int) {
	r := &t.pol.Rules()[i]
	t.add("rule", r.Name, true, "rule %q (%s chain) matches: %s", r.Name, r.Hook, r.Action)
}

func unmapped(a [16]byte) netip.Addr { return netip.AddrFrom16(a).Unmap() }

// Explain tells the verdict the engine would give the first packet of flow
// f now, and why, from the running policy and the live state of its
// stateful matchers. It runs the packet path's decision with a Trace, so
// it changes nothing: no knock progress, no guard counting, no recent-list
// insertion, no flow admitted.
func (e *Engine) Explain(f Flow) Explanation {
	return explain(e.active.Load(), f, clock.Now())
}

// Explain is Engine.Explain for a policy that is not running (a config
// file, or a config about to be reloaded) with matchers m (nil: a policy
// without stateful matchers, whose stateful conditions always hold).
func Explain(pol *rules.Policy, m *Matchers, f Flow) Explanation {
	a := &active{policy: pol}
	if m != nil {
		a.st = newStateful(pol, m)
	}
	return explain(a, f, clock.Now())
}

// NewMatchers returns empty stateful matchers for cfg: no bans, recent
// entries, knock progress or guard counts; no FTP expectations.
func NewMatchers(cfg *rules.Config) *Matchers {
	bans := guard.NewBans(guard.BanOptions{})
	return &Matchers{
		Bans:   bans,
		Recent: recent.New(cfg.Recent),
		Knock:  knock.New(cfg.Knocks),
		Guards: guard.New(cfg.Guards, cfg.Allowlist, bans),
	}
}

func explain(a *active, f Flow, now int64) Explanation {
	x := Explanation{Flow: f.String()}
	tr := &Trace{pol: a.policy}
	if x.kernel(a.policy.Config(), f) {
		return x
	}
	var p Parsed
	p.Packet = firstPacket(f)
	v := decideNew(a, &p, nil, now, tr)
	x.Steps = append(x.Steps, tr.steps...)
	x.Action = v.Action.String()
	if v.Action == rules.ActionReject {
		x.Reject = v.Reject.String()
	}
	if rs := a.policy.Rules(); v.Rule >= 0 && v.Rule < len(rs) {
		x.Rule = rs[v.Rule].Name
	}
	x.Reason = v.Reason.String()
	x.Log = v.Log
	return x
}

// kernel records what the kernel ruleset decides before the queue: a
// trusted interface, the management allowlist (input). It reports whether
// the kernel decided.
func (x *Explanation) kernel(c *rules.Config, f Flow) bool {
	ifc := f.InIface
	if f.Hook == rules.HookOutput {
		ifc = f.OutIface
	}
	for _, t := range rules.ExpandZones(c.Zones, c.Trusted) {
		name, wild := strings.CutSuffix(t, "+")
		if ifc != "" && (ifc == name || wild && strings.HasPrefix(ifc, name)) {
			x.Steps = append(x.Steps, Step{Matcher: "kernel", Decided: true,
				Text: fmt.Sprintf("trusted interface %s: accepted by the kernel before the queue", ifc)})
			x.Action, x.Reason = rules.ActionAccept.String(), "trusted"
			return true
		}
	}
	if f.Hook == rules.HookInput {
		for _, p := range c.Allowlist {
			if p.Contains(f.Src.Unmap()) {
				x.Steps = append(x.Steps, Step{Matcher: "kernel", Decided: true,
					Text: fmt.Sprintf("management allowlist %s: accepted by the kernel before the queue", p)})
				x.Action, x.Reason = rules.ActionAccept.String(), ReasonAllowlist.String()
				return true
			}
		}
	}
	return false
}

// firstPacket is the first packet of f as the decoder would fill it: a TCP
// SYN, a UDP datagram, an ICMP echo request unless a type is given.
func firstPacket(f Flow) rules.Packet {
	pkt := rules.Packet{Hook: f.Hook, Proto: f.Proto, TTL: 64, Src: f.Src.As16(), Dst: f.Dst.As16(),
		InIface: f.InIface, OutIface: f.OutIface, ICMPType: f.ICMPType, ICMPCode: f.ICMPCode}
	pkt.Family = rules.FamilyIPv6
	if f.Src.Unmap().Is4() {
		pkt.Family = rules.FamilyIPv4
	}
	switch f.Proto {
	case ctTCP:
		pkt.TCPFlags = 0x02
		pkt.SrcPort, pkt.DstPort = f.SrcPort, f.DstPort
	case ctUDP, 132, 33, ctUDPLite:
		pkt.SrcPort, pkt.DstPort = f.SrcPort, f.DstPort
	case ctICMP:
		if f.ICMPType == 0 && f.ICMPCode == 0 {
			pkt.ICMPType = 8
		}
	case ctICMPv6:
		if f.ICMPType == 0 && f.ICMPCode == 0 {
			pkt.ICMPType = 128
		}
	}
	return pkt
}

// Lines prints the explanation as "nfqfw explain" and "nfqfw trace" do:
// the flow, one line per step (the deciding one marked), the verdict.
func (x *Explanation) Lines() []string {
	out := []string{"flow     " + x.Flow}
	for _, s := range x.Steps {
		l := fmt.Sprintf("%-8s %s", s.Matcher, s.Text)
		if s.Decided {
			l += "  <- decides"
		}
		out = append(out, l)
	}
	v := "verdict  " + x.Action
	if x.Reject != "" {
		v += " with " + x.Reject
	}
	if x.Rule != "" {
		v += fmt.Sprintf(" by rule %q", x.Rule)
	}
	v += ", reason " + x.Reason
	if x.Log {
		v += ", logged"
	}
	return append(out, v)
}

package rules

import (
	"encoding/base32"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

func (p *parser) rejectKind(n *yaml.Node, path string) (RejectKind, error) {
	s, sn, err := p.str(n, path)
	if err != nil {
		return RejectNone, err
	}
	k, ok := ParseRejectKind(s)
	if !ok {
		var names []string
		for k := RejectKind(1); k < NumRejectKinds; k++ {
			names = append(names, k.String())
		}
		return RejectNone, p.errf(sn, path, ErrBadValue, "unknown reject kind %q (want one of %s)", s, strings.Join(names, ", "))
	}
	return k, nil
}

func isICMP6Kind(k RejectKind) bool {
	return k == RejectICMP6AdmProhibited || k == RejectICMP6PortUnreachable
}

// defaultReject is the answer of a reject rule without reject_with.
func defaultReject(proto uint8) RejectKind {
	if proto == protoTCP {
		return RejectTCPReset
	}
	return RejectICMPPortUnreachable
}

// mappingNode dereferences n and checks it is a mapping (for its line).
func (p *parser) mappingNode(n *yaml.Node, path string) (*yaml.Node, error) {
	n, err := p.deref(n, path)
	if err != nil {
		return nil, err
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n, path, ErrBadType, "want a mapping of keys, got %s", describe(n))
	}
	return n, nil
}

// recording wraps handlers so that the value node of every key given is
// kept in nodes, for checks that span several keys.
func recording(nodes map[string]*yaml.Node, hs map[string]handler) map[string]handler {
	out := make(map[string]handler, len(hs))
	for k, h := range hs {
		out[k] = func(v *yaml.Node, path string) error {
			nodes[k] = v
			return h(v, path)
		}
	}
	return out
}

func (p *parser) chain(n *yaml.Node, path string, hook Hook, c *Chain) error {
	nodes := map[string]*yaml.Node{}
	err := p.mapping(n, path, recording(nodes, map[string]handler{
		"policy": func(v *yaml.Node, path string) (err error) {
			c.Policy, err = p.action(v, path, "accept", "drop", "reject")
			return err
		},
		"reject_with": func(v *yaml.Node, path string) (err error) {
			c.RejectWith, err = p.rejectKind(v, path)
			return err
		},
		"log": func(v *yaml.Node, path string) (err error) {
			c.Log, err = p.logSpec(v, path, defaultPrefix(hook.String()))
			return err
		},
		"invalid": func(v *yaml.Node, path string) (err error) {
			c.Invalid, err = p.action(v, path, "drop", "accept", "reject")
			return err
		},
		"invalid_reject_with": func(v *yaml.Node, path string) (err error) {
			c.InvalidRejectWith, err = p.rejectKind(v, path)
			return err
		},
		"related": func(v *yaml.Node, path string) error {
			s, err := p.oneOf(v, path, "accept", "policy")
			c.RelatedPolicy = s == "policy"
			return err
		},
		"rules": func(v *yaml.Node, lpath string) error {
			i := 0
			return p.list(v, lpath, false, func(el *yaml.Node, path string) error {
				r, err := p.rule(el, path, hook, i)
				i++
				c.Rules = append(c.Rules, r)
				return err
			})
		},
	}))
	if err != nil {
		return err
	}
	if irw := nodes["invalid_reject_with"]; irw != nil {
		switch {
		case c.Invalid != ActionReject:
			return p.errf(irw, join(path, "invalid_reject_with"), ErrConflict, "invalid_reject_with needs invalid: reject (invalid is %s)", c.Invalid)
		case c.InvalidRejectWith == RejectTCPReset:
			return p.errf(irw, join(path, "invalid_reject_with"), ErrConflict, "tcp-reset cannot answer every protocol: leave invalid_reject_with out (TCP then gets a reset, other protocols icmp-port-unreachable)")
		case isICMP6Kind(c.InvalidRejectWith):
			return p.errf(irw, join(path, "invalid_reject_with"), ErrConflict, "%s cannot answer IPv4 (IPv6 packets get the IPv6 form of icmp-* kinds)", c.InvalidRejectWith)
		}
	}
	rw := nodes["reject_with"]
	switch {
	case rw != nil && c.Policy != ActionReject:
		return p.errf(rw, join(path, "reject_with"), ErrConflict, "reject_with needs policy: reject (policy is %s)", c.Policy)
	case c.Policy != ActionReject:
	case c.RejectWith == RejectNone:
		c.RejectWith = RejectICMPPortUnreachable
	case c.RejectWith == RejectTCPReset:
		return p.errf(rw, join(path, "reject_with"), ErrConflict, "tcp-reset cannot answer every protocol: reject TCP in a rule with proto: tcp")
	case isICMP6Kind(c.RejectWith):
		return p.errf(rw, join(path, "reject_with"), ErrConflict, "%s cannot answer IPv4: use it in a rule with family: ipv6 (IPv6 packets get the IPv6 form of icmp-* kinds)", c.RejectWith)
	}
	return nil
}

// famSet is a set of address families: bit 0 IPv4, bit 1 IPv6.
type famSet uint8

const (
	fam4    famSet = 1
	fam6    famSet = 2
	famBoth famSet = 3
)

func famBit(f Family) famSet {
	if f == FamilyIPv4 {
		return fam4
	}
	return fam6
}

func (s famSet) String() string {
	switch s {
	case fam4:
		return "IPv4"
	case fam6:
		return "IPv6"
	}
	return "IPv4 and IPv6"
}

func prefixFams(ps []netip.Prefix) famSet {
	if len(ps) == 0 {
		return famBoth
	}
	var s famSet
	for _, pf := range ps {
		s |= famBit(familyOf(pf))
	}
	return s
}

func (p *parser) rule(n *yaml.Node, path string, hook Hook, idx int) (Rule, error) {
	r := Rule{}
	n, err := p.mappingNode(n, path)
	if err != nil {
		return r, err
	}
	r.Line = n.Line
	nodes := map[string]*yaml.Node{}
	err = p.mapping(n, path, recording(nodes, map[string]handler{
		"name": func(v *yaml.Node, path string) error {
			s, sn, err := p.str(v, path)
			if err == nil {
				if cerr := checkName(s); cerr != nil {
					err = p.errf(sn, path, ErrBadValue, "rule name %q: %v", s, cerr)
				}
			}
			r.Name = s
			return err
		},
		"proto": func(v *yaml.Node, path string) (err error) {
			r.Proto, err = p.proto(v, path)
			return err
		},
		"family": func(v *yaml.Node, path string) error {
			s, err := p.oneOf(v, path, "ipv4", "ipv6", "any")
			switch s {
			case "ipv4":
				r.Family = FamilyIPv4
			case "ipv6":
				r.Family = FamilyIPv6
			}
			return err
		},
		"in":        func(v *yaml.Node, path string) (err error) { r.In, err = p.ifaces(v, path); return err },
		"out":       func(v *yaml.Node, path string) (err error) { r.Out, err = p.ifaces(v, path); return err },
		"src":       func(v *yaml.Node, path string) (err error) { r.Src, err = p.prefixes(v, path); return err },
		"dst":       func(v *yaml.Node, path string) (err error) { r.Dst, err = p.prefixes(v, path); return err },
		"sport":     func(v *yaml.Node, path string) (err error) { r.SPort, err = p.ports(v, path); return err },
		"dport":     func(v *yaml.Node, path string) (err error) { r.DPort, err = p.ports(v, path); return err },
		"icmp_type": func(v *yaml.Node, path string) error { return nil }, // needs proto: below
		"action": func(v *yaml.Node, path string) (err error) {
			r.Action, err = p.action(v, path, "accept", "drop", "reject")
			return err
		},
		"reject_with": func(v *yaml.Node, path string) (err error) { r.RejectWith, err = p.rejectKind(v, path); return err },
		"log": func(v *yaml.Node, path string) (err error) {
			r.Log, err = p.logSpec(v, path, defaultPrefix(hook.String()))
			return err
		},
		"recent": func(v *yaml.Node, path string) (err error) { r.Recent, err = p.recentMatch(v, path); return err },
		"guard": func(v *yaml.Node, path string) (err error) {
			r.Guard, err = p.ref(v, path, "guard", p.guards)
			return err
		},
		"knock": func(v *yaml.Node, path string) (err error) {
			r.Knock, err = p.ref(v, path, "knock", p.knocks)
			return err
		},
	}))
	if err != nil {
		return r, err
	}
	field := func(k string) string { return join(path, k) }

	// Name: given or derived from the position; unique across all chains.
	if r.Name == "" {
		r.Name = fmt.Sprintf("%s-%d", hook, idx)
	}
	if first, dup := p.ruleAt[r.Name]; dup {
		at := n
		if nodes["name"] != nil {
			at = nodes["name"]
		}
		return r, p.errf(at, field("name"), ErrDuplicate, "rule name %q already used on line %d", r.Name, first)
	}
	p.ruleAt[r.Name] = r.Line

	if r.Action == ActionNone {
		return r, p.errf(n, path, ErrMissing, "action is required (accept, drop or reject)")
	}
	if v := nodes["out"]; v != nil && hook == HookInput {
		return r, p.errf(v, field("out"), ErrConflict, "the input chain has no output interface")
	}
	if v := nodes["in"]; v != nil && hook == HookOutput {
		return r, p.errf(v, field("in"), ErrConflict, "the output chain has no input interface")
	}

	// Address family: from family, proto, src and dst, which must agree.
	fams, why := famBoth, ""
	if r.Family != FamilyAny {
		fams, why = famBit(r.Family), "family "+familyName(r.Family)
	}
	if r.Proto == protoICMP || r.Proto == protoICMPv6 {
		pf, name := fam4, "icmp"
		if r.Proto == protoICMPv6 {
			pf, name = fam6, "icmpv6"
		}
		if fams&pf == 0 {
			return r, p.errf(nodes["family"], field("family"), ErrConflict, "family %s conflicts with proto %s", familyName(r.Family), name)
		}
		fams, why = pf, "proto "+name
	}
	for _, f := range []string{"src", "dst", "src", "dst"} { // twice: dst may narrow what src allowed
		ps := r.Src
		if f == "dst" {
			ps = r.Dst
		}
		for _, pf := range ps {
			if famBit(familyOf(pf))&fams == 0 {
				return r, p.errf(nodes[f], field(f), ErrConflict, "%s is %s but the rule only matches %s (%s)", fmtPrefix(pf), famBit(familyOf(pf)), fams, why)
			}
		}
		if pfs := prefixFams(ps); pfs&fams != fams {
			fams, why = pfs&fams, f
		}
	}
	switch fams {
	case fam4:
		r.Family = FamilyIPv4
	case fam6:
		r.Family = FamilyIPv6
	}

	for _, f := range []string{"sport", "dport"} {
		if v := nodes[f]; v != nil && !hasPorts(r.Proto) {
			return r, p.errf(v, field(f), ErrConflict, "ports need proto tcp, udp or sctp (proto is %s)", protoName(r.Proto))
		}
	}
	if v := nodes["icmp_type"]; v != nil {
		if r.Proto != protoICMP && r.Proto != protoICMPv6 {
			return r, p.errf(v, field("icmp_type"), ErrConflict, "icmp_type needs proto icmp or icmpv6 (proto is %s)", protoName(r.Proto))
		}
		if r.ICMP, err = p.icmpTypes(v, field("icmp_type"), r.Proto); err != nil {
			return r, err
		}
	}

	if v := nodes["reject_with"]; v != nil {
		switch {
		case r.Action != ActionReject:
			return r, p.errf(v, field("reject_with"), ErrConflict, "reject_with needs action: reject (action is %s)", r.Action)
		case r.RejectWith == RejectTCPReset && r.Proto != protoTCP:
			return r, p.errf(v, field("reject_with"), ErrConflict, "tcp-reset only answers TCP (proto is %s)", protoName(r.Proto))
		case isICMP6Kind(r.RejectWith) && r.Family != FamilyIPv6:
			return r, p.errf(v, field("reject_with"), ErrConflict, "%s only answers IPv6 (rule family is %s): add family: ipv6", r.RejectWith, familyName(r.Family))
		}
	}
	if r.Action == ActionReject && r.RejectWith == RejectNone {
		r.RejectWith = defaultReject(r.Proto)
	}
	return r, nil
}

// ref parses a name that must be declared in declared.
func (p *parser) ref(n *yaml.Node, path, what string, declared map[string]bool) (string, error) {
	s, sn, err := p.str(n, path)
	if err != nil {
		return "", err
	}
	if !declared[s] {
		return "", p.errf(sn, path, ErrUnknownRef, "no %s named %q is declared", what, s)
	}
	return s, nil
}

func (p *parser) recentMatch(n *yaml.Node, path string) (*RecentMatch, error) {
	n, err := p.mappingNode(n, path)
	if err != nil {
		return nil, err
	}
	m := &RecentMatch{}
	nodes := map[string]*yaml.Node{}
	err = p.mapping(n, path, recording(nodes, map[string]handler{
		"list": func(v *yaml.Node, path string) (err error) {
			m.List, err = p.ref(v, path, "recent list", p.recent)
			return err
		},
		"op": func(v *yaml.Node, path string) error {
			s, err := p.oneOf(v, path, "set", "check", "update", "remove")
			m.Op = map[string]RecentOp{"set": RecentSet, "check": RecentCheck, "update": RecentUpdate, "remove": RecentRemove}[s]
			return err
		},
		"seconds": func(v *yaml.Node, path string) error {
			// xt_recent's --seconds: a number of seconds, or a duration.
			s, err := p.scalar(v, path, "seconds or a duration")
			if err != nil {
				return err
			}
			if s.ShortTag() == "!!int" {
				x, err := p.integer(s, path, 1, 1<<31-1)
				m.Seconds = time.Duration(x) * time.Second
				return err
			}
			m.Seconds, err = p.duration(s, path, time.Second)
			return err
		},
		"hitcount": func(v *yaml.Node, path string) error {
			x, err := p.integer(v, path, 1, 1<<16)
			if err == nil && x > MaxRecentHitCount {
				err = p.errf(v, path, ErrBadValue, "%d out of range (1-%d): a recent-list entry keeps its last %d hits, so a larger hitcount never matches", x, MaxRecentHitCount, MaxRecentHitCount)
			}
			m.HitCount = int(x)
			return err
		},
		"by_dst":   func(v *yaml.Node, path string) (err error) { m.ByDst, err = p.boolean(v, path); return err },
		"same_ttl": func(v *yaml.Node, path string) (err error) { m.SameTTL, err = p.boolean(v, path); return err },
	}))
	if err != nil {
		return nil, err
	}
	if m.List == "" {
		return nil, p.errf(n, path, ErrMissing, "list is required")
	}
	if m.Op == 0 {
		return nil, p.errf(n, path, ErrMissing, "op is required (set, check, update or remove)")
	}
	if m.Op == RecentSet || m.Op == RecentRemove {
		for _, f := range []string{"seconds", "hitcount", "same_ttl"} {
			if v := nodes[f]; v != nil {
				return nil, p.errf(v, join(path, f), ErrConflict, "%s needs op check or update", f)
			}
		}
	}
	return m, nil
}

// named parses the list of a section whose entries have a unique name.
func (p *parser) named(n *yaml.Node, path, what string, declared map[string]bool, fn func(el *yaml.Node, path string) (string, *yaml.Node, error)) error {
	lines := map[string]int{}
	return p.list(n, path, false, func(el *yaml.Node, path string) error {
		name, at, err := fn(el, path)
		if err != nil {
			return err
		}
		if name == "" {
			return p.errf(at, path, ErrMissing, "name is required")
		}
		if first, dup := lines[name]; dup {
			return p.errf(at, join(path, "name"), ErrDuplicate, "%s %q already declared on line %d", what, name, first)
		}
		lines[name] = at.Line
		if declared != nil {
			declared[name] = true
		}
		return nil
	})
}

func (p *parser) name(v *yaml.Node, path string, dst *string) error {
	s, sn, err := p.str(v, path)
	if err != nil {
		return err
	}
	if err := checkName(s); err != nil {
		return p.errf(sn, path, ErrBadValue, "name %q: %v", s, err)
	}
	*dst = s
	return nil
}

func (p *parser) recentLists(n *yaml.Node, path string) ([]RecentList, error) {
	var out []RecentList
	err := p.named(n, path, "recent list", p.recent, func(el *yaml.Node, path string) (string, *yaml.Node, error) {
		l := RecentList{Size: 200}
		m, err := p.mappingNode(el, path)
		if err != nil {
			return "", el, err
		}
		err = p.mapping(m, path, map[string]handler{
			"name": func(v *yaml.Node, path string) error { return p.name(v, path, &l.Name) },
			"size": func(v *yaml.Node, path string) error {
				x, err := p.integer(v, path, 1, MaxRecentSize)
				l.Size = int(x)
				return err
			},
			"shared": func(v *yaml.Node, path string) (err error) { l.Shared, err = p.boolean(v, path); return err },
		})
		out = append(out, l)
		return l.Name, m, err
	})
	return out, err
}

func (p *parser) guardList(n *yaml.Node, path string) ([]Guard, error) {
	var out []Guard
	err := p.named(n, path, "guard", p.guards, func(el *yaml.Node, path string) (string, *yaml.Node, error) {
		var g Guard
		m, err := p.mappingNode(el, path)
		if err != nil {
			return "", el, err
		}
		var logNode *yaml.Node
		err = p.mapping(m, path, map[string]handler{
			"name": func(v *yaml.Node, path string) error { return p.name(v, path, &g.Name) },
			"limits": func(v *yaml.Node, path string) error {
				return p.list(v, path, false, func(el *yaml.Node, path string) error {
					var l RateLimit
					lm, err := p.mappingNode(el, path)
					if err != nil {
						return err
					}
					err = p.mapping(lm, path, map[string]handler{
						"count": func(v *yaml.Node, path string) error {
							x, err := p.integer(v, path, 1, MaxGuardCount)
							l.Count = int(x)
							return err
						},
						"window": func(v *yaml.Node, path string) (err error) {
							l.Window, err = p.duration(v, path, time.Second)
							return err
						},
					})
					if err == nil && (l.Count == 0 || l.Window == 0) {
						err = p.errf(lm, path, ErrMissing, "a limit needs count and window")
					}
					g.Limits = append(g.Limits, l)
					return err
				})
			},
			"ban": func(v *yaml.Node, path string) (err error) { g.Ban, err = p.ban(v, path); return err },
			"log": func(v *yaml.Node, path string) error { logNode = v; return nil },
		})
		if err != nil {
			return g.Name, m, err
		}
		if logNode != nil {
			if g.Log, err = p.logSpec(logNode, join(path, "log"), defaultPrefix(g.Name)); err != nil {
				return g.Name, m, err
			}
		}
		if len(g.Limits) == 0 && g.Name != "" {
			return g.Name, m, p.errf(m, path, ErrMissing, "limits is required (e.g. [{count: 3, window: 10s}])")
		}
		out = append(out, g)
		return g.Name, m, nil
	})
	return out, err
}

func (p *parser) ban(n *yaml.Node, path string) (*BanSpec, error) {
	n, err := p.mappingNode(n, path)
	if err != nil {
		return nil, err
	}
	b := &BanSpec{Factor: 1}
	nodes := map[string]*yaml.Node{}
	err = p.mapping(n, path, recording(nodes, map[string]handler{
		"duration": func(v *yaml.Node, path string) (err error) {
			b.Duration, err = p.duration(v, path, time.Second)
			return err
		},
		"factor": func(v *yaml.Node, path string) (err error) { b.Factor, err = p.float(v, path, 1, 100); return err },
		"max":    func(v *yaml.Node, path string) (err error) { b.Max, err = p.duration(v, path, time.Second); return err },
		"prefix4": func(v *yaml.Node, path string) error {
			n, err := p.integer(v, path, BanMinPrefix4, 32)
			b.Prefix4 = int(n)
			return err
		},
		"prefix6": func(v *yaml.Node, path string) error {
			n, err := p.integer(v, path, BanMinPrefix6, 128)
			b.Prefix6 = int(n)
			return err
		},
	}))
	if err != nil {
		return nil, err
	}
	if b.Duration == 0 {
		return nil, p.errf(n, path, ErrMissing, "duration is required")
	}
	if b.Max == 0 {
		b.Max = b.Duration
		if b.Factor > 1 {
			b.Max = max(24*time.Hour, b.Duration)
		}
	}
	if b.Max < b.Duration {
		return nil, p.errf(nodes["max"], join(path, "max"), ErrBadValue, "max %s is shorter than duration %s", b.Max, b.Duration)
	}
	return b, nil
}

// knockStep parses "tcp/7000" (or, for a secret knock, just "tcp").
func (p *parser) knockStep(n *yaml.Node, path string, secret bool) (KnockStep, error) {
	s, sn, err := p.str(n, path)
	if err != nil {
		return KnockStep{}, err
	}
	proto, port, hasPort := strings.Cut(s, "/")
	var st KnockStep
	switch proto {
	case "tcp":
		st.Proto = protoTCP
	case "udp":
		st.Proto = protoUDP
	default:
		return st, p.errf(sn, path, ErrBadValue, "knock step %q: want tcp/PORT or udp/PORT", s)
	}
	switch {
	case secret && hasPort:
		return st, p.errf(sn, path, ErrConflict, "knock step %q: with a secret the ports are derived, give only the protocol (tcp or udp)", s)
	case secret:
		return st, nil
	case !hasPort:
		return st, p.errf(sn, path, ErrBadValue, "knock step %q: want tcp/PORT or udp/PORT", s)
	}
	v, err := p.portNumber(sn, path, port, s)
	st.Port = v
	return st, err
}

func (p *parser) knockList(n *yaml.Node, path string) ([]Knock, error) {
	var out []Knock
	err := p.named(n, path, "knock", p.knocks, func(el *yaml.Node, path string) (string, *yaml.Node, error) {
		k := Knock{StepWindow: 5 * time.Second, OpenFor: 30 * time.Second}
		m, err := p.mappingNode(el, path)
		if err != nil {
			return "", el, err
		}
		nodes := map[string]*yaml.Node{}
		err = p.mapping(m, path, recording(nodes, map[string]handler{
			"name":        func(v *yaml.Node, path string) error { return p.name(v, path, &k.Name) },
			"steps":       func(v *yaml.Node, path string) error { return nil }, // needs secret: below
			"step_window": func(v *yaml.Node, path string) (err error) { k.StepWindow, err = p.duration(v, path, 1); return err },
			"window":      func(v *yaml.Node, path string) (err error) { k.Window, err = p.duration(v, path, 1); return err },
			"open": func(v *yaml.Node, path string) error {
				return p.list(v, path, false, func(el *yaml.Node, path string) error {
					o, err := p.open(el, path)
					k.Open = append(k.Open, o)
					return err
				})
			},
			"open_for": func(v *yaml.Node, path string) (err error) {
				k.OpenFor, err = p.duration(v, path, time.Second)
				return err
			},
			"keep_open": func(v *yaml.Node, path string) (err error) { k.KeepOpen, err = p.boolean(v, path); return err },
			"one_shot":  func(v *yaml.Node, path string) (err error) { k.OneShot, err = p.boolean(v, path); return err },
			"shared":    func(v *yaml.Node, path string) (err error) { k.Shared, err = p.boolean(v, path); return err },
			"secret":    func(v *yaml.Node, path string) (err error) { k.Secret, err = p.secret(v, path); return err },
			"period": func(v *yaml.Node, path string) (err error) {
				k.Period, err = p.duration(v, path, time.Second)
				return err
			},
			"skew": func(v *yaml.Node, path string) error {
				x, err := p.integer(v, path, 0, 10)
				k.Skew = int(x)
				return err
			},
			"dst": func(v *yaml.Node, path string) (err error) { k.Dst, err = p.prefixes(v, path); return err },
			"reset": func(v *yaml.Node, path string) error {
				s, err := p.oneOf(v, path, "wrong_step", "any")
				k.ResetOnAnyPort = s == "any"
				return err
			},
		}))
		if err != nil {
			return k.Name, m, err
		}
		secret := k.Secret != ""
		if v := nodes["steps"]; v != nil {
			first := map[KnockStep]string{}
			err := p.list(v, join(path, "steps"), false, func(el *yaml.Node, path string) error {
				st, err := p.knockStep(el, path, secret)
				if err != nil {
					return err
				}
				if prev, dup := first[st]; dup && !secret {
					return p.errf(el, path, ErrDuplicate, "knock step %s/%d repeats %s: the steps must be distinct (a repeat adds nothing an eavesdropper does not see, and a retransmitted SYN takes it)", protoName(st.Proto), st.Port, prev)
				}
				first[st] = path
				k.Steps = append(k.Steps, st)
				if !secret {
					p.knockSteps = append(p.knockSteps, knockStepAt{step: st, dst: k.Dst, node: el, path: path})
				}
				return nil
			})
			if err != nil {
				return k.Name, m, err
			}
			if len(k.Steps) == 1 {
				return k.Name, m, p.errf(v, join(path, "steps"), ErrBadValue, "a knock of one step is found by any scan of that port: give at least 2 distinct steps (e.g. [tcp/7000, udp/8000, tcp/9000])")
			}
		}
		if len(k.Steps) == 0 {
			return k.Name, m, p.errf(m, path, ErrMissing, "steps is required (e.g. [tcp/7000, udp/8000, tcp/9000])")
		}
		if len(k.Open) == 0 {
			return k.Name, m, p.errf(m, path, ErrMissing, "open is required (what a completed sequence opens)")
		}
		if !secret {
			for _, f := range []string{"period", "skew"} {
				if v := nodes[f]; v != nil {
					return k.Name, m, p.errf(v, join(path, f), ErrConflict, "%s needs a secret", f)
				}
			}
		} else {
			if k.Period == 0 {
				k.Period = 30 * time.Second
			}
			if nodes["skew"] == nil {
				k.Skew = 1
			}
		}
		if k.Window == 0 {
			k.Window = k.StepWindow * time.Duration(len(k.Steps))
		}
		if k.Window < k.StepWindow {
			return k.Name, m, p.errf(nodes["window"], join(path, "window"), ErrBadValue, "window %s is shorter than step_window %s", k.Window, k.StepWindow)
		}
		out = append(out, k)
		return k.Name, m, nil
	})
	return out, err
}

// secret parses a rotating knock's secret: base32 (RFC 4648, as TOTP
// apps take it; case and trailing "=" padding do not matter) of at least
// MinSecretBits bits.
func (p *parser) secret(n *yaml.Node, path string) (string, error) {
	s, sn, err := p.str(n, path)
	if err != nil {
		return "", err
	}
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(strings.ToUpper(s), "="))
	switch {
	case err != nil:
		return "", p.errf(sn, path, ErrBadValue, "the secret is not base32 (letters A-Z and digits 2-7): make one with: head -c 20 /dev/urandom | base32")
	case len(key)*8 < MinSecretBits:
		return "", p.errf(sn, path, ErrBadValue, "the secret carries %d bits, fewer than %d (%d base32 characters): make one with: head -c 20 /dev/urandom | base32", len(key)*8, MinSecretBits, MinSecretBits/5)
	}
	return s, nil
}

// knockStepAt is a static knock step, its sequence's target (Knock.Dst)
// and where the file wrote it.
type knockStepAt struct {
	step KnockStep
	dst  []netip.Prefix
	node *yaml.Node
	path string
}

// knockPortsClosed refuses a static knock step on a port the policy opens
// to everyone: for a knock on the host itself, the input policy is accept
// or an input accept rule matches the step's protocol and port from any
// source on any interface with no stateful condition; for a knock on hosts
// behind a gateway (dst:), a forward rule does so toward them. Such a knock
// is no secret (a scan of the open port takes the step), and the engine
// takes the step's packets for knocks, so the open port breaks: its new
// connections are dropped as knocks.
func (p *parser) knockPortsClosed(c *Config) error {
	for _, ks := range p.knockSteps {
		st := ks.step
		rules := c.Input.Rules
		if len(ks.dst) > 0 {
			rules = c.Forward.Rules
		} else if c.Input.Policy == ActionAccept {
			return p.errf(ks.node, ks.path, ErrConflict, "knock step %s/%d: input policy accept opens every port to everyone; a knock needs ports the policy closes", protoName(st.Proto), st.Port)
		}
		for _, r := range rules {
			if r.Action != ActionAccept || r.Knock != "" || r.Recent != nil || len(r.In) > 0 ||
				!anySource(r.Src) || (r.Proto != 0 && r.Proto != st.Proto) || !PortIn(st.Port, r.DPort) ||
				(len(ks.dst) > 0 && !overlapAny(r.Dst, ks.dst)) {
				continue
			}
			return p.errf(ks.node, ks.path, ErrConflict, "knock step %s/%d is a port rule %q (line %d) opens to everyone: a knock needs ports the policy closes", protoName(st.Proto), st.Port, r.Name, r.Line)
		}
	}
	return nil
}

// overlapAny reports whether a rule's destinations (empty: any) meet one
// of the prefixes of dst.
func overlapAny(ruleDst, dst []netip.Prefix) bool {
	if len(ruleDst) == 0 {
		return true
	}
	for _, a := range ruleDst {
		for _, b := range dst {
			if a.Overlaps(b) {
				return true
			}
		}
	}
	return false
}

// anySource reports whether a source match admits every address.
func anySource(src []netip.Prefix) bool {
	if len(src) == 0 {
		return true
	}
	for _, pf := range src {
		if pf.Bits() == 0 {
			return true
		}
	}
	return false
}

func (p *parser) transportProto(n *yaml.Node, path string) (uint8, error) {
	s, err := p.oneOf(n, path, "tcp", "udp")
	if s == "udp" {
		return protoUDP, err
	}
	return protoTCP, err
}

func (p *parser) open(n *yaml.Node, path string) (Open, error) {
	var o Open
	n, err := p.mappingNode(n, path)
	if err != nil {
		return o, err
	}
	err = p.mapping(n, path, map[string]handler{
		"proto": func(v *yaml.Node, path string) (err error) { o.Proto, err = p.transportProto(v, path); return err },
		"ports": func(v *yaml.Node, path string) (err error) { o.Ports, err = p.ports(v, path); return err },
		"dst":   func(v *yaml.Node, path string) (err error) { o.Dst, err = p.prefixes(v, path); return err },
	})
	if err == nil && (o.Proto == 0 || len(o.Ports) == 0) {
		err = p.errf(n, path, ErrMissing, "open needs proto and ports")
	}
	return o, err
}

func (p *parser) ftp(n *yaml.Node, path string, f *FTP) error {
	return p.mapping(n, path, map[string]handler{
		"enabled": func(v *yaml.Node, path string) (err error) { f.Enabled, err = p.boolean(v, path); return err },
		"ports": func(v *yaml.Node, path string) error {
			f.Ports = nil
			err := p.list(v, path, true, func(el *yaml.Node, path string) error {
				x, err := p.integer(el, path, 1, 65535)
				f.Ports = append(f.Ports, uint16(x))
				return err
			})
			if err == nil && len(f.Ports) == 0 {
				err = p.errf(v, path, ErrMissing, "at least one control port is required")
			}
			return err
		},
		"expiry": func(v *yaml.Node, path string) (err error) {
			f.Expiry, err = p.duration(v, path, time.Second)
			return err
		},
		"max_per_control": func(v *yaml.Node, path string) error {
			x, err := p.integer(v, path, 1, 1024)
			f.MaxPerControl = int(x)
			return err
		},
	})
}

func (p *parser) nat(n *yaml.Node, path string, nat *NAT) error {
	return p.mapping(n, path, map[string]handler{
		"masquerade": func(v *yaml.Node, path string) error {
			return p.list(v, path, false, func(el *yaml.Node, path string) error {
				var m Masquerade
				mn, err := p.mappingNode(el, path)
				if err != nil {
					return err
				}
				err = p.mapping(mn, path, map[string]handler{
					"out": func(v *yaml.Node, path string) (err error) { m.Out, err = p.kernelIfaces(v, path); return err },
					"src": func(v *yaml.Node, path string) (err error) { m.Src, err = p.prefixes(v, path); return err },
				})
				if err == nil && len(m.Out) == 0 {
					err = p.errf(mn, path, ErrMissing, "out is required (the uplink interface)")
				}
				nat.Masquerade = append(nat.Masquerade, m)
				return err
			})
		},
		"snat": func(v *yaml.Node, path string) error {
			return p.list(v, path, false, func(el *yaml.Node, path string) error {
				var s SNAT
				sn, err := p.mappingNode(el, path)
				if err != nil {
					return err
				}
				nodes := map[string]*yaml.Node{}
				err = p.mapping(sn, path, recording(nodes, map[string]handler{
					"out": func(v *yaml.Node, path string) (err error) { s.Out, err = p.kernelIfaces(v, path); return err },
					"src": func(v *yaml.Node, path string) (err error) { s.Src, err = p.prefixes(v, path); return err },
					"to":  func(v *yaml.Node, path string) (err error) { s.To, err = p.hostAddr(v, path); return err },
				}))
				switch {
				case err != nil:
				case len(s.Out) == 0 || !s.To.IsValid():
					err = p.errf(sn, path, ErrMissing, "snat needs out and to")
				default:
					err = p.sameFamily(nodes["src"], join(path, "src"), s.Src, s.To)
				}
				nat.SNAT = append(nat.SNAT, s)
				return err
			})
		},
		"forwards": func(v *yaml.Node, path string) error {
			i := 0
			return p.named(v, path, "forward", nil, func(el *yaml.Node, path string) (string, *yaml.Node, error) {
				f, at, err := p.portForward(el, path, i)
				i++
				nat.Forwards = append(nat.Forwards, f)
				return f.Name, at, err
			})
		},
	})
}

func (p *parser) sameFamily(n *yaml.Node, path string, src []netip.Prefix, to netip.Addr) error {
	for _, pf := range src {
		if pf.Addr().Is4() != to.Is4() {
			return p.errf(n, path, ErrConflict, "%s and the target %s are of different address families", fmtPrefix(pf), to)
		}
	}
	return nil
}

func (p *parser) portForward(n *yaml.Node, path string, idx int) (PortForward, *yaml.Node, error) {
	var f PortForward
	m, err := p.mappingNode(n, path)
	if err != nil {
		return f, n, err
	}
	nodes := map[string]*yaml.Node{}
	err = p.mapping(m, path, recording(nodes, map[string]handler{
		"name":  func(v *yaml.Node, path string) error { return p.name(v, path, &f.Name) },
		"in":    func(v *yaml.Node, path string) (err error) { f.In, err = p.kernelIfaces(v, path); return err },
		"proto": func(v *yaml.Node, path string) (err error) { f.Proto, err = p.transportProto(v, path); return err },
		"port":  func(v *yaml.Node, path string) (err error) { f.Port, err = p.port(v, path); return err },
		"to":    func(v *yaml.Node, path string) (err error) { f.To, err = p.hostAddr(v, path); return err },
		"to_port": func(v *yaml.Node, path string) error {
			x, err := p.integer(v, path, 1, 65535)
			f.ToPort = uint16(x)
			return err
		},
		"src": func(v *yaml.Node, path string) (err error) { f.Src, err = p.prefixes(v, path); return err },
	}))
	if err != nil {
		return f, m, err
	}
	if f.Name == "" {
		f.Name = fmt.Sprintf("forward-%d", idx)
	}
	switch {
	case f.Proto == 0:
		return f, m, p.errf(m, path, ErrMissing, "proto is required (tcp or udp)")
	case f.Port.First == 0:
		return f, m, p.errf(m, path, ErrMissing, "port is required")
	case !f.To.IsValid():
		return f, m, p.errf(m, path, ErrMissing, "to is required (the internal address)")
	case f.ToPort != 0 && f.Port.First != f.Port.Last:
		return f, m, p.errf(nodes["to_port"], join(path, "to_port"), ErrConflict, "to_port needs a single port, not the range %d-%d", f.Port.First, f.Port.Last)
	}
	return f, m, p.sameFamily(nodes["src"], join(path, "src"), f.Src, f.To)
}

// fmtPrefix writes a single address without its /32 or /128.
func fmtPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

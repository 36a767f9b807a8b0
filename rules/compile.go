package rules

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Compile builds the immutable Policy of a configuration. c is normally the
// result of Parse; a hand-built Config is accepted too, with the same
// defaults for what it leaves zero (chain policies, reject kinds). c must
// not be modified afterwards. Compile fails, wrapping ErrBadValue or
// ErrConflict, on a Config that Parse would have refused in ways the policy
// cannot represent.
//
// Port forwards need no rule of their own: the forward hook's rules are the
// config's, followed by one accept rule per port forward that admits it
// toward its forwarded destination only (protocol, To, ToPort, the
// forward's In and Src), named after the forward. A config forward rule
// that names that destination itself replaces the automatic one. Rules
// lists them after the config's forward rules.
func Compile(c *Config) (*Policy, error) {
	if c == nil {
		return nil, fmt.Errorf("compile: nil config: %w", ErrMissing)
	}
	p := &Policy{cfg: c}
	chains := [NumHooks]*Chain{HookInput: &c.Input, HookForward: &c.Forward, HookOutput: &c.Output}
	for h, ch := range chains {
		cp := ChainPolicy{Action: ch.Policy, RejectWith: ch.RejectWith, Log: ch.Log}
		if cp.Action == ActionNone {
			cp.Action = ActionDrop
			if Hook(h) == HookOutput {
				cp.Action = ActionAccept
			}
		}
		if cp.Action == ActionReject && cp.RejectWith == RejectNone {
			cp.RejectWith = RejectICMPPortUnreachable
		}
		if cp.Action != ActionReject {
			cp.RejectWith = RejectNone
		}
		p.chains[h] = cp
		rs := ch.Rules
		if Hook(h) == HookForward {
			adm, err := forwardAdmissions(c)
			if err != nil {
				return nil, err
			}
			rs = slices.Concat(rs, adm)
		}
		for i := range rs {
			r := &rs[i]
			cr, err := compileRule(Hook(h), r)
			if err != nil {
				return nil, err
			}
			p.rules = append(p.rules, cr)
		}
	}
	if len(p.rules) > 1<<31-1 {
		return nil, fmt.Errorf("compile: %d rules: %w", len(p.rules), ErrBadValue)
	}
	for f, fam := range []Family{FamilyIPv4, FamilyIPv6} {
		p.match[f] = make([]matcher, len(p.rules))
		usable := make([]bool, len(p.rules))
		for id := range p.rules {
			p.match[f][id], usable[id] = newMatcher(p.rules[id].Src, fam)
		}
		for h := range NumHooks {
			p.cand[h][f] = candidates(p.rules, usable, h)
			for _, proto := range portProtos {
				p.ports[h][f][proto] = newPortIndex(p.rules, p.cand[h][f][proto])
			}
		}
	}
	hash, err := canonicalHash(c)
	if err != nil {
		return nil, err
	}
	p.hash = hash
	return p, nil
}

func compileRule(h Hook, r *Rule) (CompiledRule, error) {
	cr := CompiledRule{
		Name:       r.Name,
		Hook:       h,
		Action:     r.Action,
		RejectWith: r.RejectWith,
		Log:        r.Log,
		HasState:   r.Recent != nil || r.Guard != "" || r.Knock != "",
		Src:        r,
	}
	bad := func(sentinel error, format string, args ...any) error {
		return fmt.Errorf("compile %s rule %q (line %d): %s: %w", h, r.Name, r.Line, fmt.Sprintf(format, args...), sentinel)
	}
	switch r.Action {
	case ActionAccept, ActionDrop:
		cr.RejectWith = RejectNone
	case ActionReject:
		if cr.RejectWith == RejectNone {
			cr.RejectWith = defaultReject(r.Proto)
		}
		if cr.RejectWith >= NumRejectKinds {
			return cr, bad(ErrBadValue, "unknown reject kind %d", cr.RejectWith)
		}
		if cr.RejectWith == RejectTCPReset && r.Proto != protoTCP {
			return cr, bad(ErrConflict, "tcp-reset on proto %s", protoName(r.Proto))
		}
	default:
		return cr, bad(ErrBadValue, "no action")
	}
	switch r.Family {
	case FamilyAny, FamilyIPv4, FamilyIPv6:
	default:
		return cr, bad(ErrBadValue, "unknown family %d", r.Family)
	}
	for _, pr := range slices.Concat(r.SPort, r.DPort) {
		if pr.First > pr.Last {
			return cr, bad(ErrBadValue, "port range %d-%d is reversed", pr.First, pr.Last)
		}
	}
	if (len(r.SPort) > 0 || len(r.DPort) > 0) && !hasPorts(r.Proto) {
		return cr, bad(ErrConflict, "ports on proto %s", protoName(r.Proto))
	}
	if len(r.ICMP) > 0 && r.Proto != protoICMP && r.Proto != protoICMPv6 {
		return cr, bad(ErrConflict, "icmp types on proto %s", protoName(r.Proto))
	}
	for _, pf := range slices.Concat(r.Src, r.Dst) {
		if !pf.IsValid() {
			return cr, bad(ErrBadValue, "invalid prefix")
		}
	}
	if cr.Name == "" {
		cr.Name = fmt.Sprintf("%s-line%d", h, r.Line)
	}
	return cr, nil
}

// forwardAdmissions returns the forward-hook rules that admit c's port
// forwards: an operator expects a DNAT port forward to be reachable without
// writing a second rule, and admitted only toward its forwarded destination.
// The forward hook sees a forwarded packet after DNAT, so each rule accepts
// proto to To, port ToPort (the forwarded range when ToPort is 0), arriving
// on the forward's In interfaces from its Src, and nothing else. The rules
// come after the operator's own forward rules, which may therefore refuse
// part of a forward; they are named after the forward (Name, or
// Name-port-forward when a rule already has that name) and have no line.
//
// A forward whose destination an operator's forward rule names explicitly
// (same protocol, a dst prefix holding To and a dport holding the first
// target port) gets no rule: that rule decides, so a guard or knock on it is
// not bypassed by the automatic admission.
func forwardAdmissions(c *Config) ([]Rule, error) {
	names := map[string]bool{}
	for _, ch := range []*Chain{&c.Input, &c.Forward, &c.Output} {
		for _, r := range ch.Rules {
			names[r.Name] = true
		}
	}
	var out []Rule
	for i, f := range c.NAT.Forwards {
		to := f.To.Unmap()
		if !to.IsValid() {
			return nil, fmt.Errorf("compile port forward %d (%s): no destination: %w", i, f.Name, ErrBadValue)
		}
		ports := f.Port
		if f.ToPort != 0 {
			last := int(f.ToPort) + int(f.Port.Last) - int(f.Port.First)
			if last > 65535 || f.Port.Last < f.Port.First {
				return nil, fmt.Errorf("compile port forward %d (%s): target ports %d-%d: %w", i, f.Name, f.ToPort, last, ErrBadValue)
			}
			ports = PortRange{f.ToPort, uint16(last)}
		}
		if claimed(c.Forward.Rules, f.Proto, to, ports.First) {
			continue
		}
		name := f.Name
		if name == "" {
			name = fmt.Sprintf("forward-%d", i)
		}
		if names[name] {
			name += "-port-forward"
		}
		names[name] = true
		fam := FamilyIPv4
		if to.Is6() {
			fam = FamilyIPv6
		}
		out = append(out, Rule{
			Name:   name,
			Family: fam,
			Proto:  f.Proto,
			In:     ExpandZones(c.Zones, f.In),
			Src:    f.Src,
			Dst:    []netip.Prefix{netip.PrefixFrom(to, to.BitLen())},
			DPort:  []PortRange{ports},
			Action: ActionAccept,
		})
	}
	return out, nil
}

// claimed reports whether one of rs names the destination to:port for
// proto explicitly.
func claimed(rs []Rule, proto uint8, to netip.Addr, port uint16) bool {
	for _, r := range rs {
		if r.Proto != proto || len(r.Dst) == 0 || len(r.DPort) == 0 {
			continue
		}
		if slices.ContainsFunc(r.Dst, func(p netip.Prefix) bool { return p.Contains(to) }) &&
			slices.ContainsFunc(r.DPort, func(pr PortRange) bool { return pr.Contains(port) }) {
			return true
		}
	}
	return false
}

// ExpandZones replaces the names of zones among names by their interfaces,
// as Parse does, keeping other names; the result is deduplicated, in
// first-seen order. The compiled policy and the generated kernel rules
// expand a hand-built Config (which may still hold zone names) alike
// through it.
func ExpandZones(zones []Zone, names []string) []string {
	var out []string
	for _, n := range names {
		ifs := []string{n}
		name, neg := strings.CutPrefix(n, "!")
		for _, z := range zones {
			if z.Name == name {
				ifs = z.Interfaces
				if neg {
					ifs = nil
					for _, i := range z.Interfaces {
						ifs = append(ifs, "!"+i)
					}
				}
				break
			}
		}
		for _, i := range ifs {
			if !slices.Contains(out, i) {
				out = append(out, i)
			}
		}
	}
	return out
}

// candidates returns, per protocol, the ids of hook h's usable rules that
// can match that protocol, in rule order. Protocols that no rule names share
// the list of protocol-independent rules.
func candidates(rules []CompiledRule, usable []bool, h Hook) [256][]int32 {
	var out [256][]int32
	var anyProto []int32
	named := map[uint8]bool{}
	for id, cr := range rules {
		if cr.Hook != h || !usable[id] {
			continue
		}
		if cr.Src.Proto == 0 {
			anyProto = append(anyProto, int32(id))
		} else {
			named[cr.Src.Proto] = true
		}
	}
	for proto := range 256 {
		if !named[uint8(proto)] {
			out[proto] = anyProto
			continue
		}
		var ids []int32
		for id, cr := range rules {
			if cr.Hook == h && usable[id] && (cr.Src.Proto == 0 || cr.Src.Proto == uint8(proto)) {
				ids = append(ids, int32(id))
			}
		}
		out[proto] = ids
	}
	return out
}

// Destination-port index. A long candidate list of TCP, UDP, SCTP, DCCP
// or UDP-Lite rules is narrowed by the packet's destination port before
// the rules are tried in order: for each port some rule names, the rules
// that name it and the rules that take any port (or a span wider than
// portIndexSpan), in their order; for every other port only the latter.
// With a rule per service, a packet is tried against a handful of rules
// whether the policy has 10 or 1,000.
const (
	portIndexMin   = 16   // shorter candidate lists are scanned as they are
	portIndexSpan  = 256  // a rule naming more ports than this is tried for every port
	portIndexPorts = 4096 // more distinct ports than this: no index
)

// portProtos are the protocols whose packets carry ports.
var portProtos = []uint8{6, 17, 33, 132, 136}

type portIndex struct {
	by   map[uint16][]int32
	rest []int32
}

func (ix *portIndex) lookup(port uint16) []int32 {
	if ids, ok := ix.by[port]; ok {
		return ids
	}
	return ix.rest
}

// newPortIndex indexes cand, or returns nil when an index would not pay.
func newPortIndex(rules []CompiledRule, cand []int32) *portIndex {
	if len(cand) < portIndexMin {
		return nil
	}
	ports := map[uint16]bool{}
	wide := make([]bool, len(cand))
	for i, id := range cand {
		n := 0
		for _, r := range rules[id].Src.DPort {
			n += int(r.Last) - int(r.First) + 1
		}
		if n == 0 || n > portIndexSpan {
			wide[i] = true
			continue
		}
		for _, r := range rules[id].Src.DPort {
			for port := int(r.First); port <= int(r.Last); port++ {
				ports[uint16(port)] = true
			}
		}
		if len(ports) > portIndexPorts {
			return nil
		}
	}
	ix := &portIndex{by: make(map[uint16][]int32, len(ports))}
	for i, id := range cand {
		if wide[i] {
			ix.rest = append(ix.rest, id)
			for port := range ports {
				ix.by[port] = append(ix.by[port], id)
			}
			continue
		}
		for _, r := range rules[id].Src.DPort {
			for port := int(r.First); port <= int(r.Last); port++ {
				l := ix.by[uint16(port)]
				if len(l) == 0 || l[len(l)-1] != id { // overlapping ranges: once
					ix.by[uint16(port)] = append(l, id)
				}
			}
		}
	}
	return ix
}

// matcher is a rule's static match for one address family. Empty sets
// match anything.
type matcher struct {
	sport, dport portSet
	src, dst     addrSet
	in, out      ifaceSet
	icmp         []ICMPMatch
}

// newMatcher compiles r for family fam. usable is false when the rule can
// never match a packet of that family.
func newMatcher(r *Rule, fam Family) (m matcher, usable bool) {
	if r.Family != FamilyAny && r.Family != fam {
		return m, false
	}
	if (r.Proto == protoICMP && fam != FamilyIPv4) || (r.Proto == protoICMPv6 && fam != FamilyIPv6) {
		return m, false
	}
	var ok bool
	if m.src, ok = newAddrSet(r.Src, fam); !ok {
		return m, false
	}
	if m.dst, ok = newAddrSet(r.Dst, fam); !ok {
		return m, false
	}
	m.sport = newPortSet(r.SPort)
	m.dport = newPortSet(r.DPort)
	m.in = newIfaceSet(r.In)
	m.out = newIfaceSet(r.Out)
	m.icmp = r.ICMP
	return m, true
}

func (m *matcher) match(pkt *Packet) bool {
	if !m.dport.contains(pkt.DstPort) || !m.sport.contains(pkt.SrcPort) {
		return false
	}
	if len(m.icmp) > 0 && !matchICMP(m.icmp, pkt.ICMPType, pkt.ICMPCode) {
		return false
	}
	if !m.src.contains(&pkt.Src) || !m.dst.contains(&pkt.Dst) {
		return false
	}
	return m.in.contains(pkt.InIface) && m.out.contains(pkt.OutIface)
}

func matchICMP(ms []ICMPMatch, typ, code uint8) bool {
	for _, m := range ms {
		if m.Type == typ && (m.Code < 0 || m.Code == int16(code)) {
			return true
		}
	}
	return false
}

// Address sets. Addresses are 128-bit numbers (IPv4 in its IPv4-mapped
// form, as in Packet), prefixes are inclusive spans of them.

type u128 struct{ hi, lo uint64 }

func load128(b *[16]byte) u128 {
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func (a u128) next() (u128, bool) {
	if a.lo != ^uint64(0) {
		return u128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return u128{a.hi + 1, 0}, true
	}
	return a, false
}

type span struct{ lo, hi u128 }

func (s span) contains(a u128) bool { return !a.less(s.lo) && !s.hi.less(a) }

func prefixSpan(p netip.Prefix) span {
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	b := p.Addr().As16()
	a := load128(&b)
	var mask u128
	switch {
	case bits >= 128:
		mask = u128{^uint64(0), ^uint64(0)}
	case bits > 64:
		mask = u128{^uint64(0), ^uint64(0) << (128 - bits)}
	case bits == 64:
		mask = u128{^uint64(0), 0}
	case bits > 0:
		mask = u128{^uint64(0) << (64 - bits), 0}
	}
	lo := u128{a.hi & mask.hi, a.lo & mask.lo}
	return span{lo, u128{lo.hi | ^mask.hi, lo.lo | ^mask.lo}}
}

// addrKind is the lookup shape of an address set.
type addrKind uint8

const (
	addrAny    addrKind = iota // no addresses given: anything matches
	addrOne                    // one prefix
	addrLinear                 // a few spans, scanned
	addrHosts                  // many single addresses: a map
	addrSorted                 // many spans, merged and sorted: binary search
)

// maxLinear is the largest set scanned linearly.
const maxLinear = 6

type addrSet struct {
	kind  addrKind
	one   span
	spans []span
	hosts map[[16]byte]struct{}
}

// newAddrSet builds the set of ps's prefixes of family fam. ok is false
// when ps is not empty but has no prefix of that family (nothing matches).
func newAddrSet(ps []netip.Prefix, fam Family) (s addrSet, ok bool) {
	if len(ps) == 0 {
		return addrSet{kind: addrAny}, true
	}
	var spans []span
	allHosts := true
	for _, p := range ps {
		if familyOf(p) != fam {
			continue
		}
		spans = append(spans, prefixSpan(p))
		allHosts = allHosts && p.IsSingleIP()
	}
	if len(spans) == 0 {
		return addrSet{}, false
	}
	if allHosts && len(spans) > maxLinear {
		s = addrSet{kind: addrHosts, hosts: make(map[[16]byte]struct{}, len(spans))}
		for _, sp := range spans {
			var k [16]byte
			binary.BigEndian.PutUint64(k[:8], sp.lo.hi)
			binary.BigEndian.PutUint64(k[8:], sp.lo.lo)
			s.hosts[k] = struct{}{}
		}
		return s, true
	}
	spans = mergeSpans(spans)
	switch {
	case len(spans) == 1:
		return addrSet{kind: addrOne, one: spans[0]}, true
	case len(spans) <= maxLinear:
		return addrSet{kind: addrLinear, spans: spans}, true
	}
	return addrSet{kind: addrSorted, spans: spans}, true
}

// mergeSpans sorts spans and merges overlapping and adjacent ones.
func mergeSpans(spans []span) []span {
	slices.SortFunc(spans, func(a, b span) int {
		switch {
		case a.lo.less(b.lo):
			return -1
		case b.lo.less(a.lo):
			return 1
		}
		return 0
	})
	out := spans[:1]
	for _, s := range spans[1:] {
		last := &out[len(out)-1]
		next, ok := last.hi.next()
		if !ok || !next.less(s.lo) { // overlaps or touches
			if last.hi.less(s.hi) {
				last.hi = s.hi
			}
			continue
		}
		out = append(out, s)
	}
	return slices.Clip(out)
}

func (s *addrSet) contains(b *[16]byte) bool {
	switch s.kind {
	case addrAny:
		return true
	case addrOne:
		return s.one.contains(load128(b))
	case addrLinear:
		a := load128(b)
		for _, sp := range s.spans {
			if sp.contains(a) {
				return true
			}
		}
		return false
	case addrHosts:
		_, ok := s.hosts[*b]
		return ok
	}
	a := load128(b)
	// First span whose hi >= a; it holds a if its lo <= a.
	lo, hi := 0, len(s.spans)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s.spans[mid].hi.less(a) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo < len(s.spans) && !a.less(s.spans[lo].lo)
}

// portKind is the lookup shape of a port set.
type portKind uint8

const (
	portAny    portKind = iota // no ports given
	portOne                    // one port or range
	portList                   // a few ranges, scanned
	portBitmap                 // many: one bit per port
)

const maxPortList = 8

type portSet struct {
	kind   portKind
	one    PortRange
	list   []PortRange
	bitmap *[65536 / 64]uint64
}

func newPortSet(rs []PortRange) portSet {
	if len(rs) == 0 {
		return portSet{kind: portAny}
	}
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b PortRange) int { return int(a.First) - int(b.First) })
	merged := rs[:1]
	for _, r := range rs[1:] {
		last := &merged[len(merged)-1]
		if int(r.First) <= int(last.Last)+1 {
			last.Last = max(last.Last, r.Last)
			continue
		}
		merged = append(merged, r)
	}
	switch {
	case len(merged) == 1:
		return portSet{kind: portOne, one: merged[0]}
	case len(merged) <= maxPortList:
		return portSet{kind: portList, list: slices.Clip(merged)}
	}
	bm := new([65536 / 64]uint64)
	for _, r := range merged {
		for p := int(r.First); p <= int(r.Last); p++ {
			bm[p>>6] |= 1 << (p & 63)
		}
	}
	return portSet{kind: portBitmap, bitmap: bm}
}

func (s *portSet) contains(port uint16) bool {
	switch s.kind {
	case portAny:
		return true
	case portOne:
		return port >= s.one.First && port <= s.one.Last
	case portList:
		for _, r := range s.list {
			if port >= r.First && port <= r.Last {
				return true
			}
		}
		return false
	}
	return s.bitmap[port>>6]&(1<<(port&63)) != 0
}

// ifaceSet matches interface names; a name ending in "+" matches every
// name with that prefix (iptables' wildcard), a name starting with "!" is
// negated. A name matches when it is none of the negated names and, if the
// set has names that are not negated, one of those. Empty matches
// anything, including an unknown ("") interface; otherwise an unknown
// interface matches nothing.
type ifaceSet struct {
	names []ifName
	pos   bool // some names are not negated
}

type ifName struct {
	name   string
	prefix bool
	neg    bool
}

func newIfaceSet(names []string) ifaceSet {
	var s ifaceSet
	for _, n := range names {
		var in ifName
		n, in.neg = strings.CutPrefix(n, "!")
		in.name, in.prefix = strings.CutSuffix(n, "+")
		s.pos = s.pos || !in.neg
		s.names = append(s.names, in)
	}
	return s
}

func (s *ifaceSet) contains(name string) bool {
	if len(s.names) == 0 {
		return true
	}
	if name == "" {
		return false
	}
	hit := false
	for _, n := range s.names {
		if n.name == name || (n.prefix && strings.HasPrefix(name, n.name)) {
			if n.neg {
				return false
			}
			hit = true
		}
	}
	return hit || !s.pos
}

// canonicalHash hashes the JSON form of c without what does not change the
// firewall's behaviour (the file name and rule line numbers).
func canonicalHash(c *Config) (string, error) {
	cc := *c
	cc.File = ""
	for _, ch := range []*Chain{&cc.Input, &cc.Forward, &cc.Output} {
		ch.Rules = slices.Clone(ch.Rules)
		for i := range ch.Rules {
			ch.Rules[i].Line = 0
		}
	}
	b, err := json.Marshal(&cc)
	if err != nil {
		return "", fmt.Errorf("compile: hash config: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

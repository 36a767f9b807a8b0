package rules

// Policy is the compiled, immutable form of a Config: per hook and address
// family, rule lists with lookup shapes chosen at load time. It is immutable
// after Compile and safe for concurrent use; a reload compiles a new Policy
// and swaps it in.
type Policy struct {
	cfg    *Config
	hash   string
	rules  []CompiledRule
	chains [NumHooks]ChainPolicy

	// match[f][id] is rule id's static match for family index f (0 IPv4,
	// 1 IPv6). Entries of rules that cannot match family f are unused.
	match [2][]matcher
	// cand[h][f][proto] lists, in order, the ids of the rules of hook h
	// that can match a packet of family f and protocol proto.
	cand [NumHooks][2][256][]int32
	// ports[h][f][proto], when not nil, narrows cand[h][f][proto] by the
	// packet's destination port (see portIndex).
	ports [NumHooks][2][256]*portIndex
}

// CompiledRule is one rule of a Policy. Its index in Policy.Rules is the
// rule id that Eval returns and that Verdict.Rule carries.
type CompiledRule struct {
	Name       string
	Hook       Hook
	Action     Action     // accept, drop or reject
	RejectWith RejectKind // valid when Action is ActionReject
	Log        *LogSpec   // nil: no log line
	HasState   bool       // the rule has a recent, guard or knock condition: Eval consults Stateful
	Src        *Rule      // the config rule (read only)
}

// ChainPolicy is what happens to a packet that no rule of a hook matched.
type ChainPolicy struct {
	Action     Action     // accept, drop or reject
	RejectWith RejectKind // valid when Action is ActionReject
	Log        *LogSpec   // nil: no log line
}

// Stateful is implemented by the engine (recent lists, guards, knock
// windows). Eval calls Allow only for rules whose HasState is true, after
// their static match succeeded, in rule order; Allow may update state (a
// recent list's set or update). It must not allocate.
type Stateful interface {
	Allow(rule int, pkt *Packet) bool
}

// Config returns the configuration the policy was compiled from. It must
// not be modified.
func (p *Policy) Config() *Config { return p.cfg }

// Hash returns the hex SHA-256 of the canonical form of the configuration
// (independent of comments, formatting and the file name), for the reload
// metric and to tell whether a reload changed anything.
func (p *Policy) Hash() string { return p.hash }

// Rules returns the compiled rules: input, forward and output rules in file
// order. The index is the rule id used by Eval and Verdict.Rule. The slice
// is shared and must not be modified.
func (p *Policy) Rules() []CompiledRule { return p.rules }

// Chain returns the default policy of hook h.
func (p *Policy) Chain(h Hook) ChainPolicy {
	if h >= NumHooks {
		return ChainPolicy{Action: ActionDrop}
	}
	return p.chains[h]
}

// Eval returns the index of the first rule of pkt.Hook that matches pkt
// (static match and, for rules with stateful conditions, st.Allow returning
// true), or -1 when none matches (the chain policy applies). With a nil st,
// rules with stateful conditions never match. Eval does not allocate.
func (p *Policy) Eval(pkt *Packet, st Stateful) int {
	if pkt.Hook >= NumHooks {
		return -1
	}
	var f int
	switch pkt.Family {
	case FamilyIPv4:
		f = 0
	case FamilyIPv6:
		f = 1
	default:
		return -1
	}
	ms := p.match[f]
	ids := p.cand[pkt.Hook][f][pkt.Proto]
	if ix := p.ports[pkt.Hook][f][pkt.Proto]; ix != nil {
		ids = ix.lookup(pkt.DstPort)
	}
	for _, id := range ids {
		if !ms[id].match(pkt) {
			continue
		}
		if p.rules[id].HasState && (st == nil || !st.Allow(int(id), pkt)) {
			continue
		}
		return int(id)
	}
	return -1
}

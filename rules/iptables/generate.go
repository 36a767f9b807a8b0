package iptables

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nfqfw/nfqfw/rules"
)

// ChainPrefix starts the name of every chain nfqfw owns. Removal treats any
// chain with this prefix, and any rule jumping to one, as nfqfw's.
const ChainPrefix = "NFQFW-"

// Chain names.
const (
	ChainInput       = ChainPrefix + "INPUT"       // filter, hooked first in INPUT
	ChainForward     = ChainPrefix + "FORWARD"     // filter, hooked first in FORWARD
	ChainOutput      = ChainPrefix + "OUTPUT"      // filter, hooked first in OUTPUT
	ChainReject      = ChainPrefix + "REJECT"      // filter, answers packets the engine marked for reject
	ChainPrerouting  = ChainPrefix + "PREROUTING"  // nat, port forwards (DNAT); raw, the reverse path filter
	ChainPostrouting = ChainPrefix + "POSTROUTING" // nat, masquerade and SNAT
)

// Ban set names. The sets hold banned prefixes (a single address being a
// /32 or /128); another component creates them (ipset create
// nfqfw-bannet4 hash:net family inet ...) and fills them. The INPUT and
// FORWARD chains always match on them, and iptables-restore fails if they
// do not exist: create them before Install.
const (
	BanSet4 = "nfqfw-bannet4"
	BanSet6 = "nfqfw-bannet6"
)

// Legacy ban set names: the hash:ip sets of versions whose bans were single
// addresses. The daemon adopts their entries and destroys them at start,
// once the ruleset that matched them is replaced.
const (
	LegacyBanSet4 = "nfqfw-ban4"
	LegacyBanSet6 = "nfqfw-ban6"
)

// LegacyBanSet returns the name of the legacy ban set of family fam.
func LegacyBanSet(fam rules.Family) string {
	if fam == rules.FamilyIPv6 {
		return LegacyBanSet6
	}
	return LegacyBanSet4
}

// BanSet returns the name of the ban set of family fam.
func BanSet(fam rules.Family) string {
	if fam == rules.FamilyIPv6 {
		return BanSet6
	}
	return BanSet4
}

// BanSetOf returns the name of the ban set of addr's family (an
// IPv4-mapped IPv6 address is IPv4).
func BanSetOf(addr netip.Addr) string {
	if addr.Unmap().Is4() {
		return BanSet4
	}
	return BanSet6
}

// ndTypes are the ICMPv6 neighbour discovery and router types accepted with
// hop limit 255 regardless of conntrack state: router solicitation and
// advertisement, neighbour solicitation and advertisement, redirect.
var ndTypes = []int{133, 134, 135, 136, 137}

// table is one table's share of a restore transaction. Lines are rendered
// in field order: removal first, then chain declarations, rules and hooks.
type table struct {
	name    string
	removal []string // -D of jump rules, then -F and -X of chains (Removal)
	chains  []string // chains to declare (create, or flush if present)
	rules   []string // -A lines
	hooks   []string // -I lines into built-in chains
}

func (t *table) empty() bool {
	return len(t.removal)+len(t.chains)+len(t.rules)+len(t.hooks) == 0
}

// ruleset is an ordered list of tables. Filter comes first: iptables-restore
// commits table by table, so the table most likely to be refused (it names
// ban sets and REJECT targets) is tried before anything else is committed.
type ruleset struct {
	tables []*table
}

// tableOrder is the order tables are written in.
var tableOrder = []string{"filter", "nat", "mangle", "raw"}

func (r *ruleset) table(name string) *table {
	for _, t := range r.tables {
		if t.name == name {
			return t
		}
	}
	t := &table{name: name}
	r.tables = append(r.tables, t)
	slices.SortStableFunc(r.tables, func(a, b *table) int {
		return tableRank(a.name) - tableRank(b.name)
	})
	return t
}

func tableRank(name string) int {
	if i := slices.Index(tableOrder, name); i >= 0 {
		return i
	}
	return len(tableOrder)
}

// merge appends o's lines to r, table by table.
func (r *ruleset) merge(o *ruleset) {
	for _, ot := range o.tables {
		t := r.table(ot.name)
		t.removal = append(t.removal, ot.removal...)
		t.chains = append(t.chains, ot.chains...)
		t.rules = append(t.rules, ot.rules...)
		t.hooks = append(t.hooks, ot.hooks...)
	}
}

// String renders r as iptables-restore input for --noflush.
func (r *ruleset) String() string {
	var b strings.Builder
	for _, t := range r.tables {
		if t.empty() {
			continue
		}
		b.WriteString("*" + t.name + "\n")
		for _, l := range t.removal {
			b.WriteString(l + "\n")
		}
		for _, c := range t.chains {
			b.WriteString(":" + c + " - [0:0]\n")
		}
		for _, l := range t.rules {
			b.WriteString(l + "\n")
		}
		for _, l := range t.hooks {
			b.WriteString(l + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// Generate returns the iptables-restore input (for --noflush) that creates
// nfqfw's chains for family fam from c and hooks them first into the
// built-in chains. It assumes none of nfqfw's chains exist; Reinstall
// prepends the removal of the ones that do.
//
// When fam is IPv6 and c.IPv6 is false, Generate returns "" (nothing to
// install). The output is deterministic: the same config gives the same
// text, byte for byte.
func Generate(c *rules.Config, fam rules.Family) (string, error) {
	r, err := generate(c, fam)
	if err != nil {
		return "", err
	}
	return r.String(), nil
}

// Reinstall returns one iptables-restore transaction (for --noflush) that
// removes every nfqfw chain and jump found in saved (the output of
// iptables-save or ip6tables-save for family fam) and installs the ruleset
// Generate returns for c. With c nil it only removes. Each table is swapped
// atomically: a packet sees the old chains or the new ones, never neither.
func Reinstall(saved string, c *rules.Config, fam rules.Family) (string, error) {
	r, err := removal(saved)
	if err != nil {
		return "", err
	}
	if c != nil {
		g, err := generate(c, fam)
		if err != nil {
			return "", err
		}
		r.merge(g)
	}
	return r.String(), nil
}

// Removal returns the iptables-restore input (for --noflush) that deletes
// every rule jumping to an nfqfw chain and then flushes and deletes every
// nfqfw chain found in saved, the output of iptables-save. Everything else
// in the tables is left as found. It returns "" when saved holds nothing of
// nfqfw's.
func Removal(saved string) (string, error) {
	r, err := removal(saved)
	if err != nil {
		return "", err
	}
	return r.String(), nil
}

func generate(c *rules.Config, fam rules.Family) (*ruleset, error) {
	if fam != rules.FamilyIPv4 && fam != rules.FamilyIPv6 {
		return nil, fmt.Errorf("generate ruleset for family %d: %w", fam, ErrFamily)
	}
	if c == nil {
		return nil, fmt.Errorf("generate ruleset: nil config: %w", ErrConfig)
	}
	r := &ruleset{}
	if fam == rules.FamilyIPv6 && !c.IPv6 {
		return r, nil
	}
	g := gen{c: c, fam: fam}
	if err := g.filter(r.table("filter")); err != nil {
		return nil, err
	}
	if err := g.nat(r.table("nat")); err != nil {
		return nil, err
	}
	if c.RPFilter {
		g.rpfilter(r.table("raw"))
	}
	if c.FTP.Enabled {
		g.ftpNAT(r.table("raw"))
	}
	if c.Flows.KernelEvents == rules.KernelEventsMinimal {
		g.kernelEvents(r.table("raw"))
	}
	return r, nil
}

// kernelEvents (flows.kernel_events minimal) asks conntrack to report only
// the events the engine follows (a flow saw its first reply, became
// assured, was destroyed) for new TCP flows, through a CT template set in
// the raw table on the SYN before conntrack creates the flow: 3 events per
// short TCP connection closed with FIN instead of 7, where the kernel
// reports every state change (TestKernelEventsMinimal). The kernel gives
// the template its mask only if a conntrack listener exists when the rule
// is made: the daemon's follower listens before the ruleset is installed. Other protocols have no state changes to leave out, so nothing
// else takes the template. Every packet crosses the one rule: established
// TCP and other protocols fail its native header matches (the comment
// comes after them), and only a SYN pays for the template. An operator's
// own CT rules come after nfqfw's hook and so take precedence.
func (g gen) kernelEvents(t *table) {
	const target = "-j CT --ctevents destroy,reply,assured"
	if !slices.Contains(t.chains, ChainPrerouting) {
		t.chains = append(t.chains, ChainPrerouting)
		t.hooks = append(t.hooks, hook("PREROUTING", ChainPrerouting))
	}
	for _, chain := range []string{ChainPrerouting, ChainOutput} {
		t.rules = append(t.rules, rule("-A "+chain+" -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN", "conntrack events the engine follows", target))
	}
	t.chains = append(t.chains, ChainOutput)
	t.hooks = append(t.hooks, hook("OUTPUT", ChainOutput))
}

// ftpNAT attaches the kernel's FTP helper to the IPv4 control connections
// from the sources that MASQUERADE or SNAT rewrite: nf_nat_ftp then
// rewrites the client's private address in PORT and EPRT (adjusting the
// sequence numbers that follow) and expects the server's data connection
// on the rewritten address, which arrives RELATED and takes the fast path.
// nfqfw's own helper still reads the control connection and decides every
// other data connection; the kernel helper refuses an announced address
// other than the client's own (no bounce), as nfqfw's does. The CT rule
// comes before the kernel-events template, which then does not apply to
// these flows (their events are all reported).
func (g gen) ftpNAT(t *table) {
	if g.fam != rules.FamilyIPv4 {
		return
	}
	var srcs []netip.Prefix
	for _, m := range g.c.NAT.Masquerade {
		srcs = append(srcs, m.Src...)
		if len(m.Src) == 0 {
			srcs = append(srcs, netip.Prefix{}) // every source
		}
	}
	for _, s := range g.c.NAT.SNAT {
		if g.is(s.To) {
			srcs = append(srcs, s.Src...)
		}
	}
	var heads []string
	for _, p := range srcs {
		h := ""
		if p.IsValid() {
			if !g.is(p.Addr()) {
				continue
			}
			h = " -s " + p.Masked().String()
		}
		if !slices.Contains(heads, h) {
			heads = append(heads, h)
		}
	}
	if len(heads) == 0 {
		return
	}
	if !slices.Contains(t.chains, ChainPrerouting) {
		t.chains = append(t.chains, ChainPrerouting)
		t.hooks = append(t.hooks, hook("PREROUTING", ChainPrerouting))
	}
	for _, h := range heads {
		for _, sp := range g.ftpSpans() {
			t.rules = append(t.rules, rule("-A "+ChainPrerouting+h+" -p tcp", "kernel ftp helper for nat",
				"-m tcp --dport "+portSpan(sp[0], sp[1], ":"), "-j CT --helper ftp"))
		}
	}
}

// gen generates one family's ruleset from one config.
type gen struct {
	c   *rules.Config
	fam rules.Family
}

// hookSpec describes one filter hook.
type hookSpec struct {
	hook    rules.Hook
	builtin string
	chain   string
	cfg     *rules.Chain
}

func (g gen) hooks() []hookSpec {
	return []hookSpec{
		{rules.HookInput, "INPUT", ChainInput, &g.c.Input},
		{rules.HookForward, "FORWARD", ChainForward, &g.c.Forward},
		{rules.HookOutput, "OUTPUT", ChainOutput, &g.c.Output},
	}
}

func (g gen) filter(t *table) error {
	var rejectUsed bool
	for _, h := range g.hooks() {
		if g.queues(h) {
			rejectUsed = true
		}
	}
	bits := g.c.Queue.MarkBits()
	if rejectUsed && bits == 0 {
		return fmt.Errorf("generate %s ruleset: mark mask %#x: %w", g.famName(), g.c.Queue.MarkMask, ErrMarkMask)
	}
	for _, h := range g.hooks() {
		t.chains = append(t.chains, h.chain)
	}
	if rejectUsed {
		t.chains = append(t.chains, ChainReject)
	}
	for _, h := range g.hooks() {
		if err := g.chain(t, h); err != nil {
			return err
		}
		t.hooks = append(t.hooks, hook(h.builtin, h.chain))
	}
	if rejectUsed {
		g.rejectChain(t, bits)
	}
	return nil
}

// queues reports whether NEW packets of hook h go to the engine. A chain
// with no rules for this family, no policy log, and no userspace helper that
// could admit its flows (FTP data connections, port forwards) is decided in
// the kernel: its NEW packets get the chain policy directly.
func (g gen) queues(h hookSpec) bool {
	if h.cfg.Log != nil {
		return true
	}
	for i := range h.cfg.Rules {
		if g.applies(&h.cfg.Rules[i]) {
			return true
		}
	}
	// With the FTP helper on, every chain queues NEW flows: the engine must
	// track a control connection from its SYN to follow it (an FTP client
	// on this host is an OUTPUT flow), and the data connections it expects
	// must reach it whatever the policy.
	if g.c.FTP.Enabled {
		return true
	}
	if g.policy(h) == rules.ActionAccept {
		return false
	}
	return h.hook == rules.HookForward && g.forwards()
}

// forwards reports whether a port forward targets this family.
func (g gen) forwards() bool {
	for _, f := range g.c.NAT.Forwards {
		if g.is(f.To) {
			return true
		}
	}
	return false
}

// applies reports whether rule ru can match a packet of this family.
func (g gen) applies(ru *rules.Rule) bool {
	if ru.Family != rules.FamilyAny && ru.Family != g.fam {
		return false
	}
	switch ru.Proto {
	case 1:
		if g.fam != rules.FamilyIPv4 {
			return false
		}
	case 58:
		if g.fam != rules.FamilyIPv6 {
			return false
		}
	}
	return g.anyOf(ru.Src) && g.anyOf(ru.Dst)
}

// anyOf reports whether ps is empty (any address) or holds a prefix of this
// family.
func (g gen) anyOf(ps []netip.Prefix) bool {
	return len(ps) == 0 || len(g.prefixes(ps)) > 0
}

// prefixes returns the prefixes of this family in ps, masked.
func (g gen) prefixes(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		if g.is(p.Addr()) {
			out = append(out, p.Masked().String())
		}
	}
	return out
}

func (g gen) is(a netip.Addr) bool {
	a = a.Unmap()
	if g.fam == rules.FamilyIPv6 {
		return a.Is6()
	}
	return a.Is4()
}

func (g gen) famName() string {
	if g.fam == rules.FamilyIPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// policy returns the chain policy of h, defaulted as validation does:
// input and forward drop, output accept.
func (g gen) policy(h hookSpec) rules.Action {
	if h.cfg.Policy != rules.ActionNone {
		return h.cfg.Policy
	}
	if h.hook == rules.HookOutput {
		return rules.ActionAccept
	}
	return rules.ActionDrop
}

func (g gen) chain(t *table, h hookSpec) error {
	name := strings.ToLower(h.builtin)
	add := func(header, comment string, rest ...string) {
		t.rules = append(t.rules, rule("-A "+h.chain+header, comment, rest...))
	}

	// a. The fast path comes first: every established packet crosses the
	// rules up to it, so nothing is in front of it, and it is one match
	// without a comment (iptables-nft runs xt_conntrack and xt_comment
	// through nft_compat, so each match costs every packet that reaches
	// it). Accepting an established packet before the trusted interfaces
	// and the allowlist changes no verdict: they accept it too. With the
	// FTP helper, flows whose server port (the reply's source port, the
	// real port after DNAT) lies in the span of the control ports are left
	// to the rules below, which queue the control connections.
	// With related: policy only ESTABLISHED takes it; RELATED packets go
	// on to the chain's policy.
	q := g.queueTarget()
	ftp := g.ftpSpans()
	fast := "-m conntrack --ctstate RELATED,ESTABLISHED"
	if h.cfg.RelatedPolicy {
		fast = "-m conntrack --ctstate ESTABLISHED"
	}
	if len(ftp) == 0 {
		add("", "", fast, "-j ACCEPT")
	} else {
		all := portSpan(ftp[0][0], ftp[len(ftp)-1][1], ":")
		add("", "", fast+" ! --ctreplsrcport "+all, "-j ACCEPT")
	}

	// b. Neighbour discovery: link-local control traffic that conntrack
	// does not track as a flow of its own; hop limit 255 proves it was
	// not forwarded.
	if g.fam == rules.FamilyIPv6 && h.hook != rules.HookForward {
		for _, typ := range ndTypes {
			add(" -p ipv6-icmp", "neighbour discovery",
				"-m icmp6 --icmpv6-type "+strconv.Itoa(typ), "-m hl --hl-eq 255", "-j ACCEPT")
		}
	}

	// c. Trusted interfaces.
	dir := "-i"
	if h.hook == rules.HookOutput {
		dir = "-o"
	}
	for _, ifc := range rules.ExpandZones(g.c.Zones, g.c.Trusted) {
		add(ifMatch(dir, ifc), "trusted interface", "-j ACCEPT")
	}

	// c2. The management allowlist: accepted in the kernel before anything
	// else can refuse it, so that no rule, ban, guard or a stopped daemon
	// locks the operator out.
	if h.hook == rules.HookInput {
		for _, p := range g.prefixes(g.c.Allowlist) {
			add(" -s "+p, "management allowlist", "-j ACCEPT")
		}
	}

	// d. FTP control connections go to the userspace helper, then the rest
	// of the established flows the fast path left here is accepted.
	if len(ftp) > 0 {
		for _, sp := range ftp {
			add(" -p tcp", "ftp control to the helper", "-m conntrack --ctstate ESTABLISHED --ctreplsrcport "+portSpan(sp[0], sp[1], ":"), q)
		}
		add("", "established fast path", fast, "-j ACCEPT")
	}

	// e0. The kernel's answers to INVALID packets a chain rejects (a reset,
	// an ICMP unreachable) belong to no flow: conntrack calls them INVALID
	// too when they leave through OUTPUT, where they must not be dropped.
	if h.hook == rules.HookOutput && g.rejectsInvalid() && h.cfg.Invalid != rules.ActionAccept {
		if g.fam == rules.FamilyIPv6 {
			add(" -p ipv6-icmp", "answers to invalid packets", "-m icmp6 --icmpv6-type 1", "-m conntrack --ctstate INVALID", "-j ACCEPT")
		} else {
			add(" -p icmp", "answers to invalid packets", "-m icmp --icmp-type 3", "-m conntrack --ctstate INVALID", "-j ACCEPT")
		}
		add(" -p tcp", "answers to invalid packets", "-m tcp --tcp-flags RST RST", "-m conntrack --ctstate INVALID", "-j ACCEPT")
	}

	// e. Invalid packets. A reject without a kind answers TCP with a reset
	// and the rest with port unreachable, as the guides' catch-all REJECT
	// rules answer the INVALID packets they reach.
	inv := h.cfg.Invalid
	if inv == rules.ActionNone {
		inv = rules.ActionDrop
	}
	for _, tg := range g.targets(inv, h.cfg.InvalidRejectWith) {
		add(tg.header, "invalid state", "-m conntrack --ctstate INVALID", tg.target)
	}

	// f. Banned sources: dropped before the engine or the kernel policy
	// sees them, whether or not a guard is configured (a ban may come
	// from the CLI).
	if h.hook != rules.HookOutput {
		add("", "banned source", "-m set --match-set "+BanSet(g.fam)+" src", "-j DROP")
	}

	pol := g.policy(h)
	if g.queues(h) {
		// g. Packets the engine repeated with a reject mark.
		bits := g.c.Queue.MarkBits()
		add("", "reject marked by the engine", fmt.Sprintf("-m mark ! --mark 0x0/%#x", bits), "-j "+ChainReject)
		// h. New flows to the engine.
		add("", "new flows to the engine", "-m conntrack --ctstate NEW", q)
		// i. What is left (untracked) gets the policy.
		for _, tg := range g.targets(pol, h.cfg.RejectWith) {
			add(tg.header, name+" policy "+pol.String(), tg.target)
		}
		return nil
	}
	// Nothing for the engine to decide: the policy applies in the kernel.
	for _, tg := range g.targets(pol, h.cfg.RejectWith) {
		add(tg.header, name+" policy "+pol.String()+" in the kernel", tg.target)
	}
	return nil
}

// rejectsInvalid reports whether a chain answers INVALID packets with a
// reject, in the kernel or (with flows.tcp_pickup drop, for segments
// without SYN) through the engine.
func (g gen) rejectsInvalid() bool {
	for _, h := range g.hooks() {
		if h.cfg.Invalid == rules.ActionReject {
			return true
		}
	}
	return false
}

// ftpSpans returns the FTP control ports as sorted runs of consecutive
// ports, [first, last] each, or nil when the helper is off. Each run is one
// conntrack port range match.
func (g gen) ftpSpans() [][2]uint16 {
	if !g.c.FTP.Enabled {
		return nil
	}
	ports := slices.Clone(g.c.FTP.Ports)
	if len(ports) == 0 {
		ports = []uint16{21}
	}
	slices.Sort(ports)
	ports = slices.Compact(ports)
	var spans [][2]uint16
	for _, p := range ports {
		if n := len(spans); n > 0 && spans[n-1][1]+1 == p {
			spans[n-1][1] = p
			continue
		}
		spans = append(spans, [2]uint16{p, p})
	}
	return spans
}

// queueTarget returns the NFQUEUE target with the configured options.
func (g gen) queueTarget() string {
	q := g.c.Queue
	var s string
	if q.Count > 1 {
		s = fmt.Sprintf("-j NFQUEUE --queue-balance %d:%d", q.Number, int(q.Number)+int(q.Count)-1)
	} else {
		s = fmt.Sprintf("-j NFQUEUE --queue-num %d", q.Number)
	}
	if q.Bypass {
		s += " --queue-bypass"
	}
	return s
}

// target is a verdict as one rule's header addition and target.
type target struct {
	header string // " -p tcp" when the target only suits TCP
	target string
}

// targets returns the rules that apply action a in the kernel. A reject
// becomes a REJECT with k mapped to this family; tcp-reset (or no kind, the
// protocol default) needs a TCP-only rule followed by a port-unreachable one
// for the other protocols.
func (g gen) targets(a rules.Action, k rules.RejectKind) []target {
	switch a {
	case rules.ActionAccept:
		return []target{{target: "-j ACCEPT"}}
	case rules.ActionReject:
		if k == rules.RejectTCPReset || k == rules.RejectNone {
			return []target{
				{header: " -p tcp", target: "-j REJECT --reject-with tcp-reset"},
				{target: "-j REJECT --reject-with " + g.rejectWith(rules.RejectICMPPortUnreachable)},
			}
		}
		return []target{{target: "-j REJECT --reject-with " + g.rejectWith(k)}}
	}
	return []target{{target: "-j DROP"}}
}

// rejectWith maps a reject kind to the --reject-with name of this family.
// ip6tables has no protocol-unreachable: it is answered with
// icmp6-adm-prohibited. icmp-host-unreachable becomes icmp6-addr-unreachable.
// The ICMPv6 kinds map back to their ICMP counterparts in IPv4.
func (g gen) rejectWith(k rules.RejectKind) string {
	if g.fam == rules.FamilyIPv6 {
		switch k {
		case rules.RejectTCPReset:
			return "tcp-reset"
		case rules.RejectICMPPortUnreachable, rules.RejectICMP6PortUnreachable:
			return "icmp6-port-unreachable"
		case rules.RejectICMPHostUnreachable:
			return "icmp6-addr-unreachable"
		}
		return "icmp6-adm-prohibited"
	}
	switch k {
	case rules.RejectTCPReset:
		return "tcp-reset"
	case rules.RejectICMPProtoUnreachable:
		return "icmp-proto-unreachable"
	case rules.RejectICMPHostUnreachable:
		return "icmp-host-unreachable"
	case rules.RejectICMP6AdmProhibited:
		return "icmp-admin-prohibited"
	}
	return "icmp-port-unreachable"
}

// rejectChain fills NFQFW-REJECT: one REJECT per kind, matched on the mark
// the engine set when it answered NF_REPEAT. A packet whose mark names no
// kind returns to the calling chain.
func (g gen) rejectChain(t *table, bits uint32) {
	q := g.c.Queue
	for k := rules.RejectNone + 1; k < rules.NumRejectKinds; k++ {
		mark := fmt.Sprintf("-m mark --mark %#x/%#x", q.RejectMark(k), bits)
		for _, tg := range g.targets(rules.ActionReject, k) {
			t.rules = append(t.rules, rule("-A "+ChainReject+tg.header, "reject "+k.String(), mark, tg.target))
		}
	}
}

// nat fills the nat table: port forwards in NFQFW-PREROUTING, masquerade
// and SNAT in NFQFW-POSTROUTING. A chain and its hook exist only when the
// family has rules for it.
func (g gen) nat(t *table) error {
	var pre, post []string
	for i, f := range g.c.NAT.Forwards {
		if !g.is(f.To) {
			continue
		}
		lines, err := g.forward(i, f)
		if err != nil {
			return err
		}
		pre = append(pre, lines...)
	}
	for _, m := range g.c.NAT.Masquerade {
		for _, hd := range g.sourceOut(m.Src, m.Out) {
			post = append(post, rule("-A "+ChainPostrouting+hd, "masquerade", "-j MASQUERADE"))
		}
	}
	for _, s := range g.c.NAT.SNAT {
		if !g.is(s.To) {
			continue
		}
		for _, hd := range g.sourceOut(s.Src, s.Out) {
			post = append(post, rule("-A "+ChainPostrouting+hd, "snat", "-j SNAT --to-source "+s.To.Unmap().String()))
		}
	}
	if len(pre) > 0 {
		t.chains = append(t.chains, ChainPrerouting)
		t.rules = append(t.rules, pre...)
		t.hooks = append(t.hooks, hook("PREROUTING", ChainPrerouting))
	}
	if len(post) > 0 {
		t.chains = append(t.chains, ChainPostrouting)
		t.rules = append(t.rules, post...)
		t.hooks = append(t.hooks, hook("POSTROUTING", ChainPostrouting))
	}
	return nil
}

// rpfilterExempt are the ICMPv6 types the reverse path filter lets
// through: a neighbour solicitation during duplicate address detection
// comes from the unspecified address, and a router advertisement is what
// makes the route back exist in the first place.
var rpfilterExempt = []int{134, 135}

// rpfilter fills the raw table's NFQFW-PREROUTING with the reverse path
// filter: a packet whose source would not be routed back out of the
// interface it came in on is dropped before conntrack sees it, so a spoofed
// source neither reaches the engine nor creates a kernel flow. Loopback and
// the unspecified IPv4 source of DHCP are judged by the kernel match itself.
func (g gen) rpfilter(t *table) {
	t.chains = append(t.chains, ChainPrerouting)
	if g.fam == rules.FamilyIPv6 {
		for _, typ := range rpfilterExempt {
			t.rules = append(t.rules, rule("-A "+ChainPrerouting+" -p ipv6-icmp", "rpfilter exempts neighbour discovery",
				"-m icmp6 --icmpv6-type "+strconv.Itoa(typ), "-j RETURN"))
		}
	}
	t.rules = append(t.rules, rule("-A "+ChainPrerouting, "rpfilter spoofed source", "-m rpfilter --invert", "-j DROP"))
	t.hooks = append(t.hooks, hook("PREROUTING", ChainPrerouting))
}

// sourceOut returns the headers "-s SRC -o IF" for every source of this
// family and every interface. Without sources, masquerade and SNAT apply to
// IPv4 only: NAT66 is only generated when IPv6 sources are named.
func (g gen) sourceOut(src []netip.Prefix, out []string) []string {
	srcs := g.prefixes(src)
	if len(src) == 0 {
		if g.fam == rules.FamilyIPv6 {
			return nil
		}
		srcs = []string{""}
	}
	return g.headers(srcs, "-o", out)
}

// headers returns the rule headers " -s SRC FLAG IF" (FLAG -i or -o) for
// every source of srcs and every interface of the zones and names of ifs:
// a source "" and an empty ifs leave that match out.
func (g gen) headers(srcs []string, flag string, ifs []string) []string {
	names := rules.ExpandZones(g.c.Zones, ifs)
	if len(names) == 0 {
		names = []string{""}
	}
	var hs []string
	for _, s := range srcs {
		for _, i := range names {
			h := ""
			if s != "" {
				h += " -s " + s
			}
			if i != "" {
				h += ifMatch(flag, i)
			}
			hs = append(hs, h)
		}
	}
	return hs
}

// forward returns the DNAT rules of port forward f. They match only
// packets addressed to the gateway itself (addrtype LOCAL): traffic that
// merely passes through toward another host on the forwarded port is
// routed, not hijacked to the forward's target.
func (g gen) forward(i int, f rules.PortForward) ([]string, error) {
	proto := protoName(f.Proto)
	if f.Proto != 6 && f.Proto != 17 && f.Proto != 132 {
		return nil, fmt.Errorf("generate port forward %d (%s): protocol %d has no ports: %w", i+1, f.Name, f.Proto, ErrConfig)
	}
	if f.Port.First == 0 || f.Port.Last < f.Port.First {
		return nil, fmt.Errorf("generate port forward %d (%s): port range %d:%d: %w", i+1, f.Name, f.Port.First, f.Port.Last, ErrConfig)
	}
	to := f.To.Unmap().String()
	if f.ToPort != 0 {
		last := int(f.ToPort) + int(f.Port.Last) - int(f.Port.First)
		if last > 65535 {
			return nil, fmt.Errorf("generate port forward %d (%s): target ports %d:%d: %w", i+1, f.Name, f.ToPort, last, ErrConfig)
		}
		if g.fam == rules.FamilyIPv6 {
			to = "[" + to + "]"
		}
		to += ":" + portSpan(f.ToPort, uint16(last), "-")
	}
	srcs := g.prefixes(f.Src)
	if len(f.Src) == 0 {
		srcs = []string{""}
	}
	comment := "port forward"
	if n := sanitize(f.Name); n != "" {
		comment += " " + n
	}
	var out []string
	for _, h := range g.headers(srcs, "-i", f.In) {
		out = append(out, rule("-A "+ChainPrerouting+h+" -p "+proto, comment,
			"-m "+proto+" --dport "+portSpan(f.Port.First, f.Port.Last, ":"),
			"-m addrtype --dst-type LOCAL",
			"-j DNAT --to-destination "+to))
	}
	return out, nil
}

// ifMatch returns the header match of interface name for flag (-i or -o):
// " -i eth0", or " ! -i ppp0" for the negated "!ppp0".
func ifMatch(flag, name string) string {
	if n, neg := strings.CutPrefix(name, "!"); neg {
		return " ! " + flag + " " + n
	}
	return " " + flag + " " + name
}

func portSpan(first, last uint16, sep string) string {
	if first == last {
		return strconv.Itoa(int(first))
	}
	return strconv.Itoa(int(first)) + sep + strconv.Itoa(int(last))
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	case 1:
		return "icmp"
	case 58:
		return "ipv6-icmp"
	}
	return strconv.Itoa(int(p))
}

// rule builds one restore line: head (command, chain and header fields such
// as -s, -i, -p, which iptables-save prints first), the other matches, the
// comment, and the target (the last of rest), in the order iptables-save
// prints them back. The comment is the last match because it is one: the
// kernel runs xt_comment for every packet that reaches it (through
// nft_compat under iptables-nft), so placed last it runs only for the
// packets the rule takes. An empty comment leaves the rule without one.
func rule(head, comment string, rest ...string) string {
	parts := []string{head}
	parts = append(parts, rest...)
	if comment != "" {
		c := `-m comment --comment "nfqfw: ` + sanitize(comment) + `"`
		at := len(parts)
		if last := parts[at-1]; strings.HasPrefix(last, "-j ") || strings.HasPrefix(last, "-g ") {
			at--
		}
		parts = slices.Insert(parts, at, c)
	}
	return strings.Join(parts, " ")
}

// hook is the jump that puts chain first in the built-in chain builtin. It
// carries no comment: every packet of the hook crosses it, and its target
// already names it as nfqfw's.
func hook(builtin, chain string) string {
	return "-I " + builtin + " 1 -j " + chain
}

// sanitize keeps a comment printable and free of quotes, within the 256
// bytes xt_comment allows.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '\'' {
			return -1
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.TrimSpace(s)
}

package rules

import (
	"net/netip"
	"time"
)

// Config is a parsed and validated configuration file. Parse builds it from
// YAML; every field is already checked and defaulted, so code that receives
// a *Config never re-validates. It is the input of Compile (the engine
// policy) and of the kernel ruleset generator.
//
// The YAML keys are the snake_case of the field names, as in the examples
// under rules/examples.
type Config struct {
	File string // the file it was read from, for messages

	Backend Backend  // iptables backend: auto, legacy, nft
	IPv6    bool     // also generate/install ip6tables rules (default true)
	Queue   Queue    // NFQUEUE options
	Flows   Flows    // flow table size and timeouts
	Zones   []Zone   // named interface groups, usable wherever an interface is
	Trusted []string // interfaces whose traffic is accepted in the kernel (default [lo]; [] filters loopback too)

	// Interfaces declares the interfaces that may be absent when the
	// firewall starts or reloads (see CheckInterfaces). YAML key:
	// interfaces.
	Interfaces Interfaces

	// RPFilter drops, in the kernel before connection tracking (raw table,
	// PREROUTING), every packet whose source address would not be routed
	// back out of the interface it arrived on: spoofed sources. It applies
	// to IPv4 and, when IPv6 is on, to IPv6 (where neighbour solicitations
	// and router advertisements are exempt). YAML key: rpfilter. Default
	// false.
	RPFilter bool

	Input   Chain
	Forward Chain
	Output  Chain

	NAT NAT // masquerade, snat and port forwards (nat table)

	// Stateful features. Later features add their own sections here; each
	// is optional and zero means "off".
	Recent []RecentList // named recent lists (xt_recent semantics)
	Guards []Guard      // rate guards (e.g. SSH brute force) with bans
	Knocks []Knock      // port knock sequences
	FTP    FTP          // userspace FTP helper

	Allowlist []netip.Prefix // management sources: never limited, banned or locked out

	Log     Log
	Metrics Metrics
	Control Control
	State   State

	// Fleet shares decisions with other gateways through NATS JetStream
	// (off when it has no servers).
	Fleet Fleet

	ifaceRefs  []ifaceRef  // every interface name the file wrote, in file order
	fleetFiles []fleetFile // the fleet credential files, for CheckHost
}

// Interfaces is what the config says about the host's interfaces.
type Interfaces struct {
	// Dynamic lists the interfaces that come and go while the firewall
	// runs (ppp0, wg0, a hotplugged USB modem, "veth+" containers): a
	// rule may name them although they are absent at start or reload.
	// A name ending in "+" covers every interface with that prefix. YAML
	// key: interfaces.dynamic.
	Dynamic []string
}

// Backend selects the iptables flavour used to install rules.
type Backend string

// Backends.
const (
	BackendAuto   Backend = "auto"
	BackendLegacy Backend = "legacy"
	BackendNft    Backend = "nft"
)

// Queue holds the NFQUEUE options.
type Queue struct {
	Number         uint16 // first queue number (default 0)
	Count          uint16 // number of queues/readers, --queue-balance when > 1 (default 1)
	MaxLen         uint32 // kernel queue length (default 4096)
	Batch          int    // most packets read and answered together, accept runs as one verdict (default 64, 1..256)
	Bypass         bool   // --queue-bypass: NEW accepted while no daemon listens (default false: dropped)
	FailOpen       bool   // accept packets when the queue is full (default false: dropped)
	FailureVerdict Action // answer for a recovered panic or overload (default drop)
	MarkMask       uint32 // mark bits nfqfw may use (default 0x00ff0000)
}

// Flows holds the flow table options.
type Flows struct {
	Max      int // maximum tracked flows (default 262144)
	Timeouts Timeouts
	// KernelEvents selects the conntrack events the kernel generates for
	// new flows. KernelEventsAll (the default) leaves event generation
	// alone: the daemon listens to updates and destroys only, 6 updates
	// and a destroy for a short TCP connection closed with FIN, and needs
	// no rule in the raw table. KernelEventsMinimal asks only for the
	// first reply, assured and destroy, the events the engine follows,
	// through a CT template the raw table sets on TCP SYNs: 2 updates and
	// a destroy (both measured with conntrack -E -e UPDATE,DESTROY,
	// TestKernelEventsMinimal), for hosts that open connections faster
	// than they move bytes. The raw table is one more hook every packet
	// crosses, established ones included: with it the kernel spent about 1
	// point more of the gateway's busy CPU on iperf3 traffic (5.1% against
	// 4.3%; a kernel-only ruleset: 4.0%), measured with an earlier form of
	// the rules (a RETURN for TCP without SYN, then the template for the
	// rest), not again with the one SYN rule. The mask is the kernel's: every
	// listener (conntrack -E, ulogd, conntrackd) then sees TCP flows only
	// from their first reply and no state change but assured, which is why
	// it is not the default.
	KernelEvents string
	// TCPPickup decides a TCP segment without SYN that belongs to no
	// known flow (a session that outlived a conntrack flush, a failover,
	// a reboot of the gateway, or the start of the firewall).
	// TCPPickupPolicy (the default, as the kernel's nf_conntrack_tcp_loose)
	// takes it up mid-stream: the policy decides it as it would the
	// connection's first packet, so the rule that admits the SYN admits the
	// pickup and a refused port stays refused. TCPPickupDrop treats it as
	// INVALID (the chain's invalid action). YAML key: tcp_pickup.
	TCPPickup string
}

// Mid-stream pickup choices of Flows.TCPPickup.
const (
	TCPPickupPolicy = "policy"
	TCPPickupDrop   = "drop"
)

// Conntrack event choices of Flows.KernelEvents.
const (
	KernelEventsMinimal = "minimal"
	KernelEventsAll     = "all"
)

// Timeouts are the flow state timeouts, conntrack's defaults unless set.
type Timeouts struct {
	TCPSynSent     time.Duration // 2m
	TCPSynRecv     time.Duration // 60s
	TCPEstablished time.Duration // 5d
	TCPFinWait     time.Duration // 2m
	TCPCloseWait   time.Duration // 60s
	TCPLastAck     time.Duration // 30s
	TCPTimeWait    time.Duration // 2m
	TCPClose       time.Duration // 10s
	UDP            time.Duration // 30s (unreplied)
	UDPStream      time.Duration // 180s (replied, assured)
	ICMP           time.Duration // 30s
	Generic        time.Duration // 600s
}

// Zone is a named group of interfaces. An interface name ending in "+"
// matches every interface with that prefix, as in iptables.
type Zone struct {
	Name       string
	Interfaces []string
}

// Chain is the policy of one hook.
type Chain struct {
	Policy     Action     // default action when no rule matches (input/forward default drop, output default accept)
	RejectWith RejectKind // when Policy is reject
	Log        *LogSpec   // log packets that fall to the policy, nil = no log
	Invalid    Action     // what the kernel does with ctstate INVALID (default drop)
	// InvalidRejectWith answers INVALID packets when Invalid is reject:
	// RejectNone (the default) gives TCP a reset and every other protocol
	// ICMP port unreachable, like the guides' catch-all REJECT rules.
	InvalidRejectWith RejectKind
	// RelatedPolicy (YAML related: policy) leaves packets conntrack calls
	// RELATED (ICMP errors about a known flow) to the chain's policy like
	// any packet no rule accepts: only ESTABLISHED takes the fast path, as
	// in rules that accept "--state ESTABLISHED" alone. False (related:
	// accept, the default) accepts ESTABLISHED,RELATED.
	RelatedPolicy bool
	Rules         []Rule
}

// Rule is one policy rule. Empty match fields match anything.
type Rule struct {
	Name   string // unique; shown by metrics and logs
	Line   int    // line of the rule in the config file
	Family Family // FamilyAny, FamilyIPv4 or FamilyIPv6
	Proto  uint8  // 0 = any
	In     []string
	Out    []string // interface names, zones already expanded
	Src    []netip.Prefix
	Dst    []netip.Prefix
	SPort  []PortRange
	DPort  []PortRange
	ICMP   []ICMPMatch // ICMP/ICMPv6 types (and optional codes)

	Action     Action
	RejectWith RejectKind // when Action is reject; defaulted by protocol
	Log        *LogSpec

	// Stateful conditions, evaluated by the engine after the static match.
	Recent *RecentMatch // match on and/or update a recent list
	Guard  string       // name of a rate guard that must allow the packet
	Knock  string       // name of a knock sequence whose open window must cover the packet
}

// PortRange is an inclusive port range; a single port has First == Last.
type PortRange struct{ First, Last uint16 }

// Contains reports whether port is in r.
func (r PortRange) Contains(port uint16) bool { return port >= r.First && port <= r.Last }

// PortIn reports whether port is in one of ranges; no ranges hold every
// port.
func PortIn(port uint16, ranges []PortRange) bool {
	if len(ranges) == 0 {
		return true
	}
	for _, r := range ranges {
		if r.Contains(port) {
			return true
		}
	}
	return false
}

// ICMPMatch is an ICMP or ICMPv6 type with an optional code (Code < 0: any).
type ICMPMatch struct {
	Type uint8
	Code int16
}

// LogSpec asks for a log line when a rule decides a packet.
type LogSpec struct {
	Prefix string
}

// RecentMatch is a rule's use of a recent list (xt_recent semantics).
type RecentMatch struct {
	List     string
	Op       RecentOp
	ByDst    bool          // key on destination instead of source (rdest)
	Seconds  time.Duration // only entries seen within this window count (0 = any)
	HitCount int           // at least this many hits within Seconds (0 = any)
	SameTTL  bool          // rttl
}

// RecentOp is what a rule does with a recent list.
type RecentOp uint8

// Recent list operations, as xt_recent's --set, --rcheck, --update, --remove.
const (
	RecentSet RecentOp = iota + 1
	RecentCheck
	RecentUpdate
	RecentRemove
)

// RecentList declares a named recent list.
type RecentList struct {
	Name string
	Size int // maximum entries, oldest evicted (default 200, as xt_recent ip_list_tot)
	// Shared: with fleet share recent, an address set in the list here
	// is set in the list of the same name on every gateway sharing it.
	Shared bool
}

// Guard is a rate guard: at most N new connections per window per source;
// exceeding it logs and drops, and optionally bans.
type Guard struct {
	Name   string
	Limits []RateLimit
	Ban    *BanSpec
	Log    *LogSpec
}

// RateLimit allows Count events per Window.
type RateLimit struct {
	Count  int
	Window time.Duration
}

// The widest prefixes a guard's ban may cover (ban.prefix4, ban.prefix6):
// a ban wider than these is a policy, to be written as a rule.
const (
	BanMinPrefix4 = 8
	BanMinPrefix6 = 16
)

// BanSpec says how long a guard bans, and how bans grow for repeat offenders.
type BanSpec struct {
	Duration time.Duration
	Factor   float64       // multiply per repeat offence (1 = fixed)
	Max      time.Duration // upper bound of a grown ban
	// Prefix4 and Prefix6 are the prefix lengths banned around an
	// offender: its /Prefix4 (IPv4) or /Prefix6 (IPv6). 0 takes the
	// defaults, 32 and 64 (one IPv6 host owns a whole /64).
	Prefix4 int
	Prefix6 int
}

// Knock is a port knock sequence.
type Knock struct {
	Name       string
	Steps      []KnockStep
	StepWindow time.Duration // max time between two steps
	Window     time.Duration // max time for the whole sequence
	Open       []Open        // what a completed sequence opens
	OpenFor    time.Duration
	KeepOpen   bool   // keep admitting during the window (false: one new connection... per window policy)
	Shared     bool   // with fleet share knocks: a window opened here is opened on every gateway
	OneShot    bool   // a completed sequence cannot be replayed within its window
	Secret     string // non-empty: rotating sequence derived from this secret (TOTP-style)
	Period     time.Duration
	Skew       int // time steps of tolerance
	// Dst is the sequence's target: its steps count only when addressed
	// to one of these prefixes (routed through the gateway, or to the
	// host itself). Empty: the host itself, as knockd on it sees only
	// what is addressed to it; forwarded packets are never steps then.
	Dst []netip.Prefix
	// ResetOnAnyPort resets a source's progress on any packet that is not
	// its next step (YAML reset: any). False (reset: wrong_step, the
	// default) resets it only on a step of the sequence taken out of
	// order; the source's ordinary traffic to other ports leaves it alone,
	// as with knockd.
	ResetOnAnyPort bool
}

// KnockStep is one knock: a protocol (6 or 17) and a port.
type KnockStep struct {
	Proto uint8
	Port  uint16
}

// Open is what a knock opens: protocol, ports and optionally a destination.
type Open struct {
	Proto uint8
	Ports []PortRange
	Dst   []netip.Prefix
}

// FTP configures the userspace FTP helper.
type FTP struct {
	Enabled       bool
	Ports         []uint16      // control ports (default 21)
	Expiry        time.Duration // expectation lifetime (default 30s)
	MaxPerControl int           // expectations per control connection (default 8)
}

// NAT is the nat table of a gateway.
type NAT struct {
	Masquerade []Masquerade
	SNAT       []SNAT
	Forwards   []PortForward
}

// Masquerade rewrites the source of traffic from Src leaving through Out.
type Masquerade struct {
	Out []string
	Src []netip.Prefix
}

// SNAT rewrites the source of traffic from Src leaving through Out to To.
type SNAT struct {
	Out []string
	Src []netip.Prefix
	To  netip.Addr
}

// PortForward is a DNAT port forward: traffic arriving on In to Port is sent
// to To:ToPort, and the forward chain admits it only toward that destination.
type PortForward struct {
	Name   string
	In     []string
	Proto  uint8
	Port   PortRange
	To     netip.Addr
	ToPort uint16 // 0: same port
	Src    []netip.Prefix
}

// Log configures logging.
type Log struct {
	Format string // text or json (default text)
	Level  string // debug, info, warn, error (default info)
	Rate   int    // packet-path log lines per second (default 10); excess is counted
}

// Metrics configures the Prometheus exporter.
type Metrics struct {
	Listen string // default 127.0.0.1:9469; "" disables
}

// Control configures the control socket.
type Control struct {
	Socket string // default /run/nfqfw/nfqfw.sock
}

// State configures persistence of stateful data (bans, lists, knocks).
type State struct {
	Dir string // default /var/lib/nfqfw
}

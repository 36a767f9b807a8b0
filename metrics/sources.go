package metrics

// The sources below are what the collectors read at scrape time. Each is
// called from the scrape goroutine, concurrently with the packet path, so an
// implementation must be safe for that (atomic loads, or a short lock that
// the packet path does not take). Callbacks are called synchronously, before
// the method returns. Samples reported twice with equal label values are
// summed.

// RuleCount is the number of packets one rule, or one chain's default
// policy, decided with one action.
type RuleCount struct {
	Chain   string // hook name: input, forward, output
	Rule    string // rule name; "" for the chain's default policy
	Action  string // accept, drop, reject
	Packets uint64
}

// EngineSource is the policy engine's counters.
type EngineSource interface {
	// RuleCounts calls fn for every rule and chain policy counter.
	RuleCounts(fn func(RuleCount))
	// ReasonCounts calls fn with the packets decided per reason (the
	// engine's Reason names: rule, policy, invalid, recent, ...) and action.
	ReasonCounts(fn func(reason, action string, packets uint64))
	// NewFlowCounts calls fn with the flows admitted per protocol label
	// (tcp, udp, icmp, icmpv6, other).
	NewFlowCounts(fn func(proto string, flows uint64))
	// LogCounts returns the packet log lines written and those suppressed
	// by the log rate limit.
	LogCounts() (written, suppressed uint64)
	// KnownFlowCounts returns the flows admitted without their first
	// packet: TCP segments picked up mid-stream, and kernel flows adopted
	// at start or after a resync.
	KnownFlowCounts() (pickedUp, adopted uint64)
}

// FlowStats are the flow table's totals since start.
type FlowStats struct {
	Evictions uint64 // live flows evicted to make room for a new one
	TableFull uint64 // new flows refused because the table was full and nothing could be evicted
	Expired   uint64 // flows removed because their timeout passed
}

// FlowSource is the engine's flow table.
type FlowSource interface {
	// FlowCounts calls fn with the number of flows in the table per state.
	// The states partition the table, so that the flows add up to its
	// length: "tcp_" and the lower-case conntrack name of each TCP state
	// (tcp_syn_sent, tcp_established, tcp_time_wait, ...), then udp, icmp
	// and other. Cross-cutting flags (unreplied, assured) are not states.
	FlowCounts(fn func(state string, flows int))
	// FlowStats returns the table's totals.
	FlowStats() FlowStats
}

// QueueStats are one queue reader's totals since it opened its queue.
type QueueStats struct {
	Queue         uint16 // NFQUEUE number
	Packets       uint64 // packets received from the queue
	VerdictErrors uint64 // verdicts the kernel did not take
	OtherErrors   uint64 // any other receive error the reader survived (malformed messages included)
	Panics        uint64 // recovered panics while deciding a packet
}

// QueueSource is the set of queue readers.
type QueueSource interface {
	// QueueStats calls fn once per queue reader.
	QueueStats(fn func(QueueStats))
}

// ProcQueue is the kernel's view of one bound queue, one line of
// /proc/net/netfilter/nfnetlink_queue. The kernel keeps the counters in 32
// bits: they wrap, which Prometheus' rate() reads as a counter reset.
type ProcQueue struct {
	Queue       uint16 // queue number
	Length      uint64 // packets waiting for a verdict now (queue_total)
	Dropped     uint64 // packets dropped because the queue was full (queue_dropped)
	UserDropped uint64 // packets lost because the reader's socket buffer was full (queue_user_dropped)
}

// ProcSource reads the kernel's queue table; the daemon adapts engine/nfq's
// reader of /proc/net/netfilter/nfnetlink_queue.
type ProcSource func() ([]ProcQueue, error)

// RecentList is one recent list's state.
type RecentList struct {
	List      string // list name from the config
	Entries   int    // addresses on the list now
	Hits      uint64 // packets whose source matched the list
	Evictions uint64 // entries evicted because the list was full
	// Shared: the list is shared with the fleet; then its sets were
	// Published, Coalesced into the last one published, or Dropped.
	Shared                        bool
	Published, Coalesced, Dropped uint64
}

// RecentSource is the set of recent lists.
type RecentSource interface {
	// RecentLists calls fn once per list.
	RecentLists(fn func(RecentList))
}

// GuardSource is the set of rate guards (for example the SSH brute-force
// guard).
type GuardSource interface {
	// GuardAttempts calls fn with the new connections each guard judged, by
	// result (allowed, limited).
	GuardAttempts(fn func(guard, result string, attempts uint64))
	// GuardEvictions calls fn with the sources each guard forgot because
	// it was full.
	GuardEvictions(fn func(guard string, evictions uint64))
}

// BanSource is the ban list.
type BanSource interface {
	// BansActive returns the number of sources banned now.
	BansActive() int
	// BansIssued calls fn with the bans issued per source of the ban: the
	// mechanism that banned (guard, recent, manual), never the address.
	BansIssued(fn func(source string, bans uint64))
	// BanNotificationsDropped returns the ban and unban notifications lost
	// to a full queue: kernel set updates that did not happen.
	BanNotificationsDropped() uint64
	// Allows returns the temporary allows' state.
	Allows() AllowStats
}

// AllowStats are the temporary allows (nfqfw allows).
type AllowStats struct {
	Active  int    // allows in force
	Lifted  uint64 // bans lifted because an allow covers them
	Refused uint64 // bans of this gateway refused because an allow covers them
}

// StateSource is the state saver.
type StateSource interface {
	// StateSaves returns the state saves that succeeded and failed.
	StateSaves() (ok, failed uint64)
}

// KnockSequence is the state of one knock sequence.
type KnockSequence struct {
	Sequence    string // sequence name from the config
	InProgress  int    // sources part way through the sequence now
	WindowsOpen int    // sources whose completed sequence holds a window open now
	Successes   uint64 // sequences completed
}

// KnockSource is the set of knock sequences.
type KnockSource interface {
	// KnockSequences calls fn once per sequence.
	KnockSequences(fn func(KnockSequence))
	// KnockFailures calls fn with the failed attempts per sequence and
	// reason (wrong_port, timeout, ...).
	KnockFailures(fn func(sequence, reason string, failures uint64))
}

// FTPStats are the FTP helper's totals.
type FTPStats struct {
	Created   uint64 // expectations created from PASV/EPSV/PORT/EPRT
	Used      uint64 // expectations that admitted a data connection
	Expired   uint64 // expectations that timed out unused
	Malformed uint64 // control lines that could not be parsed
}

// FTPSource is the FTP helper's counters (the daemon adapts helpers/ftp).
type FTPSource interface {
	// FTPStats returns the helper's totals.
	FTPStats() FTPStats
	// FTPRefusals calls fn with the expectations refused per reason (for
	// example bounce: a PORT naming a third host, or table_full).
	FTPRefusals(fn func(reason string, refused uint64))
}

// FleetKind is what the fleet link counted of one kind of decision.
type FleetKind struct {
	Kind                         string // ban, unban, knock-window, knock-use
	Published, Received, Refused uint64
}

// FleetStats are the fleet link's counters and state.
type FleetStats struct {
	Up                            bool
	Backlog                       int
	Cursor                        uint64
	Connects                      uint64
	Kinds                         []FleetKind
	Malformed, Oversized, Spoofed uint64
	Expired, OutboxFull           uint64
	Unshared                      uint64 // allows and recent-list entries of a kind or list this gateway does not share
	// The propagation lag histogram: LagBuckets[i] lags were at most
	// LagBounds[i] seconds (cumulative); LagSum in seconds.
	LagBounds  []float64
	LagBuckets []uint64
	LagCount   uint64
	LagSum     float64
}

// FleetSource is the fleet link.
type FleetSource interface {
	FleetStats() FleetStats
}

// HAStats are the gateway's role in a high-availability pair and its
// counters since start.
type HAStats struct {
	Role                     string // one of HARoles
	ToPrimary, ToBackup      uint64 // role changes
	ReadErrors, FollowErrors uint64 // failures at role changes (see nfqfw_ha_errors_total)
}

// HASource is the daemon's role in a gateway pair.
type HASource interface {
	// HAStats returns the role and the counters.
	HAStats() HAStats
}

package metrics

// Fake sources with fixed values, as the daemon's adapters would report
// them for a server with one knock sequence, an SSH guard and FTP.

type fakeEngine struct {
	rules      []RuleCount
	reasons    []fakeReason
	newFlows   map[string]uint64
	written    uint64
	suppressed uint64
}

type fakeReason struct {
	reason, action string
	n              uint64
}

func (f fakeEngine) RuleCounts(fn func(RuleCount)) {
	for _, r := range f.rules {
		fn(r)
	}
}

func (f fakeEngine) ReasonCounts(fn func(reason, action string, n uint64)) {
	for _, r := range f.reasons {
		fn(r.reason, r.action, r.n)
	}
}

func (f fakeEngine) NewFlowCounts(fn func(proto string, n uint64)) {
	for p, n := range f.newFlows {
		fn(p, n)
	}
}

func (f fakeEngine) LogCounts() (uint64, uint64) { return f.written, f.suppressed }

func (f fakeEngine) KnownFlowCounts() (uint64, uint64) { return 3, 1 }

var testEngine = fakeEngine{
	rules: []RuleCount{
		{Chain: "input", Rule: "ssh", Action: "accept", Packets: 120},
		{Chain: "input", Rule: "web", Action: "accept", Packets: 4000},
		{Chain: "input", Rule: "closed-tcp", Action: "reject", Packets: 37},
		{Chain: "input", Rule: "", Action: "drop", Packets: 912},
		{Chain: "forward", Rule: "lan-out", Action: "accept", Packets: 55},
	},
	reasons: []fakeReason{
		{"rule", "accept", 4175},
		{"rule", "reject", 37},
		{"policy", "drop", 912},
		{"invalid", "drop", 8},
		{"rate_limit", "drop", 3},
	},
	newFlows:   map[string]uint64{"tcp": 4100, "udp": 75, "icmp": 2, "icmpv6": 0, "other": 0},
	written:    950,
	suppressed: 10,
}

type fakeFlows struct {
	states map[string]int
	stats  FlowStats
}

func (f fakeFlows) FlowCounts(fn func(string, int)) {
	for s, n := range f.states {
		fn(s, n)
	}
}

func (f fakeFlows) FlowStats() FlowStats { return f.stats }

var testFlows = fakeFlows{
	states: map[string]int{"tcp_syn_sent": 3, "tcp_established": 41, "tcp_time_wait": 7, "udp": 2, "icmp": 1},
	stats:  FlowStats{Evictions: 5, TableFull: 1, Expired: 4030},
}

type fakeQueues []QueueStats

func (f fakeQueues) QueueStats(fn func(QueueStats)) {
	for _, q := range f {
		fn(q)
	}
}

var testQueues = fakeQueues{
	{Queue: 0, Packets: 3000, VerdictErrors: 0, OtherErrors: 1, Panics: 0},
	{Queue: 1, Packets: 2150, Panics: 1},
}

type fakeRecent []RecentList

func (f fakeRecent) RecentLists(fn func(RecentList)) {
	for _, l := range f {
		fn(l)
	}
}

var testRecent = fakeRecent{
	{List: "portscan", Entries: 12, Hits: 340, Evictions: 0, Shared: true, Published: 30, Coalesced: 290, Dropped: 2},
	{List: "ssh", Entries: 3, Hits: 9, Evictions: 1},
}

type fakeGuards []struct {
	guard, result string
	n             uint64
}

func (f fakeGuards) GuardAttempts(fn func(string, string, uint64)) {
	for _, g := range f {
		fn(g.guard, g.result, g.n)
	}
}

func (f fakeGuards) GuardEvictions(fn func(string, uint64)) { fn("ssh", 7) }

var testGuards = fakeGuards{
	{"ssh", "allowed", 117},
	{"ssh", "limited", 3},
}

type fakeBans struct {
	active int
	issued map[string]uint64
}

func (f fakeBans) BansActive() int { return f.active }

func (f fakeBans) BansIssued(fn func(string, uint64)) {
	for s, n := range f.issued {
		fn(s, n)
	}
}

func (f fakeBans) BanNotificationsDropped() uint64 { return 0 }

func (f fakeBans) Allows() AllowStats { return AllowStats{Active: 1, Lifted: 2, Refused: 1} }

type fakeState struct{ ok, failed uint64 }

func (f fakeState) StateSaves() (uint64, uint64) { return f.ok, f.failed }

var testState = fakeState{ok: 12, failed: 1}

var testBans = fakeBans{active: 2, issued: map[string]uint64{"guard": 3, "manual": 1}}

type fakeKnock struct {
	seqs     []KnockSequence
	failures []struct {
		seq, reason string
		n           uint64
	}
}

func (f fakeKnock) KnockSequences(fn func(KnockSequence)) {
	for _, s := range f.seqs {
		fn(s)
	}
}

func (f fakeKnock) KnockFailures(fn func(string, string, uint64)) {
	for _, x := range f.failures {
		fn(x.seq, x.reason, x.n)
	}
}

var testKnock = fakeKnock{
	seqs: []KnockSequence{{Sequence: "ssh-open", InProgress: 1, WindowsOpen: 2, Successes: 6}},
	failures: []struct {
		seq, reason string
		n           uint64
	}{
		{"ssh-open", "wrong_port", 4},
		{"ssh-open", "timeout", 2},
	},
}

type fakeFTP struct {
	stats   FTPStats
	refused map[string]uint64
}

func (f fakeFTP) FTPStats() FTPStats { return f.stats }

func (f fakeFTP) FTPRefusals(fn func(string, uint64)) {
	for r, n := range f.refused {
		fn(r, n)
	}
}

var testFTP = fakeFTP{
	stats:   FTPStats{Created: 30, Used: 28, Expired: 2, Malformed: 1},
	refused: map[string]uint64{"bounce": 1},
}

// testKernel is the kernel's queue table with two bound queues (engine/nfq
// reads it from /proc/net/netfilter/nfnetlink_queue).
func testKernel() ([]ProcQueue, error) {
	return []ProcQueue{
		{Queue: 0, Length: 3, Dropped: 0, UserDropped: 0},
		{Queue: 1, Length: 0, Dropped: 17, UserDropped: 4},
	}, nil
}

// testOptions has every source set to the fakes above.
func testOptions() Options {
	return Options{
		Version: "v0.1.0-test",
		Engine:  testEngine,
		Flows:   testFlows,
		Queues:  testQueues,
		Kernel:  testKernel,
		Recent:  testRecent,
		Guards:  testGuards,
		Bans:    testBans,
		State:   testState,
		Knock:   testKnock,
		FTP:     testFTP,
		Fleet:   testFleet,
		HA:      testHA,
	}
}

type fakeFleet struct{ st FleetStats }

func (f fakeFleet) FleetStats() FleetStats { return f.st }

var testFleet = fakeFleet{FleetStats{Up: true, Backlog: 2, Cursor: 140, Connects: 3,
	Kinds:     []FleetKind{{Kind: "ban", Published: 40, Received: 95, Refused: 1}, {Kind: "unban", Published: 2, Received: 3}},
	Malformed: 1, Expired: 2,
	LagBounds: []float64{.01, .1, 1}, LagBuckets: []uint64{60, 95, 98}, LagCount: 98, LagSum: 2.5}}

type fakeHA struct{ st HAStats }

func (f fakeHA) HAStats() HAStats { return f.st }

// testHA is a backup gateway that was promoted twice and demoted three
// times, once failing to read the kernel's flows.
var testHA = fakeHA{HAStats{Role: "backup", ToPrimary: 2, ToBackup: 3, ReadErrors: 1}}

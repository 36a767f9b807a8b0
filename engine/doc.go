// Package engine decides the packets the kernel queues to nfqfw: it decodes
// queued packets, tracks flows with conntrack-like state machines, evaluates
// the compiled policy with its stateful matchers, and issues verdicts. It
// owns the decision; the matchers (engine/guard, engine/knock,
// engine/recent, helpers/ftp) hold state and answer questions, and the
// daemon (cmd/nfqfw/internal/daemon) only builds, starts and stops.
//
// The kernel keeps the fast path: only NEW flows (and the FTP control
// channel) reach the queue, so the engine sees the first packet of each flow
// and keeps its own state for it (the queue cannot deliver conntrack's).
//
// # The path of one packet
//
// The whole decision is in this package and reads top to bottom from
// QueueDecider.Decide:
//
//  1. Hand-over (queue.go): the queue reader (engine/nfq) calls
//     QueueDecider.Decide with the packet and its metadata; the netfilter
//     hook names the chain, and the reader's own Worker decides.
//  2. Decode (engine.go Worker.Decide, decode.go, decode_layers.go): a
//     Decoder turns the queued bytes, which start at the IP header, into a
//     Parsed (parsed.go: addresses, ports, TCP flags, ICMP type and the
//     tuple an ICMP error quotes, offsets of the payload). It never copies
//     the packet and never fails: what it cannot use is KindMalformed,
//     KindFragment (a non-first fragment) or KindUnsupported, dropped with
//     that reason. Decide fills the hook, interface names (ifnames.go) and
//     mark after Decode, which starts from the zero Parsed.
//  3. Classify (engine.go Worker.decide, flow_classify.go, flowtable.go,
//     tcpstate.go): the flow Table says whether the packet is NEW, belongs
//     to an admitted flow (ESTABLISHED; the FTP helper reads the control
//     channel's packets here), is RELATED to one (an ICMP error quoting it)
//     or INVALID, moving the flow's protocol state machine and timeout on.
//  4. Stateful matchers before the policy (matchers.go stateful.before), in
//     this order: a banned source is dropped (engine/guard Bans), an
//     expected FTP data connection is admitted as RELATED to its control
//     connection (Expectations, implemented by helpers/ftp), a knock step is
//     observed and dropped (engine/knock).
//  5. Policy (engine.go, rules.Policy.Eval): the chain's rules in order;
//     a rule with stateful conditions matches only where they hold
//     (matchers.go stateful.Allow: knock windows, recent lists), and its
//     rate guard may override its verdict (stateful.limit, engine/guard
//     Guards). The chain's policy applies when no rule matches.
//  6. Admit (engine.go, flowtable.go Table.Admit): an accepted NEW flow
//     enters the table; a full table gives queue.failure_verdict with
//     ReasonTableFull.
//  7. Verdict (verdict.go, stats.go, log.go, queue.go): a Verdict is an
//     action plus a typed Reason that doubles as the metric label; it is
//     counted, logged when the rule asks (rate-limited), and answered to
//     the queue: accept, drop, or a repeat with the reject kind's mark
//     that a REJECT rule in the kernel matches.
//
// From the moment a packet is handed over to its verdict nothing allocates
// (unless a log line is written); tests prove it with testing.AllocsPerRun.
//
// # Who owns what
//
//   - Each queue reader goroutine owns one Worker, and through it one Decoder
//     and one Parsed, reused for every packet. They are not safe for
//     concurrent use; the Parsed is valid until the next packet.
//   - The Engine, its flow Table and the stateful matchers are shared by all
//     queue readers: the kernel balances queues by address and protocol, not
//     by port, so state spanning packets of one source must be shared. Their
//     methods are safe for concurrent use (the table is sharded, each shard
//     behind its own lock).
//   - The policy is immutable. A reload compiles a new one and swaps it in
//     atomically together with the Matchers built for it (SetPolicy; the
//     daemon carries the old matchers' state over); a packet being decided
//     keeps the pair it started with, and flows and counters survive the
//     swap.
//   - Conntrack events (flows established or destroyed in the kernel) and the
//     control socket run in their own goroutines and reach the table and the
//     matchers only through those concurrency-safe methods.
package engine

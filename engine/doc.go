// Package engine decides the packets the kernel queues to nfqfw: it decodes
// queued packets, tracks flows with conntrack-like state machines, evaluates
// the compiled policy with its stateful matchers, and issues verdicts.
//
// The kernel keeps the fast path: only NEW flows (and the FTP control
// channel) reach the queue, so the engine sees the first packet of each flow
// and keeps its own state for it (the queue cannot deliver conntrack's).
//
// # The path of one packet
//
//  1. Decode: a Decoder turns the queued bytes, which start at the IP header,
//     into a Parsed (addresses, ports, TCP flags, ICMP type and the tuple an
//     ICMP error quotes, offsets of the payload). It never copies the packet
//     and never fails: what it cannot use is KindMalformed, KindFragment
//     (a non-first fragment) or KindUnsupported. The caller fills the hook,
//     interfaces and mark after Decode, which starts from the zero Parsed.
//  2. Classify: the flow Table says whether the packet is NEW, belongs to an
//     admitted flow (ESTABLISHED), is RELATED to one (an ICMP error quoting
//     it, an expected helper connection) or INVALID, moving the flow's
//     protocol state machine and timeout on.
//  3. Decide: for a NEW packet the stateful matchers look first (bans, knock
//     steps, expectations), then the policy's rules in order, with their
//     stateful conditions (recent lists, rate guards, knock windows); the
//     chain's policy applies when none matches. An accepted NEW flow is
//     admitted to the table.
//  4. Answer: a Verdict, an action plus a typed Reason that doubles as the
//     metric label; reject kinds travel to the kernel as a packet mark.
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
//     atomically; a packet being decided keeps the policy it started with,
//     and flows and counters survive the swap.
//   - Conntrack events (flows established or destroyed in the kernel) and the
//     control socket run in their own goroutines and reach the table and the
//     matchers only through those concurrency-safe methods.
package engine

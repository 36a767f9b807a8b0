// Package nfq reads packets from one netfilter queue (NFQUEUE) and answers
// each with a verdict.
//
// One Reader owns one netlink socket bound to one queue number; the socket
// carries IPv4 and IPv6 alike. Packets are copied whole (up to 64 KiB, GSO
// packets are not segmented, checksums may be unfinished), handed to a
// Decider in the socket's receive goroutine, and answered at once: accept,
// drop, or repeat with a packet mark (the kernel then acts on the mark, e.g.
// REJECT). Every packet gets an answer: a panicking Decider is recovered,
// counted and answered with the configured failure verdict.
//
// The package knows nothing of the engine: it moves bytes and verdicts.
// Conntrack attributes are not requested (this kernel cannot deliver them).
//
// ReadProcStats parses /proc/net/netfilter/nfnetlink_queue, the kernel's
// per-namespace view of every queue (packets waiting, dropped for lack of
// room, dropped because the socket was full).
package nfq

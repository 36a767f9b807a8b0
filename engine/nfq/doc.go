// Package nfq reads packets from one netfilter queue (NFQUEUE) and answers
// each with a verdict.
//
// One Reader owns one netlink socket bound to one queue number; the socket
// carries IPv4 and IPv6 alike. Packets are copied whole (up to 64 KiB, GSO
// packets are not segmented, checksums may be unfinished), handed to a
// Decider in the socket's receive goroutine, and answered: accept, drop, or
// repeat with a packet mark (the kernel then acts on the mark, e.g.
// REJECT). Every packet gets an answer: a panicking Decider is recovered,
// counted and answered with the configured failure verdict.
//
// Verdicts are batched where that is safe. A run of accepts is answered by
// one batch verdict (the kernel accepts every queued id up to the last;
// batch verdicts carry no mark), sent when the run reaches
// Config.BatchSize, before any drop or repeat (so answers stay in order and
// no mark is lost), on a receive error, and as soon as the socket holds no
// further message. go-nfqueue hands over one message per call and never
// says when the kernel's burst ends, so after each packet the reader asks
// the socket with a zero-timeout poll(2) (about 0.3-0.8 µs here, less than
// the verdict message it saves under load and never an added wait when
// idle: an idle socket flushes at once). A timer flush was not chosen: it
// would need a lock between the receive goroutine and the timer and would
// delay the last accept of every burst by the timer's period. Because a
// batch accepts every id up to its last, a gap in the id sequence (a
// message the library could not parse) is answered with the failure
// verdict first, so no packet is ever accepted unseen.
//
// The package knows nothing of the engine: it moves bytes and verdicts.
// Conntrack attributes are not requested (this kernel cannot deliver them).
//
// ReadProcStats parses /proc/net/netfilter/nfnetlink_queue, the kernel's
// per-namespace view of every queue (packets waiting, dropped for lack of
// room, dropped because the socket was full).
package nfq

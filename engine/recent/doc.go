// Package recent implements named recent lists with the semantics of the
// kernel's xt_recent match (iptables -m recent), replacing those rules.
//
// A list remembers addresses together with the timestamps of their last
// MaxStamps hits (xt_recent's ip_pkt_list_tot) and the TTL of the last
// packet. A rule uses a list with one operation (rules.RecentOp):
//
//   - set: add the address or record a hit on it; always matches.
//   - rcheck: matches when the address is present and, if given, has at
//     least HitCount hits within the last Seconds (and the same TTL when
//     SameTTL is asked).
//   - update: like rcheck, and when it matches it records a hit (refreshing
//     the last-seen time), exactly as xt_recent does.
//   - remove: matches when the address was present, and removes it.
//
// Each list is bounded: when full, the least recently hit entry is evicted
// (as xt_recent does) and counted. Lists with more than a few hundred entries
// are split into shards by a seeded hash of the address, each shard with its
// own mutex and an equal share of the size; eviction is then least-recent
// within the shard.
//
// A list marked shared (rules.RecentList.Shared) in Lists built WithShare
// hands every set to a channel (non-blocking; full: counted as dropped), at
// most one per address per ShareEvery (the others are counted as
// coalesced): the daemon publishes them to the fleet, and Apply records a
// set made on another gateway as a hit at its time, with its origin.
//
// Match is called per packet by several queue readers at once: it takes one
// shard lock, never allocates and never reads the clock (the caller passes
// now, unix nanoseconds). Addresses are [16]byte as in rules.Packet (IPv4 in
// its IPv4-mapped form). Everything else (Walk, Stats, Snapshot, Restore,
// and the control socket's reads through them) may be called from any
// goroutine at any time.
package recent

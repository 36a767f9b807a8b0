// Package ctnl follows the kernel's connection tracking table over
// ctnetlink: events for new, updated and destroyed flows, dumps of the whole
// table, and deletion of the flows of one source.
//
// The queue cannot deliver conntrack attributes on this kernel, so the
// engine learns from here when a flow it admitted became established
// (SeenReply, Assured, TCP state) or died, and it deletes the kernel flows of
// a source it bans, so established traffic of that source stops too.
//
// A Follower holds two netlink sockets: one subscribed to the conntrack
// event groups and read by one goroutine (Run), and one for queries (Dump,
// DeleteBySource). When the event socket overflows, the kernel has dropped
// events; the follower counts it and re-reads the whole table (a resync),
// so the consumer can repair what it missed.
package ctnl

// Package ipset manages the kernel ban sets over netlink (no ipset binary):
// hash:net sets with per-entry timeouts, nfqfw-bannet4 and nfqfw-bannet6,
// that a kernel rule (-m set --match-set nfqfw-bannet4 src -j DROP)
// matches so banned sources never reach the queue. An entry is a prefix: a
// banned address is its /32 or /128, a banned IPv6 host usually its /64.
//
// The kernel expires entries by itself: the daemon adds a banned source with
// the ban's time left and the kernel forgets it when the ban ends, even if
// the daemon is down. A kernel timeout is at most MaxTimeout (about 24 days);
// longer bans are still enforced by the engine.
//
// A Sets is one netlink socket, in the namespace it was opened in; its
// methods may be called from several goroutines (calls are serialised).
// None of this is on the packet path.
package ipset

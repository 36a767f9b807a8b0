// Package guard implements rate guards and bans, replacing xt_recent
// brute-force recipes, fail2ban and sshguard.
//
// A guard (rules.Guard) limits how many new connections one source may open:
// every limit (Count per Window) must hold, so "3 in 10s and 4 in 30m" lets
// three attempts through at once and a fourth only after ten seconds, and
// then nothing more until the first of the four is thirty minutes old.
//
// Only admitted attempts count toward the windows. A refused attempt is not
// recorded, so a limit means exactly "at most Count admitted per Window"
// and a client that backs off regains access when the window slides, as an
// operator reading the config expects. Hammering is not rewarded either: a
// refused attempt bans the source when the guard has a ban spec, and a
// banned source is dropped before any guard sees it (the engine checks
// Bans.IsBanned first, and the kernel ban set keeps it off the queue).
// Sources in the allowlist are always admitted and never banned.
//
// Bans holds the banned sources: bans by guards grow for repeat offenders
// (Duration x Factor^(offences-1), at most Max), and offences are remembered
// for a while after a ban ends (BanOptions.Remember, at least 24h or the
// spec's Max); manual bans come from the CLI through the control socket.
// OnBan and OnUnban tell the daemon to delete the source's kernel flows and
// to update the kernel ban set; they run on Bans.Run's goroutine, never on
// the packet path.
//
// Allow and IsBanned are called per packet by several queue readers at once:
// state is sharded by a seeded hash of the address with a mutex per shard,
// they never allocate and never read the clock (now is passed in, unix
// nanoseconds). Addresses on the packet path are [16]byte as in
// rules.Packet; netip.Addr everywhere else.
package guard

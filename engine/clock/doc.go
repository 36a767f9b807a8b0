// Package clock is the time base of every in-memory deadline of nfqfw:
// flow timeouts, bans, knock windows, recent lists, guard windows, FTP
// expectations.
//
// Now reads the monotonic clock, on a nanosecond scale that equals Unix
// time at process start: a step of the wall clock (NTP, an operator's date
// command, a VM resumed) moves no deadline. Wall time is used only where a
// time leaves the process or enters it: Wall converts a deadline to the
// wall time it falls on (state saved to disk, times shown by the CLI), Mono
// converts a saved wall time back (state restored), so a ban saved with
// three minutes left has three minutes left after a restart.
//
// Tests swap the source with Set and a Fake, whose wall time can be stepped
// apart from its monotonic time.
package clock

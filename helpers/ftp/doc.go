// Package ftp is nfqfw's userspace FTP helper. The kernel's FTP helper is
// not used (see the design): the kernel ruleset queues the established FTP
// control connection to the engine, the engine hands every packet of it to
// Helper.Inspect, and the helper reads the control channel for the four
// ways a data connection is announced:
//
//	227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)   server reply to PASV
//	229 Entering Extended Passive Mode (|||port|)   server reply to EPSV
//	PORT h1,h2,h3,h4,p1,p2                           client command (active)
//	EPRT |1|addr|port| or |2|addr6|port|             client command (active)
//
// Each announcement that passes the security checks becomes an expectation:
// exact source address, destination address and destination port (the data
// connection's source port is never known in advance), one use, a short
// expiry, a bounded number per control connection and in total. The engine
// asks Helper.Take for every NEW packet; an expected one is admitted as
// RELATED to its control connection.
//
// Security: the address in PORT/EPRT must be the control connection's
// client address and the address in a 227 reply its server address (no FTP
// bounce to a third host); data ports below 1024 are refused. Every refused
// announcement is counted per Refusal reason and logged (rate-limited).
//
// Stream handling: each control connection keeps, per direction, the next
// expected TCP sequence number and a bounded line buffer (MaxLine bytes).
// Lines may be split across segments or several may share one; duplicates
// (retransmissions) are ignored; after a gap the helper resumes at the next
// line boundary. Lines over MaxLine and announcements that do not parse are
// counted as malformed and ignored. Multi-line replies ("227-" ... "227 ")
// are followed so that only a reply's final line is read.
//
// Concurrency: every method of Helper is safe for concurrent use by the
// queue readers. One mutex guards the control states and the expectations:
// FTP control traffic is light, and Take skips the lock entirely while no
// expectation exists. Inspect does not allocate for a packet that completes
// no announcement; the first packet of a control connection allocates its
// state once.
package ftp

// Package control is the daemon's control socket: a unix stream socket,
// mode 0600 and owned by root, on which the nfqfw CLI asks the running
// daemon for its state (flows, knocks, bans, recent lists) and tells it to
// reload. It holds the server, every command's request and answer (the CLI
// and the daemon share them), and the handlers of the matchers' commands
// (BanHandlers, RecentHandlers, KnockHandlers), which turn the matchers'
// plain Go values into answers: the matchers do not know the socket.
//
// The protocol is one JSON request line per connection,
//
//	{"cmd":"state","args":{...}}
//
// answered by one JSON line, {"ok":true,"data":...} or
// {"ok":false,"error":"..."}. Peers that are not root (or the daemon's own
// user) are refused by their SO_PEERCRED credentials before anything is read.
package control

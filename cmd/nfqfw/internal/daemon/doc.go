// Package daemon runs nfqfw: it loads and compiles the config, binds the
// NFQUEUE readers, installs the kernel ruleset, follows conntrack events,
// serves metrics and the control socket, reloads on SIGHUP or a control
// request, and on shutdown removes exactly what it installed.
//
// Goroutines: one receive goroutine per queue reader (each with its own
// engine.Worker), one conntrack event reader, one housekeeping ticker
// (flow expiry, interface names, stateful expiry and persistence), the
// metrics HTTP server and the control socket server. Reload is serialised
// by Daemon.mu; packets never wait for it: the policy is swapped
// atomically.
package daemon

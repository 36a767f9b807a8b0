// Package daemon runs nfqfw: it loads and compiles the config, builds the
// engine and its stateful matchers, binds the NFQUEUE readers, installs the
// kernel ruleset, follows conntrack events, serves metrics and the control
// socket, reloads on SIGHUP or a control request, and on shutdown removes
// exactly what it installed. It decides no packet: the engine does
// (engine.QueueDecider is what each queue reader calls).
//
// Goroutines: one receive goroutine per queue reader (each with its own
// engine.QueueDecider), one conntrack event reader, one housekeeping ticker
// (flow expiry, interface names, stateful expiry), the ban worker (kernel
// ban sets, ctnetlink deletions), the state saver, the metrics HTTP server
// and the control socket server. Reload is serialised by Daemon.mu; packets
// never wait for it: the policy and its matchers are swapped atomically.
//
// It is internal to cmd/nfqfw: the application, not a library.
package daemon

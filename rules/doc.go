// Package rules is the firewall's configuration: its schema (Config), the
// strict YAML parser that builds and validates it (Parse, Load), and the
// compiler that turns it into an immutable Policy the engine evaluates per
// packet (Compile, Policy.Eval).
//
// Parsing is strict: an unknown key, a value of the wrong type or a bad
// value is an *Error naming file, line, field path and the value, wrapping
// one of the sentinel errors (ErrUnknownField, ErrBadValue, ...). Every
// default is applied by Parse, so a *Config is complete.
//
// Compile chooses lookup shapes once, at load time: address sets are empty,
// one range, a short list, a map of host addresses or sorted merged ranges;
// port sets are any, one range, a short list or a 65536-bit bitmap;
// interface sets compare names with iptables' "+" prefix wildcard. Rules are
// grouped per hook, address family and protocol so that Eval only looks at
// rules that can match. Eval does not allocate.
//
// The kernel ruleset generator (package rules/iptables) reads the same
// Config. Packet, Action and RejectKind are what the engine and the policy
// share.
package rules

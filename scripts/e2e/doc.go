// Package e2e holds the end-to-end tests of nfqfw: the real binary, built
// once per test run, decides real traffic between network namespaces on
// this kernel, with its own iptables chains installed in the namespace that
// plays the protected host.
//
// Topology (scripts/sandbox, unique names per test): the client namespace
// "cli" reaches the host namespace "srv" through the router "gw". The host
// runs `nfqfw run` with one of the shipped configs of rules/examples, whose
// reference interface veth-sg is replaced by the host's real link, plus a
// temporary control socket, state directory and metrics address. Servers
// are Go listeners opened inside the host namespace; probes are Go sockets
// opened inside the client namespace, and raw sockets there record what
// came back (TCP resets, ICMP errors). Tests assert on what the client
// observed, and on `nfqfw state` and /metrics.
//
// TestOracle holds nfqfw to the reference guides: each setup runs the
// guide's own rules (testdata/oracle) in one sandbox and the matching
// example in another, sends the same probes to both and fails on any
// difference not listed, with its reason, as the guide's slip or as one of
// nfqfw's known open differences.
//
// The tests need root and the iproute2 and iptables tools; they skip with
// the reason otherwise, and fail instead when CI=true. Every wait is
// bounded. The package has no exported API: it is only tests.
package e2e

// Package sandbox builds throw-away network namespaces for privileged tests:
// the reference sandbox of the design (a client and a server LAN joined by a
// forwarding gateway, IPv4 and IPv6) and single namespaces for tests that
// only need loopback.
//
// Every name is unique per process and call (nfq-<pid>-<n>-<role>), so
// parallel test runs cannot collide. Veth pairs are created directly inside
// their namespaces and never appear in the host's namespace. Everything is
// torn down by t.Cleanup: processes started through a Sandbox are stopped by
// PID, then the namespaces are deleted (which deletes their links).
//
// The package drives iproute2 (`ip`), the simplest and most robust tool for
// the job. It is a test-support package: only tests import it.
package sandbox

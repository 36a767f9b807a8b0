package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// outputConfig refuses every new local connection but ssh out, with policy
// (drop or reject) and reject_with.
func outputConfig(policy, rejectWith string) string {
	s := `
trusted: [lo]
input:
  policy: drop
output:
  policy: ` + policy + "\n"
	if rejectWith != "" {
		s += "  reject_with: " + rejectWith + "\n"
	}
	return s + `  rules:
    - {name: ssh-out, proto: tcp, dport: 22, action: accept}
`
}

// localDial connects from ns to dst with timeout and returns what the
// application saw and how long it took.
func localDial(ns *sandbox.Netns, dst netip.AddrPort, timeout time.Duration) (string, time.Duration) {
	var err error
	start := time.Now()
	ns.Do(func() error {
		var c net.Conn
		c, err = net.DialTimeout("tcp", dst.String(), timeout)
		if err == nil {
			c.Close()
		}
		return nil
	})
	return localOutcome(err, "connected"), time.Since(start)
}

// localQuery sends one datagram from ns to dst over a connected UDP socket
// and waits up to timeout for an answer; it returns what the application
// saw (an error of the send, of the receive, or "answered").
func localQuery(ns *sandbox.Netns, dst netip.AddrPort, timeout time.Duration) (string, time.Duration) {
	var err error
	start := time.Now()
	ns.Do(func() error {
		var c net.Conn
		if c, err = net.Dial("udp", dst.String()); err != nil {
			return nil
		}
		defer c.Close()
		if _, err = c.Write([]byte("ping")); err != nil {
			return nil
		}
		c.SetReadDeadline(time.Now().Add(timeout))
		_, err = c.Read(make([]byte, 64))
		return nil
	})
	return localOutcome(err, "answered"), time.Since(start)
}

// localOutcome names what an application saw: ok when err is nil, the errno
// a refusal surfaces as, "timeout", or the error itself.
func localOutcome(err error, ok string) string {
	var ne net.Error
	switch {
	case err == nil:
		return ok
	case errors.Is(err, syscall.EPERM):
		return "EPERM"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "ECONNREFUSED"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "EHOSTUNREACH"
	case errors.Is(err, syscall.EACCES):
		return "EACCES"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return fmt.Sprint(err)
}

// TestOutputRefusal records what a local application sees when OUTPUT
// refuses its connection or datagram. The guides' kernel DROP in OUTPUT
// fails a UDP send at once with EPERM, while a TCP connect retries its SYN
// until the application's timeout (the kernel's own retries take about two
// minutes). A packet queued to the engine and dropped there is gone without
// a word: the UDP send succeeds and no answer comes, the TCP connect waits.
// A policy (or rule) reject answers with an ICMP error that the local stack
// turns into an immediate error: port unreachable (the policy's default)
// for TCP and UDP alike, host unreachable for TCP only. The times are
// logged, not asserted.
func TestOutputRefusal(t *testing.T) {
	sb, cli, host := newHostLab(t)
	serveTCP(t, cli, 22, 8080)
	serveUDP(t, cli, 5353)
	dst := netip.AddrPortFrom(sb.Addr4(clientRole), 8080)
	udp := netip.AddrPortFrom(sb.Addr4(clientRole), 5353)
	const wait = 2 * time.Second

	t.Run("guides' kernel DROP", func(t *testing.T) {
		host.MustExec("iptables", "-A", "OUTPUT", "-d", dst.Addr().String(), "-j", "DROP")
		got, took := localDial(host, dst, wait)
		gotUDP, tookUDP := localQuery(host, udp, wait)
		host.MustExec("iptables", "-D", "OUTPUT", "-d", dst.Addr().String(), "-j", "DROP")
		t.Logf("tcp connect: %s after %v; udp: %s after %v", got, took.Round(time.Millisecond), gotUDP, tookUDP.Round(time.Millisecond))
		if got != "timeout" || gotUDP != "EPERM" {
			t.Errorf("through a kernel DROP: tcp %s, udp %s; want timeout, EPERM", got, gotUDP)
		}
	})
	for _, tt := range []struct {
		name, policy, rejectWith, want, wantUDP string
	}{
		{"nfqfw output policy drop (queued)", "drop", "", "timeout", "timeout"},
		{"nfqfw output policy reject icmp-port-unreachable", "reject", "", "ECONNREFUSED", "ECONNREFUSED"},
		// Host unreachable is a soft error to UDP (icmp_err_convert): a
		// socket without IP_RECVERR never sees it.
		{"nfqfw output policy reject icmp-host-unreachable", "reject", "icmp-host-unreachable", "EHOSTUNREACH", "timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fw := startFirewall(t, host, outputConfig(tt.policy, tt.rejectWith))
			defer fw.stop()
			if got, _ := localDial(host, netip.AddrPortFrom(sb.Addr4(clientRole), 22), wait); got != "connected" {
				t.Errorf("ssh out, which a rule admits: %s", got)
			}
			gotUDP, tookUDP := localQuery(host, udp, wait)
			got, took := localDial(host, dst, wait)
			t.Logf("tcp connect: %s after %v; udp: %s after %v", got, took.Round(time.Millisecond), gotUDP, tookUDP.Round(time.Millisecond))
			if got != tt.want || gotUDP != tt.wantUDP {
				t.Errorf("tcp %s, udp %s; want %s, %s", got, gotUDP, tt.want, tt.wantUDP)
			}
		})
	}
}

package e2e

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// TestFTPControlAcrossRestart: an FTP control session through the gateway,
// whose established packets nfqfw's FTP helper reads from the queue, is
// held across a restart (SIGTERM, then start) and a crash (SIGKILL, then
// start): the next LIST and a file transfer work, as they do through the
// guides' rules, which the kernel keeps applying. The restarted engine
// learns the session from the kernel's flow table (it adopts the flows its
// policy admits); with tcp_pickup drop that alone carries the session.
func TestFTPControlAcrossRestart(t *testing.T) {
	for _, pickup := range []string{"policy", "drop"} {
		t.Run("tcp_pickup "+pickup, func(t *testing.T) {
			sb, srv, fw := newFTPLab(t, true, "flows: {tcp_pickup: "+pickup+"}", ftpServerSide)
			cli := sb.NS(ftpClientRole)
			c := loginFTP(t, cli, netip.AddrPortFrom(sb.Addr4(ftpServerRole), 21), "restart@")
			c.list(cli, "before any restart")
			c.retr(cli, srv, "before any restart")

			for _, restart := range fw.restarts() {
				restart.stop()
				fw.start()
				c.list(cli, "after "+restart.name)
				c.retr(cli, srv, "after "+restart.name)
			}
			if v := metricValue(fw.metrics(), `nfqfw_flows_adopted_total`); v < 1 {
				t.Errorf("nfqfw_flows_adopted_total = %v after the restarts, want at least 1 (the control connection)", v)
			}
			if v := metricValue(fw.metrics(), `nfqfw_verdicts_total{action="drop",reason="invalid"}`); v > 0 {
				t.Errorf("nfqfw_verdicts_total{action=drop,reason=invalid} = %v after the restarts, want 0", v)
			}
		})
	}
}

// restart is one way the daemon goes down before it is started again.
type restart struct {
	name string
	stop func()
}

// restarts are a restart (SIGTERM, then start) and a crash (SIGKILL, then
// start) of fw; the caller starts it again.
func (fw *firewall) restarts() []restart {
	return []restart{{"SIGTERM and start", fw.stop}, {"SIGKILL and start", fw.kill}}
}

// pasvReply matches a 227 reply's address: h1,h2,h3,h4,p1,p2.
var pasvReply = regexp.MustCompile(`(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)`)

// passive sends PASV and connects the data connection from ns.
func (f *ftpConn) passive(ns *sandbox.Netns) net.Conn {
	f.t.Helper()
	return f.dialData(ns, f.pasv())
}

// pasv sends PASV and returns the address the server announced.
func (f *ftpConn) pasv() netip.AddrPort {
	f.t.Helper()
	f.send("PASV")
	r := f.reply()
	m := pasvReply.FindStringSubmatch(r)
	if !strings.HasPrefix(r, "227 ") || m == nil {
		f.t.Fatalf("PASV: reply %q", r)
	}
	n := make([]int, 6)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(n[0]), byte(n[1]), byte(n[2]), byte(n[3])}), uint16(n[4]<<8|n[5]))
}

// dialData connects a passive data connection from ns to dst.
func (f *ftpConn) dialData(ns *sandbox.Netns, dst netip.AddrPort) net.Conn {
	f.t.Helper()
	d, err := ns.DialTimeout("tcp", dst.String(), ftpDialTimeout)
	if err != nil {
		f.t.Fatalf("data connection to %s: %v", dst, err)
	}
	d.SetDeadline(time.Now().Add(ftpDialTimeout))
	return d
}

// list runs LIST over a passive data connection; the listing must name
// the served file.
func (f *ftpConn) list(ns *sandbox.Netns, when string) {
	f.t.Helper()
	d := f.passive(ns)
	defer d.Close()
	f.send("LIST")
	f.expect("150")
	b, err := io.ReadAll(d)
	if err != nil || !strings.Contains(string(b), "data.bin") {
		f.t.Fatalf("LIST %s: %q, %v", when, b, err)
	}
	f.expect("226")
}

// retr fetches the served file over a passive data connection and checks
// its checksum.
func (f *ftpConn) retr(ns *sandbox.Netns, srv *vsftpdServer, when string) {
	f.t.Helper()
	f.send("TYPE I")
	f.expect("200")
	d := f.passive(ns)
	defer d.Close()
	f.send("RETR " + srv.file)
	f.expect("150")
	b, err := io.ReadAll(d)
	if err != nil || sha256.Sum256(b) != srv.sum {
		f.t.Fatalf("RETR %s: %d bytes, %v: %s", when, len(b), err, fmt.Sprint(sha256.Sum256(b) == srv.sum))
	}
	f.expect("226")
}

// TestPingAcrossRestart: pings in progress through the gateway and to the
// gateway itself, IPv4 and IPv6, keep getting every reply across a restart
// (SIGTERM, then start) and a crash (SIGKILL, then start), as they do
// through the guides' rules, which the kernel keeps applying; the restarted
// engine lists each ping under the rule that admits its echo requests (it
// adopted the kernel's echo flows).
func TestPingAcrossRestart(t *testing.T) {
	requireSandbox(t)
	sb := sandbox.New(t, sandbox.Options{})
	t.Parallel()
	cfg := fmt.Sprintf(`
zones:
  cli: [%s]
  srv: [%s]
trusted: [lo]
input:
  policy: drop
  rules:
    - {name: ping, proto: icmp, icmp_type: echo-request, action: accept}
    - {name: ping6, proto: icmpv6, icmp_type: echo-request, action: accept}
forward:
  policy: drop
  rules:
    - {name: ping-srv, in: cli, out: srv, proto: icmp, icmp_type: echo-request, action: accept}
    - {name: ping6-srv, in: cli, out: srv, proto: icmpv6, icmp_type: echo-request, action: accept}
`, sb.GatewayLink(clientRole), sb.GatewayLink(hostRole))
	fw := startFirewall(t, sb.NS(sandbox.Gateway), cfg)
	cli := sb.NS(clientRole)
	pings := []struct {
		dst  netip.Addr
		rule string
	}{
		{sb.Addr4(hostRole), "ping-srv"},
		{sb.Addr6(hostRole), "ping6-srv"},
		{sb.GatewayAddr4(clientRole), "ping"},
		{sb.GatewayAddr6(clientRole), "ping6"},
	}
	// Each ping is one session (the sandbox's pinger keeps its echo
	// identifier), a request every pingInterval, each answered within
	// pingWait or counted lost.
	const (
		pingInterval = 100 * time.Millisecond
		pingWait     = time.Second
		maxPings     = 600
	)
	stop := make(chan struct{})
	lost := make([][]string, len(pings))
	sent := make([]int, len(pings))
	first := make([]chan struct{}, len(pings))
	var wg sync.WaitGroup
	for i, p := range pings {
		first[i] = make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < maxPings; n++ {
				select {
				case <-stop:
					return
				case <-time.After(pingInterval):
				}
				sent[i]++
				if err := cli.Ping(p.dst, 1, pingWait); err != nil {
					lost[i] = append(lost[i], err.Error())
				} else if sent[i]-len(lost[i]) == 1 {
					close(first[i])
				}
			}
		}()
	}
	for i, p := range pings {
		select {
		case <-first[i]:
		case <-time.After(10 * pingWait):
			t.Fatalf("ping %s: no reply before any restart", p.dst)
		}
	}
	for _, restart := range fw.restarts() {
		restart.stop()
		fw.start()
		st := fw.state()
		for _, p := range pings {
			if !listsPing(st, p.dst, p.rule) {
				t.Errorf("after %s: no replied echo flow to %s under rule %s:\n%s", restart.name, p.dst, p.rule, lines(st))
			}
		}
		time.Sleep(5 * pingInterval)
	}
	close(stop)
	wg.Wait()
	for i, p := range pings {
		if len(lost[i]) > 0 {
			t.Errorf("ping %s: %d of %d requests lost across the restarts: %v", p.dst, len(lost[i]), sent[i], lost[i])
		}
	}
	if v := metricValue(fw.metrics(), `nfqfw_flows_adopted_total`); v < float64(len(pings)) {
		t.Errorf("nfqfw_flows_adopted_total = %v after the restarts, want at least %d (the pings)", v, len(pings))
	}
}

// listsPing reports whether st lists a replied ICMP or ICMPv6 echo flow to
// dst admitted by rule.
func listsPing(st control.StateResponse, dst netip.Addr, rule string) bool {
	for _, f := range st.Flows {
		if (f.Proto == "icmp" || f.Proto == "icmpv6") && f.Dst == dst.String() && f.Replied && f.Rule == rule {
			return true
		}
	}
	return false
}

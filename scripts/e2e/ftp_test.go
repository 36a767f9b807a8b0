package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// Setup 4 of the design: FTP through a gateway whose forward chain nfqfw
// decides, the data connections admitted by nfqfw's own FTP helper only.
// The FTP client lives in "cli", vsftpd in "srv", and a third host in "oth"
// plays the victim of an FTP bounce.

const (
	ftpClientRole = "cli"
	ftpServerRole = "srv"
	ftpThirdRole  = "oth"
)

var ftpLANs = []sandbox.LAN{
	{Role: ftpClientRole, V4: netip.MustParsePrefix("10.99.1.0/24"), V6: netip.MustParsePrefix("fd99:1::/64")},
	{Role: ftpServerRole, V4: netip.MustParsePrefix("10.99.2.0/24"), V6: netip.MustParsePrefix("fd99:2::/64")},
	{Role: ftpThirdRole, V4: netip.MustParsePrefix("10.99.3.0/24"), V6: netip.MustParsePrefix("fd99:3::/64")},
}

// ftpFileSize is the size of the file every transfer fetches: random bytes,
// so a checksum proves the whole file crossed.
const ftpFileSize = 384 << 10

// Bounds of the FTP tools: a transfer that works takes well under a second
// here; one the firewall blocks must fail fast.
const (
	ftpTransferTimeout = 20 // seconds, curl --max-time
	ftpBlockedTimeout  = 6  // seconds, curl --max-time when the data connection must fail
	ftpDialTimeout     = 3 * time.Second
)

// vsftpdServer is vsftpd running in a namespace with one anonymous file.
type vsftpdServer struct {
	file string // the served file's name under the anonymous root
	sum  [32]byte
	proc *sandbox.Proc
}

// startVsftpd writes a minimal vsftpd.conf to a temporary directory and runs
// vsftpd in ns (dual stack, passive ports 30000-30100, active connections
// from port 20), stopped by PID at cleanup. It returns once port 21 answers.
func startVsftpd(t *testing.T, ns *sandbox.Netns) *vsftpdServer {
	t.Helper()
	dir := tempDir(t)
	root, empty := filepath.Join(dir, "root"), filepath.Join(dir, "empty")
	for _, d := range []string{dir, root, empty} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data := make([]byte, ftpFileSize)
	rand.Read(data)
	s := &vsftpdServer{file: "data.bin", sum: sha256.Sum256(data)}
	if err := os.WriteFile(filepath.Join(root, s.file), data, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "vsftpd.conf")
	err := os.WriteFile(conf, []byte(`listen=NO
listen_ipv6=YES
background=NO
anonymous_enable=YES
anon_root=`+root+`
local_enable=NO
write_enable=NO
pasv_enable=YES
port_enable=YES
connect_from_port_20=YES
pasv_min_port=30000
pasv_max_port=30100
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
secure_chroot_dir=`+empty+`
xferlog_enable=NO
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	s.proc = ns.Start("vsftpd", conf)
	ok := eventually(5*time.Second, func() bool {
		return ns.Do(func() error {
			c, err := net.DialTimeout("tcp", "127.0.0.1:21", time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}) == nil
	})
	if !ok {
		t.Fatalf("vsftpd does not answer on port 21: %s", s.proc.Output())
	}
	return s
}

// ftpTool is an FTP client and the mode it fetches in.
type ftpTool struct {
	name string
	args func(host, out string) []string // the command fetching data.bin from host into out
}

func ftpURL(host netip.Addr) string {
	if host.Is6() {
		return "ftp://[" + host.String() + "]/data.bin"
	}
	return "ftp://" + host.String() + "/data.bin"
}

func curlTool(name string, maxTime int, flags ...string) ftpTool {
	return ftpTool{name: name, args: func(host, out string) []string {
		a := []string{"curl", "-sS", "--max-time", fmt.Sprint(maxTime), "--connect-timeout", "5", "-o", out}
		a = append(a, flags...)
		return append(a, ftpURL(netip.MustParseAddr(host)))
	}}
}

func lftpTool(name string, passive bool) ftpTool {
	return ftpTool{name: name, args: func(host, out string) []string {
		h := host
		if netip.MustParseAddr(host).Is6() {
			h = "[" + host + "]"
		}
		mode := "off"
		if passive {
			mode = "on"
		}
		script := "set net:max-retries 1; set net:timeout 8; set net:reconnect-interval-base 1; " +
			"set ftp:passive-mode " + mode + "; get data.bin -o " + out + "; bye"
		return []string{"lftp", "-e", script, "ftp://" + h}
	}}
}

// ftpClients are the FTP clients of the tests, one per transfer mode.
// Over IPv6 curl always uses EPSV/EPRT.
type ftpClients struct {
	curlEPSV, curlPASV, curlEPRT, curlPORT ftpTool
	lftpPassive, lftpActive                ftpTool
}

// newFTPClients are the clients with curl's transfers bounded by maxTime
// seconds; lftp's net:timeout is 8 s.
func newFTPClients(maxTime int) ftpClients {
	return ftpClients{
		curlEPSV:    curlTool("curl passive (EPSV)", maxTime),
		curlPASV:    curlTool("curl passive (PASV)", maxTime, "--disable-epsv"),
		curlEPRT:    curlTool("curl active (EPRT)", maxTime, "-P", "-"),
		curlPORT:    curlTool("curl active (PORT)", maxTime, "-P", "-", "--disable-eprt"),
		lftpPassive: lftpTool("lftp passive", true),
		lftpActive:  lftpTool("lftp active", false),
	}
}

// ftpc are the transfers of the tests, bounded by ftpTransferTimeout.
var ftpc = newFTPClients(ftpTransferTimeout)

// fetch runs tool in ns against host and reports whether the file arrived
// whole, with the tool's output.
func (s *vsftpdServer) fetch(t *testing.T, ns *sandbox.Netns, tool ftpTool, host netip.Addr) (bool, string) {
	t.Helper()
	out := filepath.Join(tempDir(t), "fetched")
	res, err := ns.Exec(tool.args(host.String(), out)...)
	b, rerr := os.ReadFile(out)
	if err != nil || rerr != nil {
		return false, fmt.Sprintf("%v %v: %s", err, rerr, res)
	}
	if sha256.Sum256(b) != s.sum {
		return false, fmt.Sprintf("checksum mismatch: %d of %d bytes: %s", len(b), ftpFileSize, res)
	}
	return true, res
}

// ftpConfig is a gateway config: zones per LAN, the FTP helper on or off,
// and the forward rules given.
func ftpConfig(sb *sandbox.Sandbox, helper bool, extra, forward string) string {
	return fmt.Sprintf(`
zones:
  cli: [%s]
  srv: [%s]
  oth: [%s]
trusted: [lo]
ftp: {enabled: %v, ports: [21], expiry: 30s, max_per_control: 8}
%s
input:
  policy: drop
forward:
  policy: drop
  invalid: drop
  rules:
%s`, sb.GatewayLink(ftpClientRole), sb.GatewayLink(ftpServerRole), sb.GatewayLink(ftpThirdRole), helper, extra, forward)
}

// ftpServerSide protects the server: only the FTP control port is open
// toward it, and nothing else crosses; the helper must admit every data
// connection, passive and active.
const ftpServerSide = `    - {name: ftp-control, in: cli, out: srv, proto: tcp, dport: 21, action: accept}
`

// ftpClientSide protects the client: it may open anything toward the
// server, nothing may open toward it; the helper must admit the server's
// active-mode data connections.
const ftpClientSide = `    - {name: client-out, in: cli, out: srv, action: accept}
`

// ftpTransfer is one fetch and whether it must succeed.
type ftpTransfer struct {
	tool ftpTool
	v6   bool
	ok   bool
}

// passive are the transfers in passive mode that must succeed: curl with
// EPSV (IPv4 and IPv6) and PASV, lftp over IPv4 and IPv6.
func (c ftpClients) passive() []ftpTransfer {
	return []ftpTransfer{
		{tool: c.curlEPSV, ok: true}, {tool: c.curlEPSV, v6: true, ok: true},
		{tool: c.curlPASV, ok: true},
		{tool: c.lftpPassive, ok: true}, {tool: c.lftpPassive, v6: true, ok: true},
	}
}

// active are the transfers in active mode that must succeed: curl with
// EPRT (IPv4 and IPv6) and PORT, lftp over IPv4 and IPv6.
func (c ftpClients) active() []ftpTransfer {
	return []ftpTransfer{
		{tool: c.curlEPRT, ok: true}, {tool: c.curlEPRT, v6: true, ok: true},
		{tool: c.curlPORT, ok: true},
		{tool: c.lftpActive, ok: true}, {tool: c.lftpActive, v6: true, ok: true},
	}
}

// runTransfers fetches the file once per transfer. A transfer that must
// succeed must also have used an FTP expectation (the helper admitted its
// data connection); one that must fail must not leave the file behind.
func runTransfers(t *testing.T, sb *sandbox.Sandbox, fw *firewall, srv *vsftpdServer, transfers []ftpTransfer) {
	t.Helper()
	cli := sb.NS(ftpClientRole)
	for _, tr := range transfers {
		host, fam := sb.Addr4(ftpServerRole), "IPv4"
		if tr.v6 {
			host, fam = sb.Addr6(ftpServerRole), "IPv6"
		}
		t.Run(tr.tool.name+" over "+fam, func(t *testing.T) {
			used := ftpMetric(fw, "used")
			ok, out := srv.fetch(t, cli, tr.tool, host)
			switch {
			case ok != tr.ok:
				t.Fatalf("transfer succeeded = %v, want %v: %s", ok, tr.ok, out)
			case ok && ftpMetric(fw, "used") <= used:
				t.Errorf("transfer succeeded without using an FTP expectation (used stays %v)", used)
			}
		})
	}
}

// ftpMetric returns nfqfw_ftp_expectations_total for event.
func ftpMetric(fw *firewall, event string) float64 {
	return metricValue(fw.metrics(), `nfqfw_ftp_expectations_total{event="`+event+`"}`)
}

// relatedFlows returns the flows the state view shows as RELATED to an FTP
// control connection.
func relatedFlows(st control.StateResponse) []control.StateFlow {
	var out []control.StateFlow
	for _, f := range st.Flows {
		if f.Related && strings.HasSuffix(f.Parent, ":21") {
			out = append(out, f)
		}
	}
	return out
}

// newFTPLab builds the FTP lab with vsftpd on the server LAN, marks the
// test parallel and starts the firewall on ftpConfig(helper, extra,
// forward).
func newFTPLab(t *testing.T, helper bool, extra, forward string) (*sandbox.Sandbox, *vsftpdServer, *firewall) {
	t.Helper()
	requireSandbox(t, "vsftpd", "curl", "lftp")
	sb := sandbox.New(t, sandbox.Options{LANs: ftpLANs})
	srv := startVsftpd(t, sb.NS(ftpServerRole))
	t.Parallel()
	return sb, srv, startFirewall(t, sb.NS(sandbox.Gateway), ftpConfig(sb, helper, extra, forward))
}

// TestFTPServerSide: the forward chain admits only the control connection
// toward the server; curl and lftp fetch in passive and active mode over
// IPv4 and IPv6, every data connection admitted by the helper as RELATED
// to its control connection. A bounce attempt opens nothing.
func TestFTPServerSide(t *testing.T) {
	sb, srv, fw := newFTPLab(t, true, "", ftpServerSide)
	runTransfers(t, sb, fw, srv, append(ftpc.passive(), ftpc.active()...))
	if rel := relatedFlows(fw.state()); len(rel) == 0 {
		t.Errorf("the state view shows no flow RELATED to an FTP control connection:\n%s", lines(fw.state()))
	} else {
		t.Logf("e.g. %s parent=%s", rel[0].Line, rel[0].Parent)
	}
	t.Run("bounce", func(t *testing.T) { checkBounce(t, sb, fw) })
	m := fw.metrics()
	checkMetrics(t, m, map[string]float64{
		`nfqfw_ftp_expectations_total{event="created"}`: 10,
		`nfqfw_ftp_expectations_total{event="used"}`:    10,
		`nfqfw_ftp_refused_total{reason="bounce"}`:      2,
	})
	if v := metricValue(m, `nfqfw_ftp_malformed_total`); v != 0 {
		t.Errorf("nfqfw_ftp_malformed_total = %v, want 0", v)
	}
}

// checkBounce logs in over a raw control connection and announces a third
// host's address with PORT and EPRT (an FTP bounce): the server must not
// get through to it. The same session then announces the client's own
// address, and that data connection does get through: the probe can see
// an opening.
func checkBounce(t *testing.T, sb *sandbox.Sandbox, fw *firewall) {
	cli, srvNS, oth := sb.NS(ftpClientRole), sb.NS(ftpServerRole), sb.NS(ftpThirdRole)
	third, client := sb.Addr4(ftpThirdRole), sb.Addr4(ftpClientRole)
	const bouncePort, eprtPort, ownPort = 30002, 30003, 30012
	listenIn(t, oth, netip.AddrPortFrom(netip.IPv4Unspecified(), bouncePort))
	listenIn(t, oth, netip.AddrPortFrom(netip.IPv4Unspecified(), eprtPort))
	listenIn(t, cli, netip.AddrPortFrom(netip.IPv4Unspecified(), ownPort))
	refusedBefore := metricValue(fw.metrics(), `nfqfw_ftp_refused_total{reason="bounce"}`)

	c := loginFTP(t, cli, netip.AddrPortFrom(sb.Addr4(ftpServerRole), 21), "bounce@")
	c.sendPORT(third, bouncePort)
	c.reply() // vsftpd refuses it too ("500 Illegal PORT command"); the firewall must not rely on that
	c.send(fmt.Sprintf("EPRT |1|%s|%d|", third, eprtPort))
	c.reply()

	if !eventually(2*time.Second, func() bool {
		return metricValue(fw.metrics(), `nfqfw_ftp_refused_total{reason="bounce"}`) >= refusedBefore+2
	}) {
		t.Errorf("the bounce attempts were not counted as refused (reason bounce)")
	}
	for _, p := range []uint16{bouncePort, eprtPort} {
		if err := dialFrom(srvNS, netip.AddrPortFrom(third, p)); err == nil {
			t.Errorf("the server reached the third host %s:%d after a bounce PORT/EPRT", third, p)
		}
	}
	c.sendPORT(client, ownPort)
	c.expect("200")
	if err := dialFrom(srvNS, netip.AddrPortFrom(client, ownPort)); err != nil {
		t.Errorf("the client's own PORT did not open its data connection: %v", err)
	}
}

// TestFTPClientSide: the forward chain lets the client open anything and
// nothing open toward it; the server's active-mode data connections are
// admitted by the helper. Passive mode needs no helper here.
func TestFTPClientSide(t *testing.T) {
	sb, srv, fw := newFTPLab(t, true, "", ftpClientSide)
	runTransfers(t, sb, fw, srv, ftpc.active())
	// Nothing but announced connections reaches the client.
	cli := sb.NS(ftpClientRole)
	listenIn(t, cli, netip.MustParseAddrPort("0.0.0.0:30020"))
	if err := dialFrom(sb.NS(ftpServerRole), netip.AddrPortFrom(sb.Addr4(ftpClientRole), 30020)); err == nil {
		t.Errorf("the server reached an unannounced port of the client")
	}
}

// TestFTPWithoutHelper: the server-side policy with the helper off. The
// control connection works, no data connection does: the helper is what
// admits them.
func TestFTPWithoutHelper(t *testing.T) {
	sb, srv, fw := newFTPLab(t, false, "", ftpServerSide)
	cli := sb.NS(ftpClientRole)
	c := dialFTP(t, cli, netip.AddrPortFrom(sb.Addr4(ftpServerRole), 21))
	c.expect("220")
	blocked := newFTPClients(ftpBlockedTimeout)
	for _, tr := range []struct {
		tool ftpTool
		v6   bool
	}{
		{blocked.curlEPSV, false},
		{blocked.curlPASV, false},
		{blocked.curlEPSV, true},
		{blocked.curlPORT, false},
	} {
		host := sb.Addr4(ftpServerRole)
		if tr.v6 {
			host = sb.Addr6(ftpServerRole)
		}
		if ok, out := srv.fetch(t, cli, tr.tool, host); ok {
			t.Errorf("%s to %s succeeded without the helper: %s", tr.tool.name, host, out)
		}
	}
	if v := ftpMetric(fw, "created"); v > 0 {
		t.Errorf("%v expectations created with the helper off", v)
	}
}

// TestFTPMasquerade: the client sits behind the gateway's MASQUERADE.
// nfqfw attaches the kernel's FTP helper to the masqueraded control
// connections (raw table, CT --helper ftp), so nf_nat_ftp rewrites the
// client's private address in PORT and EPRT as behind the guides' NAT
// gateway, and expects every data connection, passive and active, which
// arrives RELATED and takes the fast path. Before, active mode failed
// ("500 Illegal PORT command": the private address reached the server).
// The server sees only the gateway.
func TestFTPMasquerade(t *testing.T) {
	nat := fmt.Sprintf("nat:\n  masquerade:\n    - {out: srv, src: [%s]}\n", ftpLANs[0].V4)
	sb, srv, _ := newFTPLab(t, true, nat, ftpServerSide)
	for _, tool := range []ftpTool{ftpc.curlEPSV, ftpc.curlPASV, ftpc.lftpPassive, ftpc.curlPORT, ftpc.curlEPRT, ftpc.lftpActive} {
		t.Run(tool.name+" over IPv4", func(t *testing.T) {
			if ok, out := srv.fetch(t, sb.NS(ftpClientRole), tool, sb.Addr4(ftpServerRole)); !ok {
				t.Errorf("transfer through MASQUERADE failed: %s", out)
			}
		})
	}
	// The server saw the gateway, not the client.
	out := sb.MustExec(ftpServerRole, "ss", "-tan")
	if strings.Contains(out, sb.Addr4(ftpClientRole).String()) || !strings.Contains(out, sb.GatewayAddr4(ftpServerRole).String()) {
		t.Errorf("the server's connections are not masqueraded:\n%s", out)
	}
	// A bounce through the NAT'd control connection opens nothing.
	oth := sb.NS(ftpThirdRole)
	third := sb.Addr4(ftpThirdRole)
	const bouncePort = 30004
	listenIn(t, oth, netip.AddrPortFrom(netip.IPv4Unspecified(), bouncePort))
	c := loginFTP(t, sb.NS(ftpClientRole), netip.AddrPortFrom(sb.Addr4(ftpServerRole), 21), "bounce@")
	c.sendPORT(third, bouncePort)
	c.reply()
	if err := dialFrom(sb.NS(ftpServerRole), netip.AddrPortFrom(third, bouncePort)); err == nil {
		t.Errorf("the server reached the third host %s:%d after a bounce PORT through MASQUERADE", third, bouncePort)
	}
}

// ftpConn is a raw FTP control connection for the bounce test.
type ftpConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialFTP(t *testing.T, ns *sandbox.Netns, dst netip.AddrPort) *ftpConn {
	t.Helper()
	c, err := ns.DialTimeout("tcp", dst.String(), ftpDialTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", dst, err)
	}
	t.Cleanup(func() { c.Close() })
	return &ftpConn{t: t, c: c, r: bufio.NewReader(c)}
}

// loginFTP dials the FTP server dst from ns and logs in anonymously with
// password pass.
func loginFTP(t *testing.T, ns *sandbox.Netns, dst netip.AddrPort, pass string) *ftpConn {
	t.Helper()
	c := dialFTP(t, ns, dst)
	c.expect("220")
	c.send("USER anonymous")
	c.expect("331")
	c.send("PASS " + pass)
	c.expect("230")
	return c
}

// sendPORT announces addr:port (IPv4) with a PORT command.
func (f *ftpConn) sendPORT(addr netip.Addr, port uint16) {
	f.t.Helper()
	f.send(fmt.Sprintf("PORT %s,%d,%d", strings.ReplaceAll(addr.String(), ".", ","), port>>8, port&0xff))
}

func (f *ftpConn) send(line string) {
	f.t.Helper()
	f.c.SetWriteDeadline(time.Now().Add(ftpDialTimeout))
	if _, err := f.c.Write([]byte(line + "\r\n")); err != nil {
		f.t.Fatalf("send %q: %v", line, err)
	}
}

// reply reads one reply (the final line of a multi-line one).
func (f *ftpConn) reply() string {
	f.t.Helper()
	f.c.SetReadDeadline(time.Now().Add(ftpDialTimeout))
	for {
		l, err := f.r.ReadString('\n')
		if err != nil {
			f.t.Fatalf("read reply: %v", err)
		}
		if len(l) >= 4 && l[3] == ' ' {
			return strings.TrimSpace(l)
		}
	}
}

func (f *ftpConn) expect(code string) {
	f.t.Helper()
	if r := f.reply(); !strings.HasPrefix(r, code+" ") {
		f.t.Fatalf("reply %q, want %s", r, code)
	}
}

// listenIn accepts TCP connections on addr in ns until cleanup.
func listenIn(t *testing.T, ns *sandbox.Netns, addr netip.AddrPort) {
	t.Helper()
	var l net.Listener
	if err := ns.Do(func() (err error) { l, err = net.Listen("tcp", addr.String()); return err }); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns.Name, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello\n"))
			c.Close()
		}
	}()
}

// dialFrom connects from ns to dst and reads the listener's greeting.
func dialFrom(ns *sandbox.Netns, dst netip.AddrPort) error {
	return ns.Do(func() error {
		c, err := net.DialTimeout("tcp", dst.String(), ftpDialTimeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(ftpDialTimeout))
		b := make([]byte, 6)
		if _, err := c.Read(b); err != nil {
			return err
		}
		if !bytes.Equal(b, []byte("hello\n")) {
			return fmt.Errorf("greeting %q", b)
		}
		return nil
	})
}

package e2e

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// explainConfig admits ssh from the uplink, port 2222 behind a knock.
const explainConfig = `
zones:
  uplink: [UPLINK]
trusted: [lo]
knocks:
  - name: door
    steps: [tcp/7000, udp/8000]
    open: [{proto: tcp, ports: [2222]}]
    open_for: 1m
input:
  policy: drop
  invalid: drop
  rules:
    - {name: no-ssh-from-lan2, in: uplink, src: LAN2, proto: tcp, dport: 22, action: reject}
    - {name: ssh, in: uplink, proto: tcp, dport: 22, action: accept}
    - {name: door-knocked, in: uplink, proto: tcp, dport: 2222, knock: door, action: accept}
output:
  policy: accept
`

// TestExplainAndLockout: "nfqfw explain" against the running daemon shows
// its live state (a knock window, a ban) and changes none of it; a reload
// that would cut the operator's ssh (an established connection, or the
// shell's SSH_CONNECTION) is refused naming what would refuse it, and
// --force applies it; a start that would is refused too.
func TestExplainAndLockout(t *testing.T) {
	sb := statefulSandbox(t, nil, lan2)
	cli, host := sb.NS(clientRole), sb.NS(hostRole)
	h4, c4, o4 := sb.Addr4(hostRole), sb.Addr4(clientRole), sb.Addr4(lan2.Role)
	link := sb.Link(hostRole)
	serveTCP(t, host, 22, 2222)
	fw := startFirewall(t, host, statefulConfig(sb, explainConfig, "LAN2", o4.String()))

	explain := func(src netip.Addr, dport string) string {
		t.Helper()
		out, err := fw.cli("explain", "tcp", src.String()+":40000", "to", h4.String()+":"+dport, "in", link)
		if err != nil {
			t.Fatalf("nfqfw explain: %v: %s", err, out)
		}
		return out
	}

	t.Run("explain shows a knock window", func(t *testing.T) {
		out := explain(c4, "2222")
		if !strings.Contains(out, `knock "door": no window open for `+c4.String()) || !strings.Contains(out, "verdict  drop, reason policy") {
			t.Errorf("before knocking:\n%s", out)
		}
		// Explaining a knock step takes no step: the window stays shut.
		explain(c4, "7000")
		knockWithGo(t, cli, h4, "udp/8000")
		if out := explain(c4, "2222"); !strings.Contains(out, "no window open") {
			t.Errorf("an explained knock step advanced the sequence:\n%s", out)
		}
		knockWithGo(t, cli, h4, "tcp/7000", "udp/8000")
		out = explain(c4, "2222")
		if !strings.Contains(out, `knock "door" window open for `+c4.String()+" until") || !strings.Contains(out, `verdict  accept by rule "door-knocked", reason rule`) {
			t.Errorf("after knocking:\n%s", out)
		}
		t.Logf("nfqfw explain after the knock:\n%s", out)
		expectDial(t, cli, netip.AddrPortFrom(h4, 2222), connected, "after the knock")
	})

	t.Run("trace streams the decisions with their explanations", func(t *testing.T) {
		done := make(chan string, 1)
		go func() {
			out, err := fw.cli("trace", "--port", "2222", "--for", "3s")
			if err != nil {
				out += "\n" + err.Error()
			}
			done <- out
		}()
		// Three connections, half a second apart: the first trace request
		// reaches the daemon before some of them.
		for i := 0; i < 3; i++ {
			time.Sleep(500 * time.Millisecond)
			expectDial(t, cli, netip.AddrPortFrom(h4, 2222), connected, "while tracing")
		}
		out := <-done
		if !strings.Contains(out, "flow     tcp "+c4.String()) || !strings.Contains(out, `verdict  accept by rule "door-knocked", reason rule`) ||
			!strings.Contains(out, `knock "door" window open for `+c4.String()) {
			t.Errorf("nfqfw trace --port 2222:\n%s", out)
		}
		t.Logf("nfqfw trace:\n%s", out)
	})

	t.Run("explain shows a ban", func(t *testing.T) {
		fw.mustCLI(t, "bans", "add", o4.String(), "--for", "1m")
		out := explain(o4, "2222")
		if !strings.Contains(out, o4.String()+" is banned until") || !strings.Contains(out, "verdict  drop, reason banned") {
			t.Errorf("banned source:\n%s", out)
		}
		fw.mustCLI(t, "bans", "del", o4.String())
	})

	// The operator's session: an established connection from cli to ssh.
	var session net.Conn
	if err := cli.Do(func() (err error) {
		session, err = net.DialTimeout("tcp", netip.AddrPortFrom(h4, 22).String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("ssh session: %v", err)
	}
	defer session.Close()

	orig, err := os.ReadFile(fw.config)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(old, new string) {
		t.Helper()
		if err := os.WriteFile(fw.config, []byte(strings.Replace(string(orig), old, new, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("a reload that would cut an established ssh connection is refused", func(t *testing.T) {
		rewrite("dport: 22, action: accept", "dport: 2022, action: accept")
		out, err := fw.cli("reload")
		if err == nil || !strings.Contains(out, "a new connection from "+c4.String()+" to port 22 (established connection) would get drop by no rule of the input chain matched: its policy drop") ||
			!strings.Contains(out, "--force") {
			t.Errorf("nfqfw reload: %v: %s", err, out)
		}
		expectDial(t, cli, netip.AddrPortFrom(h4, 22), connected, "after the refused reload")
	})

	t.Run("a reload that would refuse the shell's SSH_CONNECTION is refused", func(t *testing.T) {
		if err := os.WriteFile(fw.config, orig, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, nfqfwBin, "reload", "-s", fw.socket)
		cmd.Env = append(os.Environ(), "SSH_CONNECTION="+o4.String()+" 50000 "+h4.String()+" 22")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "(SSH_CONNECTION) would get reject by rule \"no-ssh-from-lan2\"") {
			t.Errorf("nfqfw reload with SSH_CONNECTION of a refused source: %v: %s", err, out)
		}
		// The same policy with a session from an admitted source reloads.
		cmd = exec.CommandContext(ctx, nfqfwBin, "reload", "-s", fw.socket)
		cmd.Env = append(os.Environ(), "SSH_CONNECTION="+c4.String()+" 50000 "+h4.String()+" 22")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("nfqfw reload with SSH_CONNECTION of an admitted source: %v: %s", err, out)
		}
	})

	t.Run("--force applies it", func(t *testing.T) {
		rewrite("dport: 22, action: accept", "dport: 2022, action: accept")
		fw.mustCLI(t, "reload", "--force")
		expectDial(t, cli, netip.AddrPortFrom(h4, 22), timedOut, "a new connection after the forced reload")
		if _, err := session.Write([]byte("still here\n")); err != nil {
			t.Errorf("the established session after the forced reload: %v", err)
		}
	})

	t.Run("a start that would cut an established ssh connection is refused", func(t *testing.T) {
		fw.stop()
		// Started from the operator's shell: SSH_CONNECTION is set (here
		// to the held session). A service start only warns.
		p := host.Start("env", "SSH_CONNECTION="+c4.String()+" 50000 "+h4.String()+" 22", nfqfwBin, "run", "-c", fw.config)
		err := p.Wait(readyTimeout)
		if err == nil || err == sandbox.ErrStillRunning || !strings.Contains(p.Output(), "would lock a management connection out") {
			if err == sandbox.ErrStillRunning {
				p.Stop()
			}
			t.Errorf("nfqfw run with a policy refusing the session: %v\n%s", err, p.Output())
		}
	})
}

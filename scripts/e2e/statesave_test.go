package e2e

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// knockSection adds a knock sequence to the port-scan example.
const knockSection = `
knocks:
  - name: ssh-knock
    steps: [tcp/7000, udp/8000, tcp/9000]
    step_window: 60s
    open: [{proto: tcp, ports: [22]}]
    open_for: 30s
`

// TestStateSavedOnChangeSurvivesACrash: a ban, a recent-list entry and a
// knock step reach the state file within about a second of the change, not
// at the saver's 10 s timer, so a SIGKILL right after keeps them all: the
// restarted daemon lists each.
func TestStateSavedOnChangeSurvivesACrash(t *testing.T) {
	requireSandbox(t)
	sb := sandbox.New(t, sandbox.Options{})
	cli, host := sb.NS(clientRole), sb.NS(hostRole)
	fw := startFirewall(t, host, exampleConfig(t, sb, "portscan.yaml")+knockSection)
	stateFile := filepath.Join(filepath.Dir(fw.config), "state", "state.json")
	client := sb.Addr4(clientRole).String()
	banned := "198.51.100.77"

	start := time.Now()
	fw.mustCLI(t, "bans", "add", banned, "--for", "1h")
	// A connect to a closed port puts the client on tcp-portscan; a SYN to
	// tcp/7000 is its first knock step.
	expectDial(t, cli, netip.AddrPortFrom(sb.Addr4(hostRole), 7777), refused, "a closed port")
	dialTCPWithin(cli, netip.AddrPortFrom(sb.Addr4(hostRole), 7000), 200*time.Millisecond)
	saved, ok := waitFor(8*time.Second, func() bool {
		b, _ := os.ReadFile(stateFile)
		s := string(b)
		return strings.Contains(s, banned) && strings.Contains(s, `"tcp-portscan"`) && strings.Count(s, client) >= 2
	})
	b, _ := os.ReadFile(stateFile)
	if !ok {
		t.Fatalf("the ban, recent entry and knock step are not all in the state file %v after the change:\n%s", time.Since(start), b)
	}
	t.Logf("ban, recent entry and knock step in the state file %v after the change (the timer saves every 10 s)", saved.Round(10*time.Millisecond))

	fw.kill()
	fw.start()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bans", "list"}, "banned by the operator"}, // from the state file, not adopted from the kernel set
		{[]string{"recent", "tcp-portscan"}, client},
		{[]string{"knock-status"}, client},
	} {
		out, err := fw.cli(c.args...)
		if err != nil || !strings.Contains(out, c.want) {
			t.Errorf("nfqfw %s after SIGKILL and start: %v: want %s listed:\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
	}
}

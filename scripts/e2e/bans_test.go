package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/engine/guard"
)

// noGuardConfig opens ssh and configures no guard: bans come from the CLI
// only.
const noGuardConfig = `
input:
  policy: drop
  rules:
    - {name: ssh, proto: tcp, dport: 22, action: accept}
`

// TestBansWithoutGuard: with no guard configured, nfqfw bans add is still
// a whole ban: the source lands in the kernel set, its established
// connection is cut, its new connections are dropped; bans del lifts it.
func TestBansWithoutGuard(t *testing.T) {
	l := newSSHLab(t, lan2)
	sb, cli, host, other, ssh := l.sb, l.cli, l.host, l.other, l.ssh4
	offender := sb.Addr4(clientRole)
	fw := startFirewall(t, host, statefulConfig(sb, noGuardConfig))
	set := func() map[netip.Addr]banEntry { return banSet(t, host, "nfqfw-bannet4") }

	talk := converse(t, cli, ssh)
	fw.mustCLI(t, "bans", "add", offender.String(), "--for", "30s")
	if e, in := set()[offender]; !in || e.Timeout < 25 || e.Timeout > 30 {
		t.Errorf("after bans add --for 30s: kernel entry %+v (present %v), want timeout about 30", e, in)
	}
	if !talk.cut(3 * time.Second) {
		t.Errorf("the banned source's established connection still talks (%d round trips)", talk.rounds.Load())
	}
	expectDial(t, cli, ssh, timedOut, "banned source's new connection")
	expectDial(t, other, ssh, connected, "another source meanwhile")

	liftBan(t, fw, set, offender)
	expectDial(t, cli, ssh, connected, "after bans del")
}

// TestBanAfterCrash: a ban the saved state does not hold (made just before
// a crash, the state file lost) is still in the kernel set after SIGKILL;
// the next start adopts it, so bans list shows it and bans del lifts it.
func TestBanAfterCrash(t *testing.T) {
	l := newSSHLab(t)
	sb, cli, host, ssh := l.sb, l.cli, l.host, l.ssh4
	offender := sb.Addr4(clientRole)
	fw := startFirewall(t, host, statefulConfig(sb, noGuardConfig))
	set := func() map[netip.Addr]banEntry { return banSet(t, host, "nfqfw-bannet4") }

	fw.mustCLI(t, "bans", "add", offender.String(), "--for", "5m")
	fw.kill()
	// Whatever was saved, the worst case is a state without the ban.
	statePath := filepath.Join(filepath.Dir(fw.config), "state", "state.json")
	if err := os.Remove(statePath); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if _, in := set()[offender]; !in {
		t.Fatalf("%s not in the kernel set after the crash", offender)
	}
	fw.start()
	b, ok := banOf(bansOf(t, fw), offender)
	if left := time.Until(b.Until); !ok || b.Source != guard.SourceKernel || left < 4*time.Minute || left > 5*time.Minute {
		t.Errorf("bans list after the restart: %+v (found %v), want the kernel's ban with about 5 min left", b, ok)
	}
	expectDial(t, cli, ssh, timedOut, "banned source after the restart")
	liftBan(t, fw, set, offender)
	expectDial(t, cli, ssh, connected, "after bans del")
}

// liftBan runs nfqfw bans del for k, which must then leave the kernel set
// (read by set) within 2 s.
func liftBan[K comparable](t *testing.T, fw *firewall, set func() map[K]banEntry, k K) {
	t.Helper()
	fw.mustCLI(t, "bans", "del", fmt.Sprint(k))
	if _, ok := waitFor(2*time.Second, func() bool { _, in := set()[k]; return !in }); !ok {
		t.Errorf("%v still in the kernel set after bans del", k)
	}
}

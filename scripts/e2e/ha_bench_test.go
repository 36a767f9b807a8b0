package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/nfqfw/nfqfw/scripts/sandbox"
)

// haBenchFlows is the size of the table a backup gateway adopts.
const haBenchFlows = 100_000

// haBenchConfig is a gateway forwarding lan0 to wan0, as the pair's.
const haBenchConfig = `
zones:
  lan: [lan0]
  wan: [wan0]
input:
  policy: accept
forward:
  policy: drop
  rules:
    - {name: lan-out, in: lan, out: wan, action: accept}
`

// BenchmarkHABackupAdoption measures what a backup gateway's nfqfw pays to
// hold the primary's flows: haBenchFlows UDP flows LAN to uplink are
// created in its kernel over ctnetlink, as conntrackd injects them, while
// nfqfw is backup and adopts each new flow from its event; then a
// promotion reads and adopts the whole table once, which is what a
// periodic sweep would pay at each period. The daemon's CPU time comes
// from /proc/PID/stat (10 ms ticks).
func BenchmarkHABackupAdoption(b *testing.B) {
	requireSandbox(b)
	ns := sandbox.NewNetns(b, "hab")
	for i, link := range []string{"lan0", "wan0"} {
		ns.MustExec("ip", "link", "add", link, "type", "veth", "peer", "name", link+"p")
		ns.MustExec("ip", "addr", "add", fmt.Sprintf("10.98.%d.2/17", i*128+1), "dev", link)
		ns.MustExec("ip", "link", "set", link, "up")
		ns.MustExec("ip", "link", "set", link+"p", "up")
	}
	for range b.N {
		fw := startFirewall(b, ns, haBenchConfig)
		if out, err := haCLI(fw, "demote"); err != nil {
			b.Fatalf("nfqfw ha demote: %v: %s", err, out)
		}
		adopted0 := metricValue(fw.metrics(), "nfqfw_flows_adopted_total")
		cpu0 := cpuOf(b, fw)
		t0 := time.Now()
		c, err := conntrack.Dial(&netlink.Config{NetNS: ns.Handle()})
		if err != nil {
			b.Fatal(err)
		}
		for i := range haBenchFlows {
			// 10.98.0.0/17 (LAN) to 10.98.128.0/17 (uplink).
			src := netip.AddrFrom4([4]byte{10, 98, 1 + byte(i>>16), byte(i >> 8)})
			dst := netip.AddrFrom4([4]byte{10, 98, 129, byte(i)})
			f := conntrack.NewFlow(17, conntrack.StatusConfirmed|conntrack.StatusSeenReply|conntrack.StatusAssured,
				src, dst, uint16(1024+i%60000), 53, 600, 0)
			if err := c.Create(f); err != nil {
				b.Fatalf("create flow %d: %v", i, err)
			}
		}
		c.Close()
		injected := time.Since(t0)
		took, ok := waitFor(120*time.Second, func() bool {
			return metricValue(fw.metrics(), "nfqfw_flows_adopted_total")-adopted0 >= haBenchFlows
		})
		if !ok {
			b.Fatalf("the backup adopted %v of %d injected flows within 120 s", metricValue(fw.metrics(), "nfqfw_flows_adopted_total")-adopted0, haBenchFlows)
		}
		cpuEvents := cpuOf(b, fw) - cpu0
		m := fw.metrics()
		b.Logf("backup: %d flows injected in %v, all adopted %v after the last; nfqfw CPU %v (%.1f µs a flow); conntrack overruns %v, resyncs %v",
			haBenchFlows, injected.Round(time.Millisecond), took.Round(time.Millisecond), cpuEvents,
			float64(cpuEvents.Microseconds())/haBenchFlows, metricValue(m, "nfqfw_conntrack_overruns_total"), metricValue(m, "nfqfw_conntrack_resyncs_total"))
		b.ReportMetric(float64(cpuEvents.Microseconds())/haBenchFlows, "backup-cpu-µs/flow")

		cpu0 = cpuOf(b, fw)
		t0 = time.Now()
		out, err := haCLI(fw, "promote")
		if err != nil {
			b.Fatalf("nfqfw ha promote: %v: %s", err, out)
		}
		sweep := time.Since(t0)
		cpuSweep := cpuOf(b, fw) - cpu0
		b.Logf("promotion (one sweep of the table): %v, nfqfw CPU %v: %s", sweep.Round(time.Millisecond), cpuSweep, strings.TrimSpace(out))
		b.ReportMetric(sweep.Seconds(), "sweep-s")
		b.ReportMetric(cpuSweep.Seconds(), "sweep-cpu-s")
		fw.kill()
		ns.MustExec("conntrack", "-F")
	}
}

// haCLI runs "nfqfw ha ACTION" against fw's control socket.
func haCLI(fw *firewall, action string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, nfqfwBin, "ha", "-s", fw.socket, action).CombinedOutput()
	return string(out), err
}

// cpuOf returns the user and system CPU time fw's daemon used so far.
func cpuOf(b testing.TB, fw *firewall) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", fw.proc.PID()))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command's closing parenthesis: utime is the
	// 12th, stime the 13th (fields 14 and 15 of proc(5)).
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", fw.proc.PID(), s)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
}

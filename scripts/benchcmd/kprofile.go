package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The established-throughput runs are noisy on a shared VM: the CPU
// iperf3 gets moves by tens of percent between runs. What a gateway's
// ruleset costs an established packet is better seen in a kernel profile:
// the share of the busy CPU samples (idle left out) that fall in
// netfilter (hooks, nftables or x_tables, conntrack). Stolen time and a
// slower CPU scale every function alike, so the share stays put where the
// throughput does not.

// kernelProfile samples every CPU (perf record, cpu-clock) for d, starting
// after skip, and sends netfilter's share of the busy samples in percent on
// the channel it returns; the channel is closed without a value if the
// profile failed.
func (b *bench) kernelProfile(ctx context.Context, skip, d time.Duration, name string) (<-chan float64, error) {
	file := filepath.Join(b.dir, "perf-"+name+".data")
	cmd := exec.CommandContext(ctx, "perf", "record", "-q", "-a", "-e", "cpu-clock", "-F", "4999", "-o", file,
		"-D", strconv.FormatInt(skip.Milliseconds(), 10),
		"--", "sleep", strconv.FormatFloat((skip+d).Seconds(), 'f', 1, 64))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	out := make(chan float64, 1)
	go func() {
		defer close(out)
		if err := cmd.Wait(); err != nil {
			b.logf("perf record %s: %v", name, err)
			return
		}
		share, err := netfilterShare(ctx, file)
		os.Remove(file)
		if err != nil {
			b.logf("perf report %s: %v", name, err)
			return
		}
		out <- share
	}()
	return out, nil
}

// netfilterShare reads a perf.data file's per-symbol profile and returns the
// netfilter symbols' share of the non-idle samples, in percent.
func netfilterShare(ctx context.Context, file string) (float64, error) {
	cmd := exec.CommandContext(ctx, "perf", "report", "-i", file, "--no-children", "--sort", "sym", "--stdio")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	var total, idle, nf float64
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		m := perfRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pct, _ := strconv.ParseFloat(m[1], 64)
		total += pct
		switch sym := m[2]; {
		case idleSym[sym]:
			idle += pct
		case netfilterSym.MatchString(sym):
			nf += pct
		}
	}
	if err := cmd.Wait(); err != nil {
		return 0, err
	}
	if total-idle <= 0 {
		return 0, fmt.Errorf("no busy samples in %s", file)
	}
	return 100 * nf / (total - idle), nil
}

var (
	// perfRow is a line of perf report --sort sym: "  1.23%  [k] symbol".
	perfRow = regexp.MustCompile(`^\s*([\d.]+)%\s+\[[^\]]+\]\s+(\S+)`)
	// netfilterSym are netfilter's functions: the hook walk, nftables and
	// its compat layer, x_tables matches and targets, and conntrack.
	netfilterSym = regexp.MustCompile(`^(nf_|__nf_|nft_|__nft_|xt_|ipt_|ip6t_|ipv4_conntrack|ipv6_conntrack|conntrack_mt|hash_conntrack|tcp_in_window|nf_ct_)`)
	idleSym      = map[string]bool{"pv_native_safe_halt": true, "default_idle": true, "cpuidle_enter_state": true,
		"do_idle": true, "native_safe_halt": true, "acpi_safe_halt": true, "intel_idle": true, "mwait_idle_with_hints": true}
)

// perfAvailable reports whether perf can sample here.
func perfAvailable() error {
	if _, err := exec.LookPath("perf"); err != nil {
		return fmt.Errorf("perf is missing (Debian: linux-perf)")
	}
	out, err := exec.Command("perf", "record", "-q", "-a", "-e", "cpu-clock", "-o", "/dev/null", "--", "true").CombinedOutput()
	if err != nil {
		return fmt.Errorf("perf record does not work here: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

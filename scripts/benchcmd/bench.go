package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nfqfw/nfqfw/engine/nfq"
)

// bench is one benchmark run.
type bench struct {
	nfqfw, minreader, creader, self string
	alt                             string // another nfqfw binary, gateway (f)
	reps                            int
	point                           time.Duration
	queues                          int
	iperfRounds                     int  // established rounds per repetition
	blocks                          bool // run the blocks (false: established phase only)
	kprof                           bool // kernel profile of every established run
	kernelEvents, altKernelEvents   string
	profile                         bool
	out, dir                        string
	stamp                           string

	sb     *sandbox
	reader *proc // the running gateway's reader, nil for (a) and (b)
}

// block is what one gateway measured in one repetition.
type block struct {
	Gateway   string    `json:"gateway"`
	Rep       int       `json:"rep"`
	TCP1      point     `json:"tcp_c1"`
	TCP8      point     `json:"tcp_c8"`
	TCP32     point     `json:"tcp_c32"`
	UDP       point     `json:"udp_c32"`
	UDPFlood  point     `json:"udp_flood"`
	IperfGbps float64   `json:"iperf3_gbit_s"` // mean of IperfRuns
	IperfRuns []float64 `json:"iperf3_runs_gbit_s"`
	// NetfilterPct is netfilter's share of the busy CPU during each
	// established run (-kernel-profile), in percent; NetfilterMedian its
	// median.
	NetfilterPct    []float64 `json:"netfilter_pct_busy_cpu_runs,omitempty"`
	NetfilterMedian float64   `json:"netfilter_pct_busy_cpu,omitempty"`
	CPUSeconds      float64   `json:"reader_cpu_s,omitempty"`
	// Queued is how many packets the reader's queues took during the
	// block (the kernel's id_sequence): a reader that passes more
	// packets spends more CPU in a block of the same length, so its CPU
	// per packet is the fair comparison.
	Queued     uint64  `json:"reader_queued,omitempty"`
	PeakRSSMiB float64 `json:"reader_peak_rss_mib,omitempty"`
}

func runBench(args []string) error {
	b := &bench{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&b.nfqfw, "nfqfw", "bin/nfqfw", "nfqfw `binary`")
	fs.StringVar(&b.minreader, "minreader", "bin/minreader", "minreader `binary`")
	fs.StringVar(&b.creader, "creader", "bin/creader", "C reader `binary` (scripts/benchcmd/creader)")
	fs.StringVar(&b.alt, "alt", "", "another nfqfw `binary`, run as gateway (f) with the same policy (add f to -only): an A/B comparison")
	fs.IntVar(&b.reps, "reps", 3, "repetitions of the A B C D E sequence (medians over them)")
	fs.DurationVar(&b.point, "point", 5*time.Second, "duration of each measured point (5 per block)")
	fs.IntVar(&b.queues, "queues", 1, "nfqfw queue.count")
	fs.StringVar(&b.kernelEvents, "kernel-events", "all", "nfqfw flows.kernel_events: all or minimal")
	fs.StringVar(&b.altKernelEvents, "alt-kernel-events", "", "flows.kernel_events of gateway (f); empty: as -kernel-events")
	fs.BoolVar(&b.profile, "pprof", false, "capture nfqfw CPU and allocation profiles in the first (d) block")
	fs.StringVar(&b.out, "out", "scripts/out", "output `directory` for the JSON (and profiles)")
	only := fs.String("only", "abcde", "gateways to run, in order")
	fs.IntVar(&b.iperfRounds, "iperf-rounds", 2, "established-throughput rounds per repetition (one iperf3 run per gateway each)")
	fs.BoolVar(&b.blocks, "blocks", true, "run the measuring blocks; false: only the established-throughput phase")
	fs.BoolVar(&b.kprof, "kernel-profile", false, "profile the kernel (perf) during each established run: netfilter's share of the busy CPU")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("run needs root (network namespaces, iptables)")
	}
	if b.reps < 1 || b.reps > 50 || b.point < time.Second || b.point > 5*time.Minute || b.iperfRounds < 1 || b.iperfRounds > 100 {
		return errors.New("need 1 <= -reps <= 50, 1s <= -point <= 5m and 1 <= -iperf-rounds <= 100")
	}
	if b.kprof {
		if err := perfAvailable(); err != nil {
			return fmt.Errorf("-kernel-profile: %w", err)
		}
	}
	var err error
	for _, p := range []*string{&b.nfqfw, &b.minreader, &b.creader, &b.alt} {
		if *p == "" {
			continue
		}
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if err := os.MkdirAll(b.out, 0o755); err != nil {
		return err
	}
	b.stamp = time.Now().Format("20060102-150405")
	if b.dir, err = os.MkdirTemp("", "nfqfw-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if b.sb, err = newSandbox(ctx); err != nil {
		return err
	}
	defer b.sb.destroy()
	srv, err := b.sb.start(b.sb.srv, b.self, "serve", "-tcp", srvAddr+":80", "-udp", srvAddr+":53")
	if err != nil {
		return err
	}
	if _, err := b.sb.start(b.sb.srv, "iperf3", "-s", "-p", "443"); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	if srv.exited() {
		return fmt.Errorf("server exited: %v\n%s", srv.err, srv.out.String())
	}

	all := b.gateways()
	var gws []gateway
	for _, k := range *only {
		for _, g := range all {
			if g.key == string(k) {
				gws = append(gws, g)
			}
		}
	}
	perBlock := 5*b.point + 3*time.Second
	nBlocks := len(gws) * b.reps
	if !b.blocks {
		nBlocks = 0
	}
	perRound := time.Duration(len(gws)) * (b.iperfTime() + 3*time.Second)
	b.logf("sandbox %s/%s/%s; %d blocks of about %v, then %d rounds of iperf3 of about %v: about %v in all",
		b.sb.cli, b.sb.gw, b.sb.srv, nBlocks, perBlock, b.iperfRounds*b.reps, perRound,
		time.Duration(nBlocks)*perBlock+time.Duration(b.iperfRounds*b.reps)*perRound)
	var blocks []block
	for rep := 1; rep <= b.reps; rep++ {
		for _, g := range gws {
			if !b.blocks {
				blocks = append(blocks, block{Gateway: g.key, Rep: rep}) // for the established runs
				continue
			}
			bl, err := b.measure(ctx, g, rep)
			if err != nil {
				return fmt.Errorf("(%s) %s, repetition %d: %w", g.key, g.label, rep, err)
			}
			b.logf("(%s) %-7s rep %d: tcp %6.0f %6.0f %6.0f /s  p50 %5.0fus p99 %6.0fus  udp %6.0f /s  new udp %6.0f /s  cpu %.2fs rss %.1f MiB",
				g.key, g.label, rep, bl.TCP1.Rate, bl.TCP8.Rate, bl.TCP32.Rate, bl.TCP1.P50us, bl.TCP1.P99us,
				bl.UDP.Rate, bl.UDPFlood.Rate, bl.CPUSeconds, bl.PeakRSSMiB)
			blocks = append(blocks, bl)
		}
	}
	if err := b.established(ctx, gws, blocks); err != nil {
		return err
	}
	rep := summarize(b, gws, blocks)
	fmt.Print(rep.table())
	f := filepath.Join(b.out, "bench-"+b.stamp+".json")
	j, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(f, append(j, '\n'), 0o644); err != nil {
		return err
	}
	b.logf("wrote %s", f)
	return nil
}

// measure sets gateway g up, runs every point and tears it down.
func (b *bench) measure(ctx context.Context, g gateway, rep int) (block, error) {
	bl := block{Gateway: g.key, Rep: rep}
	p, err := g.up(ctx)
	b.reader = p
	defer func() { g.down(); b.reader = nil }()
	if err != nil {
		return bl, err
	}
	// Short UDP timeouts, so source ports come back as NEW flows.
	b.sb.exec(ctx, b.sb.gw, "sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=1")
	var cpu0 float64
	if p != nil {
		cpu0 = cpuSeconds(p.pid())
	}
	// Warm up, and prove the gateway passes traffic.
	if w, err := b.client(ctx, "tcp", 1, 300*time.Millisecond, false); err != nil || w.Ops == 0 {
		return bl, fmt.Errorf("gateway passes no TCP connection (%v)", err)
	}
	profiling := b.profile && g.key == "d" && rep == 1
	steps := []struct {
		dst     *point
		proto   string
		conc    int
		latency bool
		prof    string
	}{
		{&bl.TCP1, "tcp", 1, true, ""},
		{&bl.TCP8, "tcp", 8, false, ""},
		{&bl.TCP32, "tcp", 32, false, "cpu-tcp32"},
		{&bl.UDP, "udp", 32, false, "cpu-udp32"},
	}
	for _, s := range steps {
		var profDone chan error
		if profiling && s.prof != "" {
			profDone = b.fetchProfile(ctx, fmt.Sprintf("profile?seconds=%d", int(b.point.Seconds())), s.prof)
		}
		if *s.dst, err = b.client(ctx, s.proto, s.conc, b.point, s.latency); err != nil {
			return bl, err
		}
		if profDone != nil {
			if err := <-profDone; err != nil {
				b.logf("profile %s: %v", s.prof, err)
			}
		}
	}
	var floodProf chan error
	if profiling {
		floodProf = b.fetchProfile(ctx, fmt.Sprintf("profile?seconds=%d", int(b.point.Seconds())), "cpu-udp-new-flows")
	}
	if bl.UDPFlood, err = b.udpFlood(ctx); err != nil {
		return bl, err
	}
	if floodProf != nil {
		if err := <-floodProf; err != nil {
			b.logf("profile cpu-udp-new-flows: %v", err)
		}
	}
	if p != nil {
		if p.exited() {
			return bl, fmt.Errorf("reader exited during the block: %v\n%s", p.err, tail(p))
		}
		bl.CPUSeconds = cpuSeconds(p.pid()) - cpu0
		bl.Queued = queuedPackets(p.pid())
		bl.PeakRSSMiB = peakRSSMiB(p.pid())
	}
	if profiling {
		if err := <-b.fetchProfile(ctx, "allocs", "allocs"); err != nil {
			b.logf("profile allocs: %v", err)
		}
	}
	return bl, nil
}

// client runs one measuring point from the client namespace.
func (b *bench) client(ctx context.Context, proto string, conc int, d time.Duration, latency bool) (point, error) {
	b.sb.exec(ctx, b.sb.gw, "conntrack", "-F") // every point starts from an empty table
	port := "80"
	if proto == "udp" {
		port = "53"
	}
	args := []string{b.self, proto, "-addr", srvAddr + ":" + port, "-c", strconv.Itoa(conc), "-d", d.String()}
	if latency {
		args = append(args, "-latency")
	}
	cctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	out, err := b.sb.exec(cctx, b.sb.cli, args...)
	var p point
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return p, fmt.Errorf("client output %q: %w", out, err)
	}
	return p, nil
}

// udpFlood sends UDP datagrams to the server as fast as hping3 can, each
// from the next source port (a NEW flow each, until the ports wrap after
// the gateway's conntrack, whose UDP timeout the driver lowers, has
// forgotten them), and counts the IP packets that reached the server's
// namespace: the new flows per second the gateway let through when its
// queue always holds a backlog, where verdict batching pays. Counting at
// the IP layer leaves the server process, which shares the CPUs, out of it.
func (b *bench) udpFlood(ctx context.Context) (point, error) {
	b.sb.exec(ctx, b.sb.gw, "conntrack", "-F")
	before, err := b.srvIPInReceives(ctx)
	if err != nil {
		return point{}, err
	}
	start := time.Now()
	secs := strconv.FormatFloat(b.point.Seconds(), 'f', 1, 64)
	// timeout ends the flood; hping3 then exits non-zero, which is expected.
	b.sb.exec(ctx, b.sb.cli, "timeout", "-s", "INT", secs, "hping3", "--udp", "-p", "53", "--flood", "-q", "-d", "16", srvAddr)
	d := time.Since(start)
	time.Sleep(200 * time.Millisecond) // let the queue drain
	after, err := b.srvIPInReceives(ctx)
	if err != nil {
		return point{}, err
	}
	return result(after-before, 0, d), nil
}

// srvIPInReceives reads the server namespace's IP InReceives counter.
func (b *bench) srvIPInReceives(ctx context.Context) (int64, error) {
	out, err := b.sb.exec(ctx, b.sb.srv, "cat", "/proc/net/snmp")
	if err != nil {
		return 0, err
	}
	var names []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Ip:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "InReceives" && i < len(f) {
				return strconv.ParseInt(f[i], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no Ip InReceives in /proc/net/snmp")
}

// iperfTime is the length of one iperf3 run: half a point.
func (b *bench) iperfTime() time.Duration {
	return max(time.Second, (b.point / 2).Round(time.Second))
}

// established measures established TCP throughput after the blocks, in
// its own phase: rounds in which each gateway in turn is set up, runs one
// iperf3 connection and is torn down. Nothing a gateway does touches an
// established packet outside the kernel (nfqfw sits at 0% CPU under
// iperf3), so what separates the gateways is small while this VM's shared
// CPUs move iperf3 by up to 40% over a minute. Interleaving the gateways
// every few seconds, instead of once per 30-s block, puts them side by
// side under the same interference; the order turns every round. Each block gets the runs of its
// gateway from its repetition's rounds, and their mean.
func (b *bench) established(ctx context.Context, gws []gateway, blocks []block) error {
	for round := range b.iperfRounds * b.reps {
		rep := round/b.iperfRounds + 1
		order := slices.Clone(gws)
		if round%2 == 1 {
			slices.Reverse(order) // a b c d, d c b a, ...: no gateway always goes first
		}
		for _, g := range order {
			gbps, nf, err := b.iperfOn(ctx, g)
			if err != nil {
				return fmt.Errorf("(%s) %s, iperf3 round %d: %w", g.key, g.label, round+1, err)
			}
			for i := range blocks {
				if bl := &blocks[i]; bl.Gateway == g.key && bl.Rep == rep {
					bl.IperfRuns = append(bl.IperfRuns, gbps)
					bl.IperfGbps = mean(bl.IperfRuns)
					if nf >= 0 {
						bl.NetfilterPct = append(bl.NetfilterPct, nf)
						bl.NetfilterMedian = median(bl.NetfilterPct)
					}
				}
			}
			if nf >= 0 {
				b.logf("(%s) %-7s iperf3 round %d: %5.2f Gbit/s, netfilter %.2f%% of busy CPU", g.key, g.label, round+1, gbps, nf)
			} else {
				b.logf("(%s) %-7s iperf3 round %d: %5.2f Gbit/s", g.key, g.label, round+1, gbps)
			}
		}
	}
	return nil
}

// iperfOn sets gateway g up, measures one iperf3 run through it and tears
// it down. With -kernel-profile it also returns netfilter's share of the
// busy CPU over the run after its first half second (-1 without).
func (b *bench) iperfOn(ctx context.Context, g gateway) (gbps, nf float64, err error) {
	p, err := g.up(ctx)
	b.reader = p
	defer func() { g.down(); b.reader = nil }()
	if err != nil {
		return 0, -1, err
	}
	if w, err := b.client(ctx, "tcp", 1, 300*time.Millisecond, false); err != nil || w.Ops == 0 {
		return 0, -1, fmt.Errorf("gateway passes no TCP connection (%v)", err)
	}
	nf = -1
	var prof <-chan float64
	if b.kprof {
		// Sampling starts half a second in, past the connection's slow start.
		if prof, err = b.kernelProfile(ctx, 500*time.Millisecond, max(b.iperfTime()-time.Second, 500*time.Millisecond), g.key); err != nil {
			return 0, -1, err
		}
	}
	gbps, err = b.iperf(ctx)
	if prof != nil {
		if v, ok := <-prof; ok {
			nf = v
		}
	}
	return gbps, nf, err
}

func mean(vs []float64) float64 {
	var sum float64
	for _, v := range vs {
		sum += v
	}
	return sum / float64(len(vs))
}

// iperf measures one established TCP connection for iperfTime.
func (b *bench) iperf(ctx context.Context) (float64, error) {
	secs := int(b.iperfTime().Seconds())
	cctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	out, err := b.sb.exec(cctx, b.sb.cli, "iperf3", "-c", srvAddr, "-p", "443", "-t", strconv.Itoa(secs), "-J")
	if err != nil {
		return 0, err
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w", err)
	}
	return r.End.SumReceived.BitsPerSecond / 1e9, nil
}

// fetchProfile starts fetching a pprof profile from nfqfw inside the
// gateway namespace.
func (b *bench) fetchProfile(ctx context.Context, path, name string) chan error {
	done := make(chan error, 1)
	file, err := filepath.Abs(filepath.Join(b.out, fmt.Sprintf("pprof-%s-%s.pb.gz", b.stamp, name)))
	if err != nil {
		done <- err
		return done
	}
	go func() {
		_, err := b.sb.exec(ctx, b.sb.gw, b.self, "fetch", "http://"+pprofAddr+"/debug/pprof/"+path, file)
		if err == nil {
			b.logf("profile written: %s", file)
		}
		done <- err
	}()
	return done
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// queuedPackets is the number of packets queued so far to the queues
// bound in pid's network namespace: the sum of their id sequences, which
// start at 0 when a reader binds its queue. 0 when unknown.
func queuedPackets(pid int) uint64 {
	qs, err := nfq.ReadProcStats(fmt.Sprintf("/proc/%d/net/netfilter/nfnetlink_queue", pid))
	if err != nil {
		return 0
	}
	var n uint64
	for _, q := range qs {
		n += uint64(q.IDSequence)
	}
	return n
}

// cpuSeconds is the process's user plus system CPU time.
func cpuSeconds(pid int) float64 {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(s), ')')
	f := strings.Fields(string(s[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// peakRSSMiB is the process's VmHWM.
func peakRSSMiB(pid int) float64 {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(s), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// gateway is one of the compared setups of the gw namespace.
type gateway struct {
	key, label string
	// up installs the setup; it returns the reader process for (c), (d)
	// and (e), nil otherwise.
	up   func(ctx context.Context) (*proc, error)
	down func()
}

const rulesNone = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
`

// statefulForward opens a forward chain of policy DROP that accepts the
// packets of known flows and drops INVALID ones; what follows decides the
// NEW flows.
const statefulForward = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
`

// rulesKernel is the server policy in the kernel alone.
const rulesKernel = statefulForward + `-A FORWARD -p tcp -m conntrack --ctstate NEW -m multiport --dports 22,80,443 -j ACCEPT
-A FORWARD -p udp -m conntrack --ctstate NEW --dport 53 -j ACCEPT
-A FORWARD -p icmp --icmp-type echo-request -j ACCEPT
-A FORWARD -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -j REJECT --reject-with icmp-proto-unreachable
COMMIT
`

// rulesQueue sends every NEW flow to queue 0 (no bypass: nothing passes
// without the reader).
const rulesQueue = statefulForward + `-A FORWARD -m conntrack --ctstate NEW -j NFQUEUE --queue-num 0
COMMIT
`

// nfqfwConfig is the full server policy on the forward path: recent lists
// (port-scan trick), a knock sequence, the SSH guard on port 22 (not
// benchmarked: its limits would trip), the FTP helper, and the services
// the benchmark uses (80 and 443 TCP, 53 UDP). Verbs, in order: the
// number of queues, flows.kernel_events, the run directory twice.
const nfqfwConfig = `zones:
  lan: [veth-gc]
  dmz: [veth-gs]
trusted: [lo]
queue: {number: 0, count: %d, max_len: 4096}
flows:
  timeouts: {udp: 1s, tcp_close: 1s}
  kernel_events: %s
recent:
  - {name: tcp-portscan, size: 1000}
  - {name: udp-portscan, size: 1000}
knocks:
  - name: admin-knock
    steps: [tcp/7000, udp/8000, tcp/9000]
    step_window: 5s
    window: 15s
    open: [{proto: tcp, ports: [2222]}]
    open_for: 30s
guards:
  - name: ssh-bruteforce
    limits: [{count: 3, window: 10s}, {count: 4, window: 30m}]
ftp: {enabled: true, ports: [21]}
input: {policy: drop}
output: {policy: accept}
forward:
  policy: reject
  reject_with: icmp-proto-unreachable
  invalid: drop
  rules:
    - {name: scanner-tcp, proto: tcp, recent: {list: tcp-portscan, op: update, seconds: 60}, action: reject}
    - {name: scanner-udp, proto: udp, recent: {list: udp-portscan, op: update, seconds: 60}, action: reject, reject_with: icmp-port-unreachable}
    - {name: ssh, in: lan, proto: tcp, dport: 22, guard: ssh-bruteforce, action: accept}
    - {name: admin, in: lan, proto: tcp, dport: 2222, knock: admin-knock, action: accept}
    - {name: web, in: lan, proto: tcp, dport: [80, 443], action: accept}
    - {name: dns, in: lan, proto: udp, dport: 53, action: accept}
    - {name: ping, proto: icmp, icmp_type: echo-request, action: accept}
    - {name: closed-tcp, proto: tcp, recent: {list: tcp-portscan, op: set}, action: reject}
    - {name: closed-udp, proto: udp, recent: {list: udp-portscan, op: set}, action: reject, reject_with: icmp-port-unreachable}
control: {socket: %s/nfqfw.sock}
state: {dir: %s/state}
metrics: {listen: ""}
`

func (b *bench) gateways() []gateway {
	restore := func(ctx context.Context, rules string) error {
		f := filepath.Join(b.dir, "rules")
		if err := os.WriteFile(f, []byte(rules), 0o600); err != nil {
			return err
		}
		_, err := b.sb.exec(ctx, b.sb.gw, "iptables-restore", f)
		return err
	}
	none := func() { restore(context.Background(), rulesNone) }
	// queueReader starts an accept-all reader on queue 0, then points the
	// NEW flows at it.
	queueReader := func(ctx context.Context, bin string, flags ...string) (*proc, error) {
		p, err := b.sb.start(b.sb.gw, append([]string{bin, "-queue", "0"}, flags...)...)
		if err != nil {
			return nil, err
		}
		if err := b.waitQueue(ctx, p); err != nil {
			return p, err
		}
		return p, restore(ctx, rulesQueue)
	}
	stopNfqfw := func() {
		if p := b.reader; p != nil {
			if err := p.stop(); err != nil {
				b.logf("nfqfw stopped with %v\n%s", err, tail(p))
			}
		}
		none()
	}
	stopReader := func() {
		if p := b.reader; p != nil {
			p.stop()
		}
		none()
	}
	return []gateway{
		{key: "a", label: "none", up: func(ctx context.Context) (*proc, error) {
			return nil, restore(ctx, rulesNone)
		}, down: none},
		{key: "b", label: "kernel", up: func(ctx context.Context) (*proc, error) {
			return nil, restore(ctx, rulesKernel)
		}, down: none},
		{key: "c", label: "minimal", up: func(ctx context.Context) (*proc, error) {
			return queueReader(ctx, b.minreader)
		}, down: stopReader},
		{key: "d", label: "nfqfw", up: func(ctx context.Context) (*proc, error) {
			return b.startNfqfw(ctx, b.nfqfw, b.kernelEvents)
		}, down: stopNfqfw},
		{key: "e", label: "creader", up: func(ctx context.Context) (*proc, error) {
			return queueReader(ctx, b.creader)
		}, down: stopReader},
		{key: "f", label: "nfqfw-alt", up: func(ctx context.Context) (*proc, error) {
			if b.alt == "" {
				return nil, fmt.Errorf("gateway (f) needs -alt")
			}
			events := b.altKernelEvents
			if events == "" {
				events = b.kernelEvents
			}
			return b.startNfqfw(ctx, b.alt, events)
		}, down: stopNfqfw},
		{key: "g", label: "creader-ct", up: func(ctx context.Context) (*proc, error) {
			return queueReader(ctx, b.creader, "-ctevents")
		}, down: stopReader},
		{key: "h", label: "creader-ctpoll", up: func(ctx context.Context) (*proc, error) {
			return queueReader(ctx, b.creader, "-ctevents", "-ctpoll", "10")
		}, down: stopReader},
	}
}

// startNfqfw runs the nfqfw binary bin with the server policy and
// flows.kernel_events events, and waits until it is ready.
func (b *bench) startNfqfw(ctx context.Context, bin, events string) (*proc, error) {
	cfg := filepath.Join(b.dir, "nfqfw.yaml")
	os.RemoveAll(filepath.Join(b.dir, "state"))
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(nfqfwConfig, b.queues, events, b.dir, b.dir)), 0o600); err != nil {
		return nil, err
	}
	args := []string{bin, "run", "-c", cfg}
	if b.profile {
		args = append(args, "--pprof", pprofAddr)
	}
	p, err := b.sb.start(b.sb.gw, args...)
	if err != nil {
		return nil, err
	}
	return p, b.waitDaemon(ctx, p)
}

const pprofAddr = "127.0.0.1:6061"

// waitQueue waits until an accept-all reader has bound queue 0.
func (b *bench) waitQueue(ctx context.Context, p *proc) error {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if p.exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.out.String())
		}
		out, _ := b.sb.exec(ctx, b.sb.gw, "cat", "/proc/net/netfilter/nfnetlink_queue")
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "0" {
				return nil
			}
		}
	}
	return fmt.Errorf("%s did not bind queue 0 within 10s", p.name)
}

// waitDaemon waits until nfqfw answers on its control socket, which it
// opens once its ruleset is installed.
func (b *bench) waitDaemon(ctx context.Context, p *proc) error {
	sock := filepath.Join(b.dir, "nfqfw.sock")
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if p.exited() {
			return fmt.Errorf("nfqfw exited: %v\n%s", p.err, p.out.String())
		}
		if _, err := run(ctx, b.nfqfw, "state", "--limit", "1", "-s", sock); err == nil {
			return nil
		}
	}
	return fmt.Errorf("nfqfw not ready within 20s")
}

// tail is the end of a finished process's output.
func tail(p *proc) string {
	if !p.exited() {
		return ""
	}
	s := p.out.String()
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

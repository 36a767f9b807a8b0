// Command benchcmd is nfqfw's side-by-side kernel benchmark. It builds the
// reference sandbox (cli -> gw -> srv, forwarded traffic, namespaces named
// per run and deleted at the end) and measures, interleaved (A B C D E A B
// C D E ...), five gateways:
//
//	(a) none      no rules at all
//	(b) kernel    a kernel-only stateful ruleset equal to the server policy
//	(c) minimal   NEW -> NFQUEUE answered by minreader (go-nfqueue, accept
//	              all, one verdict per packet: the Go floor)
//	(d) nfqfw     nfqfw run with the full server policy: recent lists, a
//	              knock sequence, the SSH guard (on port 22, not benchmarked),
//	              the FTP helper, and batched verdicts
//	(e) creader   NEW -> NFQUEUE answered by creader (creader/creader.c:
//	              libnetfilter_queue, one thread blocking in recv(2), 128
//	              bytes copied, one verdict per packet: the fastest peer)
//
// With -alt BIN and f in -only, gateway (f) runs another nfqfw binary with
// the same policy, interleaved with the others: an A/B comparison of two
// builds under the same interference. Gateway (g), creader-ct, is (e) with
// a second thread following the conntrack table's update and destroy
// events as nfqfw does, each read and dropped (creader -ctevents): what
// listening to conntrack costs a reader that does nothing else with it.
// Gateway (h), creader-ctpoll, reads the same events every 10 ms instead
// of being woken by each (creader -ctevents -ctpoll 10).
//
// Each block measures new TCP connections per second at concurrency 1, 8
// and 32 (connect, close with RST: port 80), connect latency p50/p99 at
// concurrency 1, UDP request/response flows per second at concurrency 32
// (each request from its own socket and source port, answered by the
// responder on port 53), new UDP flows per second under a hping3 flood
// (each datagram from the next source port, counted as IP packets reaching
// the server's namespace: the queue's capacity with a backlog, where
// batching pays), and for (c), (d) and (e) the reader's CPU seconds and peak
// RSS. After the blocks, established throughput (iperf3, one connection,
// port 443) is measured in rounds that set each gateway up in turn, so the
// gateways meet the same interference; each gateway's run is also divided
// by (a)'s run of the same round, and the target for established
// throughput is judged on the median of those paired ratios. With
// -kernel-profile, perf samples every CPU during each established run and
// the table gains netfilter's share of the busy CPU, a figure the VM's
// noise moves far less than throughput. Medians over the repetitions go to
// a table (each figure with its ratios to (c), (a), (e) and (b)), with the
// targets for (d), and to scripts/out/bench-<timestamp>.json.
//
// Subcommands (the driver runs the others inside the namespaces):
//
//	benchcmd run [flags]     the benchmark (root)
//	benchcmd serve           TCP accept-and-close server, UDP responder
//	benchcmd tcp | udp       one measuring client point, JSON on stdout
//	benchcmd fetch URL FILE  HTTP GET to a file (pprof inside a namespace)
//
// scripts/bench builds the binaries and runs `benchcmd run`.
package main

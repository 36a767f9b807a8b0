#!/usr/bin/env bash
# demo.sh — nfqfw deciding real traffic in a network-namespace sandbox.
#
#   sudo make demo          installs what is missing, builds, runs this
#   sudo scripts/demo.sh    after `make build`
#
# It builds three namespaces with names of its own (client, gateway, server;
# see scripts/sandbox.sh), runs bin/nfqfw in the gateway with the shipped
# server policy (rules/examples/server.yaml, its uplink set to the
# gateway's interface toward the client, and one added rule that drops
# telnet and logs it), sends a short scripted series of real packets from
# the client and prints what the client saw, then the engine's flow table,
# the per-rule verdict counters, a line of the daemon's log, which refusals
# the kernel made itself and which nfqfw counted, and stops nfqfw to show
# its chains are gone. Everything it creates is removed on exit, also on
# failure or Ctrl-C. The host's own network, firewall and services are not
# touched.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${NFQFW_BIN:-$root/bin/nfqfw} # NFQFW_BIN: another build (the tests' own)
example=$root/rules/examples/server.yaml
name=nfqdemo-$$
cli=$name-cli gw=$name-gw
gw_ip=10.99.1.1
metrics=127.0.0.1:9469 # on the gateway namespace's own loopback

die() {
	echo "demo: $*" >&2
	exit 1
}

((EUID == 0)) || die "needs root (network namespaces, iptables): sudo make demo"
[ -x "$bin" ] || die "$bin not found: run make build first"
for tool in ip iptables-save ip6tables-save hping3 socat nc curl ping timeout; do
	command -v "$tool" >/dev/null || die "$tool not found: run scripts/install-deps.sh (make deps)"
done

work=$(mktemp -d /tmp/nfqfw-demo.XXXXXX)
daemon_pid=
server_pids=()
sandbox_up=false

cleanup() {
	local status=$?
	set +e
	if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
		stop_daemon >/dev/null
	fi
	for pid in "${server_pids[@]}"; do
		kill "$pid" 2>/dev/null
	done
	if $sandbox_up; then
		bash "$root/scripts/sandbox.sh" down "$name" >/dev/null
	fi
	if ((status != 0)) && [ -s "$work/nfqfw.log" ]; then
		echo "--- nfqfw log ---" >&2
		cat "$work/nfqfw.log" >&2
	fi
	rm -rf "$work"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_daemon sends SIGTERM by PID and waits at most 10 s for the exit.
stop_daemon() {
	kill -TERM "$daemon_pid"
	for ((i = 0; i < 100; i++)); do
		kill -0 "$daemon_pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$daemon_pid" 2>/dev/null; then
		echo "nfqfw did not stop within 10 s; killing it" >&2
		kill -KILL "$daemon_pid"
	fi
	wait "$daemon_pid" 2>/dev/null || true
	daemon_pid=
}

bold= plain=
if [ -t 1 ]; then
	bold=$'\033[1m' plain=$'\033[0m'
fi
heading() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }

# show DESCRIPTION RESULT: one line of what the client observed.
show() { printf '  %-48s -> %s\n' "$1" "$2"; }

on_cli() { ip netns exec "$cli" "$@"; }
on_gw() { ip netns exec "$gw" "$@"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# tcp_echo PORT: connect from the client, send a line, expect it echoed.
tcp_echo() {
	local port=$1 start out
	start=$(now_ms)
	if out=$(on_cli timeout 4 bash -c 'exec 3<>"/dev/tcp/$0/$1" && echo hello >&3 && read -r -t 2 line <&3 && echo "$line"' "$gw_ip" "$port" 2>&1); then
		echo "connected, the server echoed \"$out\""
	elif [[ $out == *"Connection refused"* ]]; then
		echo "connection refused after $(($(now_ms) - start)) ms (a TCP reset)"
	elif [[ -z $out ]]; then
		echo "no answer within 4 s (dropped)"
	else
		echo "error: ${out##*: }"
	fi
}

# hping PROBE...: send one packet with hping3 from the client and name
# what came back.
hping() {
	local out icmp='(ICMP [A-Za-z ]+) from'
	out=$(on_cli timeout 5 hping3 -c 1 "$@" "$gw_ip" 2>&1 || true)
	if [[ $out =~ $icmp ]]; then
		echo "${BASH_REMATCH[1]}"
	elif [[ $out =~ flags=([A-Z]+) ]]; then
		case ${BASH_REMATCH[1]} in
		R | RA) echo "answered with a TCP reset (flags=${BASH_REMATCH[1]})" ;;
		*) echo "answered with TCP flags=${BASH_REMATCH[1]}" ;;
		esac
	elif [[ $out == *" 0 packets received"* ]]; then
		echo "no answer (dropped)"
	else
		echo "unexpected: $(echo "$out" | tail -n 1)"
	fi
}

udp_query() {
	local out
	out=$(echo dns-query | on_cli timeout 4 nc -u -w 1 "$gw_ip" "$1" 2>&1 || true)
	if [ -n "$out" ]; then
		echo "answered \"$out\""
	else
		echo "no answer"
	fi
}

ping_gw() {
	local out
	if out=$(on_cli ping -c 1 -W 2 "$gw_ip" 2>&1); then
		echo "reply, $(echo "$out" | grep -o 'time=[0-9.]* ms')"
	else
		echo "no reply"
	fi
}

nfqfw_rules() { on_gw sh -c 'iptables-save; ip6tables-save' | grep -c NFQFW || true; }

heading "1. A sandbox: client — gateway — server, in network namespaces of their own"
bash "$root/scripts/sandbox.sh" up "$name" >/dev/null
sandbox_up=true
echo "  $cli 10.99.1.2 --veth-cg--- veth-gc 10.99.1.1 $gw (nfqfw runs here) ... $name-srv 10.99.2.2"
# Services on the gateway: ssh-like echo on 22, web on 80, dns on udp 53,
# and two that listen but are not in the policy: tcp 8080 and udp 5353.
for spec in TCP-LISTEN:22 TCP-LISTEN:80 TCP-LISTEN:8080; do
	ip netns exec "$gw" socat "$spec,reuseaddr,fork" EXEC:cat >/dev/null 2>&1 &
	server_pids+=($!)
done
for spec in UDP-RECVFROM:53 UDP-RECVFROM:5353; do
	ip netns exec "$gw" socat "$spec,fork" EXEC:cat >/dev/null 2>&1 &
	server_pids+=($!)
done
sleep 0.3
echo "  services listening on the gateway: tcp 22, 80, 8080 and udp 53, 5353"

heading "2. Without a firewall"
show "tcp 8080 (listening)" "$(tcp_echo 8080)"
show "tcp 23 (nothing listens)" "$(hping -S -p 23)"
show "a TCP XMAS probe, FIN+PSH+URG, to port 23" "$(hping -F -P -U -p 23)"

heading "3. Starting nfqfw in the gateway with rules/examples/server.yaml"
# The example names the server's interface veth-sg; here the uplink is the
# gateway's interface toward the client. One rule is added in front of the
# example's: telnet dropped without an answer, and logged.
sed -e 's/\bveth-sg\b/veth-gc/' -e '/^  rules:$/{
a\    - {name: telnet, in: uplink, proto: tcp, dport: 23, action: drop, log: {prefix: "DEMO-DROP "}}  # added by the demo
}' "$example" >"$work/nfqfw.yaml"
grep -q 'name: telnet' "$work/nfqfw.yaml" || die "could not add the telnet rule to $example (no input rules: line)"
cat >>"$work/nfqfw.yaml" <<EOF

# Added by the demo: its own socket, state and metrics.
control: {socket: $work/nfqfw.sock}
state: {dir: $work/state}
metrics: {listen: "$metrics"}
EOF
echo "  policy: open tcp 22, 80, 443 and dns 53 on the uplink, answer ping; telnet (23) dropped and"
echo "  logged (the demo's rule); other tcp -> reset, other udp -> port unreachable, other protocols ->"
echo "  protocol unreachable; ctstate INVALID dropped by the kernel"
# Not through a shell function: $! must be the PID of nfqfw itself (ip
# netns exec replaces itself with the command), so it is stopped by PID.
ip netns exec "$gw" "$bin" run -c "$work/nfqfw.yaml" >"$work/nfqfw.log" 2>&1 &
daemon_pid=$!
ready=false
for ((i = 0; i < 100; i++)); do
	if "$bin" state -s "$work/nfqfw.sock" --limit 1 >/dev/null 2>&1; then
		ready=true
		break
	fi
	kill -0 "$daemon_pid" 2>/dev/null || die "nfqfw exited before it was ready"
	sleep 0.1
done
$ready || die "nfqfw not ready after 10 s"
echo "  nfqfw is running (pid $daemon_pid); its chains hold $(nfqfw_rules) rules (IPv4 + IPv6)"

heading "4. Traffic from the client, as the client saw it"
show "tcp 22 (ssh, allowed)" "$(tcp_echo 22)"
show "tcp 80 (web, allowed)" "$(tcp_echo 80)"
show "udp 53 (dns, allowed)" "$(udp_query 53)"
show "ping (echo request, allowed)" "$(ping_gw)"
show "tcp 8080 (listening, not in the policy)" "$(tcp_echo 8080)"
show "udp 5353 (listening, not in the policy)" "$(hping --udp -p 5353)"
show "GRE (a protocol no rule names)" "$(hping --rawip -H 47 -d 20)"
show "tcp 23 (telnet, dropped and logged)" "$(hping -S -p 23)"
show "a TCP XMAS probe to port 23 (INVALID)" "$(hping -F -P -U -p 23)"

heading "5. nfqfw state: the flows the engine admitted, like conntrack -L"
"$bin" state -s "$work/nfqfw.sock" | sed 's/^/  /'

heading "6. Per-rule verdicts from /metrics (nfqfw_packets_total; rule=\"\" is the chain policy)"
on_gw curl -s --max-time 5 "http://$metrics/metrics" | grep '^nfqfw_packets_total' | sed 's/^/  /' || echo "  (metrics unavailable)"

heading "7. Who refused what"
invalid=$(on_gw iptables -w 5 -vxnL NFQFW-INPUT | awk '/ctstate INVALID/ { n += $1 } END { print n + 0 }')
counted=$(on_gw curl -s --max-time 5 "http://$metrics/metrics" |
	awk '/^nfqfw_packets_total\{action="(drop|reject)/ { n += $NF } END { print n + 0 }')
echo "  The kernel itself: $invalid packet(s) dropped as INVALID by its conntrack (the XMAS probe: no"
echo "  valid TCP state), by nfqfw's kernel rule 'ctstate INVALID -j DROP' (iptables -vnL NFQFW-INPUT"
echo "  counts it). They never reach the queue: no nfqfw counter, log line or flow has them."
echo "  nfqfw: $counted refusal(s) decided in the queue and counted in nfqfw_packets_total"
echo "  (action drop or reject above): telnet, tcp 8080, udp 5353 and GRE."
echo "  One of them as the daemon logged it (log: {prefix: ...} on the telnet rule):"
line=$(grep -m 1 'DEMO-DROP' "$work/nfqfw.log" || true)
echo "    ${line:-(no log line: see $work/nfqfw.log)}"

heading "8. Stopping nfqfw (SIGTERM)"
before=$(nfqfw_rules)
stop_daemon
echo "  NFQFW rules in iptables-save + ip6tables-save: $before before, $(nfqfw_rules) after"
show "tcp 8080 again, without nfqfw" "$(tcp_echo 8080)"

heading "Done"
echo "  The sandbox is being removed. Next: README.md (running it on a real host; make tour,"
echo "  the tour: knocks, scans, bans, FTP, explain and trace), rules/examples/, nfqfw help."

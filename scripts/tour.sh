#!/usr/bin/env bash
# tour.sh — the sandbox README's tour runs in, for humans.
#
#   scripts/tour.sh up         (make tour) build the sandbox "tour", render the
#                              examples for it under tour/, start the listeners
#   scripts/tour.sh run NAME   run nfqfw -c tour/NAME.yaml in tour-srv, stopping
#                              the previous example's daemon; log in tour/NAME.log
#   scripts/tour.sh down       (make tour-down) stop everything, remove it all
#
# The sandbox is scripts/sandbox.sh's: tour-cli 10.99.1.2 — tour-gw — tour-srv
# 10.99.2.2, whose interface veth-sg the examples name as shipped. nfqfw runs
# in tour-srv, one example at a time, each with its own control socket and
# state directory (/run/nfqfw-tour/NAME.sock, /run/nfqfw-tour/NAME/), so
# nothing an earlier example learnt (a knock window, a recent list, a ban)
# carries over. Listeners in tour-srv: tcp 22, 80 and 443 (echo), udp 53
# (echo) and vsftpd on 21 serving tour/ftp/file anonymously. Everything
# lives in the namespaces, tour/ and /run/nfqfw-tour: the host's network,
# firewall and services are not touched. Run as root, from anywhere.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/bin/nfqfw
name=tour
srv=$name-srv
dir=$root/tour
run=/run/nfqfw-tour
examples=(knock portscan ssh-guard ftp-server)

die() {
	echo "tour: $*" >&2
	exit 1
}

usage() {
	sed -n '4,9p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# render writes tour/NAME.yaml: the example as shipped, with its own
# control socket and state directory (and ssh-guard's ban enabled, so the
# tour has a ban to list).
render() {
	local ex=$1 src=$root/rules/examples/$1.yaml out=$dir/$1.yaml
	! grep -qE '^(control|state):' "$src" || die "$src sets control: or state: itself"
	if [ "$ex" = ssh-guard ]; then
		sed 's/^    # ban: /    ban: /' "$src" >"$out"
		grep -q '^    ban: ' "$out" || die "$src has no commented ban: line to enable"
	else
		cp "$src" "$out"
	fi
	cat >>"$out" <<EOF

# Added by scripts/tour.sh: this example's own socket and state.
control: {socket: $run/$ex.sock}
state: {dir: $run/$ex}
EOF
	"$bin" check -c "$out" >/dev/null || die "tour/$ex.yaml does not check (nfqfw check -c tour/$ex.yaml)"
}

# start NAME LOG CMD...: run CMD in tour-srv, detached, its PID in
# /run/nfqfw-tour/NAME.pid and its output in tour/LOG.log.
start() {
	local what=$1 log=$2
	shift 2
	setsid ip netns exec "$srv" "$@" >"$dir/$log.log" 2>&1 </dev/null &
	echo $! >"$run/$what.pid"
}

# stop NAME: SIGTERM to the process of /run/nfqfw-tour/NAME.pid, waiting
# at most 10 s for it to exit.
stop() {
	local pidfile=$run/$1.pid pid i
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	rm -f "$pidfile"
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "tour: $1 (pid $pid) did not stop within 10 s; killing it" >&2
	kill -KILL "$pid" 2>/dev/null || true
}

# wait_tcp PORT: until something listens on PORT in tour-srv (at most 5 s).
wait_tcp() {
	local i
	for ((i = 0; i < 50; i++)); do
		ip netns exec "$srv" bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0
		sleep 0.1
	done
	die "nothing listens on tcp $1 in $srv after 5 s (see tour/*.log)"
}

up() {
	[ -x "$bin" ] || die "$bin not found: run make tour (or make build)"
	for tool in socat vsftpd nc nmap knock curl; do
		command -v "$tool" >/dev/null || die "$tool not found: run make tour (scripts/install-deps.sh tour)"
	done
	ip netns list | grep -q "^$srv\b" && die "the sandbox $name exists already: make tour-down first"
	rm -rf "$dir" "$run"
	mkdir -p "$dir" "$dir/ftp" "$run/vsftpd-empty"
	chmod 0755 "$dir" "$dir/ftp"
	for ex in "${examples[@]}"; do
		render "$ex"
	done
	bash "$root/scripts/sandbox.sh" up "$name" >/dev/null
	trap 'echo "tour: up failed, tearing down" >&2; down >/dev/null 2>&1' ERR

	for port in 22 80 443; do
		start "tcp$port" "tcp$port" socat "TCP-LISTEN:$port,reuseaddr,fork" EXEC:cat
	done
	start udp53 udp53 socat UDP-RECVFROM:53,fork EXEC:cat
	echo "hello from the tour's FTP server" >"$dir/ftp/file"
	cat >"$dir/vsftpd.conf" <<EOF
listen=YES
background=NO
anonymous_enable=YES
anon_root=$dir/ftp
local_enable=NO
write_enable=NO
pasv_enable=YES
seccomp_sandbox=NO
secure_chroot_dir=$run/vsftpd-empty
xferlog_enable=NO
EOF
	start ftp vsftpd vsftpd "$dir/vsftpd.conf"
	for port in 21 22 80 443; do
		wait_tcp "$port"
	done
	trap - ERR
	echo "sandbox $name: $name-cli 10.99.1.2 — $name-gw — $srv 10.99.2.2 (veth-sg)"
	echo "listening in $srv: tcp 22, 80, 443 (echo), udp 53 (echo), ftp 21 (vsftpd, anonymous: file)"
	echo "configs: $(for ex in "${examples[@]}"; do printf 'tour/%s.yaml ' "$ex"; done)(own socket and state each)"
	echo "tour ready: scripts/tour.sh run NAME starts one; make tour-down removes it all"
}

run_example() {
	local ex=$1 i pid
	[ -f "$dir/$ex.yaml" ] || die "no tour/$ex.yaml: one of ${examples[*]} (after make tour)"
	stop nfqfw
	start nfqfw "$ex" "$bin" run -c "$dir/$ex.yaml"
	pid=$(cat "$run/nfqfw.pid")
	for ((i = 0; i < 100; i++)); do
		if "$bin" health -c "$dir/$ex.yaml" >/dev/null 2>&1; then
			echo "nfqfw run -c tour/$ex.yaml: running in $srv (pid $pid), log in tour/$ex.log"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || die "nfqfw exited: $(tail -n 3 "$dir/$ex.log")"
		sleep 0.1
	done
	die "nfqfw not ready after 10 s: see tour/$ex.log"
}

down() {
	stop nfqfw
	for what in tcp22 tcp80 tcp443 udp53 ftp; do
		stop "$what"
	done
	bash "$root/scripts/sandbox.sh" down "$name"
	rm -rf "$dir" "$run"
	echo "tour removed"
}

((EUID == 0)) || die "needs root (network namespaces, iptables)"
case "${1:-}" in
up) up ;;
run) (($# == 2)) || usage && run_example "$2" ;;
down) down ;;
*) usage ;;
esac

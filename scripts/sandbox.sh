#!/usr/bin/env bash
# sandbox.sh — the reference network-namespace sandbox, for humans.
#
#   scripts/sandbox.sh up NAME              build NAME-cli, NAME-gw, NAME-srv
#   scripts/sandbox.sh down NAME            stop their processes, delete them
#   scripts/sandbox.sh exec NAME ROLE cmd…  run cmd in NAME-ROLE (cli|gw|srv)
#   scripts/sandbox.sh status NAME          addresses and routes of each namespace
#
# Layout (the same as the Go package scripts/sandbox builds for tests):
#
#   cli 10.99.1.2 fd99:1::2  veth-cg —— veth-gc  10.99.1.1 fd99:1::1
#                                                 gw  (forwarding on)
#   srv 10.99.2.2 fd99:2::2  veth-sg —— veth-gs  10.99.2.1 fd99:2::1
#
# cli and srv route through gw. Veth pairs are created inside their
# namespaces, so nothing appears in the host's namespace and the host's
# network and firewall are never touched. A failed `up` tears down what it
# built. Run as root.
set -euo pipefail

ROLES=(cli gw srv)

usage() {
	sed -n '3,8p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

die() {
	echo "sandbox: $*" >&2
	exit 1
}

check_name() {
	[[ "$1" =~ ^[a-z0-9][a-z0-9-]{0,19}$ ]] || die "name '$1' must be 1-20 of [a-z0-9-]"
}

exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

down() {
	local name=$1 ns pid
	for role in "${ROLES[@]}"; do
		ns="$name-$role"
		exists "$ns" || continue
		# Processes left inside (started through `exec`) are this
		# sandbox's own: stop them by PID before deleting the namespace.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill "$pid" 2>/dev/null || true
		done
		ip netns del "$ns"
		echo "deleted $ns"
	done
}

up() {
	local name=$1
	for role in "${ROLES[@]}"; do
		! exists "$name-$role" || die "$name-$role already exists (scripts/sandbox.sh down $name)"
	done
	# From here on, any failure removes what was built.
	trap 'echo "sandbox: up $name failed, tearing down" >&2; down "$name"' ERR
	local cli="$name-cli" gw="$name-gw" srv="$name-srv"
	for role in "${ROLES[@]}"; do
		ip netns add "$name-$role"
		ip -n "$name-$role" link set lo up
		# No duplicate address detection: addresses usable at once.
		ip netns exec "$name-$role" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
	done
	ip link add veth-cg netns "$cli" type veth peer name veth-gc netns "$gw"
	ip link add veth-sg netns "$srv" type veth peer name veth-gs netns "$gw"

	ip -n "$cli" addr add 10.99.1.2/24 dev veth-cg
	ip -n "$cli" -6 addr add fd99:1::2/64 dev veth-cg nodad
	ip -n "$gw" addr add 10.99.1.1/24 dev veth-gc
	ip -n "$gw" -6 addr add fd99:1::1/64 dev veth-gc nodad
	ip -n "$gw" addr add 10.99.2.1/24 dev veth-gs
	ip -n "$gw" -6 addr add fd99:2::1/64 dev veth-gs nodad
	ip -n "$srv" addr add 10.99.2.2/24 dev veth-sg
	ip -n "$srv" -6 addr add fd99:2::2/64 dev veth-sg nodad
	ip -n "$cli" link set veth-cg up
	ip -n "$gw" link set veth-gc up
	ip -n "$gw" link set veth-gs up
	ip -n "$srv" link set veth-sg up

	ip -n "$cli" route add default via 10.99.1.1
	ip -n "$cli" -6 route add default via fd99:1::1
	ip -n "$srv" route add default via 10.99.2.1
	ip -n "$srv" -6 route add default via fd99:2::1
	ip netns exec "$gw" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

	# The kernel activates a veth up to a second after its carrier comes
	# up and drops what is sent before: wait (bounded) so the first
	# packet of a demo is not lost.
	local link ns i
	for pair in "$cli veth-cg" "$gw veth-gc" "$gw veth-gs" "$srv veth-sg"; do
		read -r ns link <<<"$pair"
		for ((i = 0; i < 250; i++)); do
			ip -n "$ns" -o link show dev "$link" | grep -q "state UP" && break
			sleep 0.02
		done
		ip -n "$ns" -o link show dev "$link" | grep -q "state UP" || die "$ns: $link not up after 5 s"
	done
	trap - ERR
	echo "sandbox $name up: $cli (10.99.1.2, fd99:1::2) — $gw — $srv (10.99.2.2, fd99:2::2)"
	echo "try: $0 exec $name srv nc -l 8080 & $0 exec $name cli nc -vz 10.99.2.2 8080"
}

status() {
	local name=$1
	for role in "${ROLES[@]}"; do
		exists "$name-$role" || die "$name-$role does not exist"
		echo "== $name-$role"
		ip -n "$name-$role" -br addr
		ip -n "$name-$role" route
		ip -n "$name-$role" -6 route | grep -v '^fe80' || true
	done
}

(($# >= 2)) || usage
((EUID == 0)) || die "needs root (network namespaces)"
cmd=$1 name=$2
shift 2
check_name "$name"
case "$cmd" in
up) up "$name" ;;
down) down "$name" ;;
status) status "$name" ;;
exec)
	(($# >= 2)) || usage
	role=$1
	shift
	[[ " ${ROLES[*]} " == *" $role "* ]] || die "role '$role' is not one of ${ROLES[*]}"
	exists "$name-$role" || die "$name-$role does not exist (scripts/sandbox.sh up $name)"
	exec ip netns exec "$name-$role" "$@"
	;;
*) usage ;;
esac

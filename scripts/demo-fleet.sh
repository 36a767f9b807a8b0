#!/usr/bin/env bash
# demo-fleet.sh — a ban crossing a fleet of three nfqfw gateways.
#
#   sudo make demo-fleet        builds, then runs this
#   sudo scripts/demo-fleet.sh  after `make build` (nats-server installed:
#                               scripts/install-deps.sh test)
#
# It builds network namespaces of its own around a router: three NATS
# nodes forming a JetStream cluster (rules/examples/fleet/nats-n*.conf,
# their addresses changed), three gateways running bin/nfqfw with
# rules/examples/fleet/gw-*.yaml (interface, servers and passwords
# changed), and an attacker. The attacker opens ssh connections to gateway
# gw-a until its guard bans it; the demo then shows the ban in the kernel
# ban set of all three gateways and `nfqfw bans list` on gw-c naming gw-a
# as its origin, and the fleet line of `nfqfw health`. Everything it
# creates is removed on exit, also on failure or Ctrl-C; the host's own
# network and firewall are not touched.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${NFQFW_BIN:-$root/bin/nfqfw}
nats=${NATS_SERVER:-$(command -v nats-server || echo "$(go env GOPATH 2>/dev/null)/bin/nats-server")}
name=nfqfleet-$$
nodes=(n1 n2 n3)
gws=(a b c)

die() {
	echo "demo-fleet: $*" >&2
	exit 1
}

((EUID == 0)) || die "needs root (network namespaces, iptables): sudo make demo-fleet"
[ -x "$bin" ] || die "$bin not found: run make build first"
[ -x "$nats" ] || die "nats-server not found: run scripts/install-deps.sh test"
for tool in ip ipset nc timeout; do
	command -v "$tool" >/dev/null || die "$tool not found: run scripts/install-deps.sh"
done

work=$(mktemp -d /tmp/nfqfw-demo-fleet.XXXXXX)
pids=()
namespaces=()

cleanup() {
	local status=$?
	set +e
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${pids[@]}"; do
		timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null
	done
	for ns in "${namespaces[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	if ((status != 0)); then
		for f in "$work"/*.log; do
			[ -s "$f" ] && { echo "--- $f ---" >&2; tail -n 20 "$f" >&2; }
		done
	fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# One LAN per namespace, 10.95.<i>.0/24, the router .1, the namespace .2.
router=$name-r
ip netns add "$router"
namespaces+=("$router")
ip -n "$router" link set lo up
ip netns exec "$router" sysctl -qw net.ipv4.ip_forward=1
i=0
declare -A addr link
for role in "${nodes[@]}" "${gws[@]/#/gw-}" atk; do
	i=$((i + 1))
	ns=$name-$role
	ip netns add "$ns"
	namespaces+=("$ns")
	ip -n "$ns" link set lo up
	ip -n "$router" link add "r$i" type veth peer name "eth0" netns "$ns"
	ip -n "$router" addr add "10.95.$i.1/24" dev "r$i"
	ip -n "$router" link set "r$i" up
	ip -n "$ns" addr add "10.95.$i.2/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via "10.95.$i.1"
	addr[$role]=10.95.$i.2
	link[$role]=r$i
done

echo "== a 3-node JetStream cluster: ${nodes[*]}"
for n in "${nodes[@]}"; do
	conf=$work/nats-$n.conf
	sed -e "s|/var/lib/nats|$work/js-$n|" \
		-e "s|10.0.0.11|${addr[n1]}|g; s|10.0.0.12|${addr[n2]}|g; s|10.0.0.13|${addr[n3]}|g" \
		"$root/rules/examples/fleet/nats-$n.conf" >"$conf"
	ip netns exec "$name-$n" "$nats" -c "$conf" >"$work/nats-$n.log" 2>&1 &
	pids+=($!)
done
for n in "${nodes[@]}"; do
	for _ in $(seq 100); do
		ip netns exec "$name-$n" timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8222 && printf "GET /healthz HTTP/1.0\r\n\r\n" >&3 && grep -q "\"ok\"" <&3' 2>/dev/null && break
		sleep 0.2
	done
done

echo "== three gateways: gw-a gw-b gw-c (rules/examples/fleet/gw-*.yaml)"
for g in "${gws[@]}"; do
	gw=gw-$g
	umask 077
	printf '%s\n' "change-me-$g" >"$work/$gw.pass"
	sed -e "s|10.0.0.11|${addr[n1]}|g; s|10.0.0.12|${addr[n2]}|g; s|10.0.0.13|${addr[n3]}|g" \
		-e "s|/etc/nfqfw/fleet.pass|$work/$gw.pass|" "$root/rules/examples/fleet/$gw.yaml" >"$work/$gw.yaml"
	cat >>"$work/$gw.yaml" <<EOC
control: {socket: $work/$gw.sock}
state: {dir: $work/state-$gw}
metrics: {listen: ""}
EOC
	ip netns exec "$name-$gw" nc -lk 22 >/dev/null 2>&1 &
	pids+=($!)
	ip netns exec "$name-$gw" "$bin" run -c "$work/$gw.yaml" >"$work/$gw.log" 2>&1 &
	pids+=($!)
done
for g in "${gws[@]}"; do
	for _ in $(seq 150); do
		out=$("$bin" health -s "$work/gw-$g.sock" 2>/dev/null) && grep -q "link up" <<<"$out" && break
		sleep 0.2
	done
	"$bin" health -s "$work/gw-$g.sock" | sed -n 's/^ *fleet:/gw-'"$g"' fleet:/p'
done

echo "== the attacker (${addr[atk]}) opens ssh connections to gw-a until its guard bans it"
for n in 1 2 3 4 5 6; do
	if ip netns exec "$name-atk" timeout 1 nc -z "${addr[gw-a]}" 22 2>/dev/null; then r=connected; else r="no answer"; fi
	echo "   connection $n: $r"
done
start=$(date +%s%N)
for _ in $(seq 500); do
	ip netns exec "$name-gw-c" ipset test nfqfw-bannet4 "${addr[atk]}" 2>/dev/null && break
	sleep 0.01
done
echo "   in gw-c's kernel ban set ($((($(date +%s%N) - start) / 1000000)) ms of polling after the last attempt)"

echo "== the kernel ban set on each gateway"
for g in "${gws[@]}"; do
	echo "gw-$g: $(ip netns exec "$name-gw-$g" ipset list nfqfw-bannet4 | sed -n '/^Members:/,$p' | tail -n +2 | tr '\n' ' ')"
done
echo "== nfqfw bans list on gw-c"
"$bin" bans list -s "$work/gw-c.sock"
echo "== gw-c: nfqfw health"
"$bin" health -s "$work/gw-c.sock" || true

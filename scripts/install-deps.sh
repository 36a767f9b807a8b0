#!/usr/bin/env bash
# install-deps.sh — install the Debian packages one of nfqfw's jobs needs,
# and change nothing else on the host. Idempotent: installs only missing
# packages, and skips `apt-get update` when nothing is missing. Run as root.
#
#   scripts/install-deps.sh [--check] [demo|tour|test]
#
#   demo   what `make demo` drives: iptables, iproute2, hping3, socat, nc, curl
#   tour   demo's, plus the README tour's clients and its FTP server
#          (nmap, the knock client, vsftpd run inside the sandbox)
#   test   (the default; `make deps`, CI) tour's, plus what the end-to-end
#          tests and the benchmark use (conntrack, ipset, lftp, prometheus
#          and promtool, iperf3, the C NFQUEUE reader's compiler and headers,
#          keepalived and conntrackd for the gateway pair; and nats-server,
#          built with go install)
#   --check  only report; exit 1 if anything is missing
#
# Packages are installed without their recommendations. A package that
# ships a service (vsftpd, knockd, prometheus, keepalived, conntrackd) is installed without it
# starting: a policy-rc.d answering 101 ("action forbidden") is in place
# while apt runs, and a service its installation enabled (a systemd
# .wants link, a SysV S link) is disabled again, so nothing listens on the
# host, now or after a reboot: the demo and the tests start the daemons
# they use inside their own network namespaces. When another apt or dpkg
# holds the package lock (common on a fresh cloud machine), it waits for
# it, at most LOCK_WAIT seconds (default 600), saying so.
set -euo pipefail

DEMO=(
	iptables iproute2 iputils-ping procps # kernel plumbing the daemon and the demo drive
	hping3 socat netcat-openbsd curl      # the demo's probes and listeners
)
TOUR=(
	"${DEMO[@]}"
	nmap   # the port scan of the tour
	knockd # its `knock` client (the knockd service stays disabled)
	vsftpd # the FTP server the tour runs in its sandbox (the service stays disabled)
)
TEST=(
	"${TOUR[@]}"
	conntrack ipset                       # the tests read the kernel's tables
	lftp                                  # a second FTP client (active and passive modes)
	prometheus                            # promtool and a server scraping /metrics (the service stays disabled)
	iperf3                                # the benchmark's traffic
	gcc pkg-config libnetfilter-queue-dev # the benchmark's C NFQUEUE reader (scripts/benchcmd/creader/creader.c)
	keepalived conntrackd                 # the gateway pair's VRRP and flow sync, run by the HA test in its namespaces (both services stay disabled)
)

# Where the host's service links and policy-rc.d live (another root only
# for the tests of this script).
root_dir=${DEPS_ROOT:-}
policy_rc=$root_dir/usr/sbin/policy-rc.d
lock_wait=${LOCK_WAIT:-600}

usage() {
	sed -n '6,16p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

check_only=false
profile=test
for arg in "$@"; do
	case "$arg" in
	--check) check_only=true ;;
	demo | tour | test) profile=$arg ;;
	*) usage ;;
	esac
done
case $profile in
demo) packages=("${DEMO[@]}") ;;
tour) packages=("${TOUR[@]}") ;;
test) packages=("${TEST[@]}") ;;
esac

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# service_links lists the links that enable a service: systemd's .wants and
# .requires links and SysV's start links.
service_links() {
	find "$root_dir/etc/systemd/system" -mindepth 2 -maxdepth 2 -type l \( -path '*.wants/*' -o -path '*.requires/*' \) 2>/dev/null
	find "$root_dir"/etc/rc[0-6S].d -maxdepth 1 -type l -name 'S*' 2>/dev/null
	true
}

# disable_link undoes one enabling link the installation made, as an
# administrator would (so a later upgrade of the package keeps it disabled).
disable_link() {
	local link=$1 unit name
	case $link in
	*/etc/systemd/system/*)
		unit=$(basename "$link")
		if [ -z "$root_dir" ] && command -v systemctl >/dev/null; then
			systemctl --quiet disable "$unit" 2>/dev/null || true
		fi
		rm -f "$link"
		echo "  $unit: enabled by its package, disabled again"
		;;
	*)
		name=$(basename "$link" | sed -E 's/^S[0-9]*//')
		if [ -z "$root_dir" ] && command -v update-rc.d >/dev/null; then
			update-rc.d "$name" disable >/dev/null 2>&1 || true
		fi
		rm -f "$link"
		echo "  $name (SysV init script): enabled by its package, disabled again"
		;;
	esac
}

# apt runs apt-get with its arguments. While another process holds apt's or
# dpkg's lock it waits (every 5 s, at most lock_wait seconds in all),
# saying who holds it, instead of failing.
apt() {
	local err deadline=$((SECONDS + lock_wait)) said=false
	err=$(mktemp)
	while :; do
		if apt-get "$@" 2>"$err"; then
			rm -f "$err"
			return 0
		fi
		if ! grep -qE 'Could not get lock|Unable to lock|Unable to acquire the dpkg frontend lock' "$err"; then
			cat "$err" >&2
			rm -f "$err"
			return 1
		fi
		if ((SECONDS >= deadline)); then
			cat "$err" >&2
			echo "the package lock is still held after ${lock_wait} s; try again when the other installation is done (LOCK_WAIT=seconds waits longer)" >&2
			rm -f "$err"
			return 1
		fi
		if ! $said; then
			echo "waiting for the package lock ($(grep -oE 'held by process [0-9]+( \([^)]*\))?' "$err" | head -n1 || echo "another apt or dpkg")), at most ${lock_wait} s..." >&2
			said=true
		fi
		sleep 5
	done
}

# install_quietly installs packages with no service starting, and disables
# the services their installation enabled.
install_quietly() {
	local saved=
	declare -A before=()
	local link
	while read -r link; do
		[ -n "$link" ] && before[$link]=1
	done < <(service_links)

	if [ -e "$policy_rc" ] || [ -L "$policy_rc" ]; then
		saved=$(mktemp "$policy_rc.nfqfw-deps.XXXXXX")
		mv -f "$policy_rc" "$saved"
	fi
	restore_policy_rc() {
		rm -f "$policy_rc"
		if [ -n "$saved" ]; then
			mv -f "$saved" "$policy_rc"
		fi
	}
	trap restore_policy_rc EXIT
	trap 'exit 130' INT TERM
	mkdir -p "$(dirname "$policy_rc")"
	printf '#!/bin/sh\n# Placed by nfqfw scripts/install-deps.sh while it installs packages: no service starts.\nexit 101\n' >"$policy_rc"
	chmod 0755 "$policy_rc"

	local status=0
	export DEBIAN_FRONTEND=noninteractive
	apt update -q && apt install -y -q --no-install-recommends "$@" || status=$?
	restore_policy_rc
	trap - EXIT INT TERM

	local disabled=0 service
	declare -A seen=()
	while read -r link; do
		[ -n "$link" ] && [ -z "${before[$link]:-}" ] || continue
		service=$(basename "$link" | sed -E 's/^S[0-9]*//')
		if [ -n "${seen[$service]:-}" ]; then
			rm -f "$link" # another runlevel's link of a service already disabled
			continue
		fi
		seen[$service]=1
		disable_link "$link"
		disabled=$((disabled + 1))
	done < <(service_links)
	((disabled > 0)) || echo "services: none enabled or started by the installation"
	return $status
}

missing=()
for p in "${packages[@]}"; do
	installed "$p" || missing+=("$p")
done

status=0
if ((${#missing[@]} == 0)); then
	echo "packages ($profile): all ${#packages[@]} present"
elif $check_only; then
	echo "packages missing ($profile): ${missing[*]}" >&2
	status=1
else
	if ((EUID != 0)); then
		echo "packages missing (${missing[*]}); run as root to install them" >&2
		exit 1
	fi
	echo "installing ($profile, no recommended packages, no service started): ${missing[*]}"
	install_quietly "${missing[@]}"
fi

# The Go toolchain cannot be downloaded here: it must already be installed,
# at least at the version go.mod names.
root=$(cd "$(dirname "$0")/.." && pwd)
want=$(awk '$1 == "go" { print $2; exit }' "$root/go.mod")
export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
	echo "go: not found (need go $want or newer in PATH or /usr/local/go/bin)" >&2
	exit 1
fi
have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]; then
	echo "go: have $have, go.mod needs $want or newer" >&2
	exit 1
fi
echo "go: $have (go.mod needs $want)"

# nats-server, the JetStream server of the fleet tests, built with go
# install at a pinned version into $(go env GOPATH)/bin (not on apt's
# list: Debian's lags behind the client's JetStream API). A program, not a
# service: the tests start it themselves. The demo and the tour do not use it.
NATS_SERVER_VERSION=v2.15.3
nats_bin="$(go env GOPATH)/bin/nats-server"
if [ "$profile" != test ]; then
	:
elif [ -x "$nats_bin" ] && "$nats_bin" --version 2>/dev/null | grep -q "${NATS_SERVER_VERSION}"; then
	echo "nats-server: ${NATS_SERVER_VERSION} ($nats_bin)"
elif $check_only; then
	echo "nats-server ${NATS_SERVER_VERSION} missing ($nats_bin)" >&2
	status=1
else
	echo "installing nats-server ${NATS_SERVER_VERSION} with go install"
	(cd / && GOFLAGS= go install "github.com/nats-io/nats-server/v2@${NATS_SERVER_VERSION}")
fi
exit $status

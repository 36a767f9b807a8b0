#!/usr/bin/env bash
# install-deps.sh — install what nfqfw's build, tests and sandbox need on a
# Debian machine. Idempotent: installs only missing packages, and skips
# `apt-get update` when nothing is missing. Run as root.
#
#   scripts/install-deps.sh          install missing packages, check Go
#   scripts/install-deps.sh --check  only report; exit 1 if anything is missing
set -euo pipefail

PACKAGES=(
	iptables conntrack ipset iproute2 iputils-ping procps # kernel plumbing the daemon and tests drive
	nmap hping3 socat netcat-openbsd curl iperf3 # traffic for e2e tests and benchmarks
	vsftpd lftp # FTP server and client (active/passive, v4/v6)
	knockd # its `knock` client for the port-knocking setup
	prometheus # promtool and a server for the metrics
	tshark # packet captures while debugging e2e tests
	gcc pkg-config libnetfilter-queue-dev # the benchmark's C NFQUEUE reader (scripts/benchcmd/creader/creader.c)
)

check_only=false
case "${1:-}" in
--check) check_only=true ;;
"") ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done

status=0
if ((${#missing[@]} == 0)); then
	echo "packages: all ${#PACKAGES[@]} present"
elif $check_only; then
	echo "packages missing: ${missing[*]}" >&2
	status=1
else
	if ((EUID != 0)); then
		echo "packages missing (${missing[*]}); run as root to install them" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q "${missing[@]}"
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

# nats-server, the JetStream server of the fleet tests and demo, built with
# go install at a pinned version into $(go env GOPATH)/bin (not on apt's
# list: Debian's lags behind the client's JetStream API).
NATS_SERVER_VERSION=v2.15.3
nats_bin="$(go env GOPATH)/bin/nats-server"
if [ -x "$nats_bin" ] && "$nats_bin" --version 2>/dev/null | grep -q "${NATS_SERVER_VERSION}"; then
	echo "nats-server: ${NATS_SERVER_VERSION} ($nats_bin)"
elif $check_only; then
	echo "nats-server ${NATS_SERVER_VERSION} missing ($nats_bin)" >&2
	status=1
else
	echo "installing nats-server ${NATS_SERVER_VERSION} with go install"
	(cd / && GOFLAGS= go install "github.com/nats-io/nats-server/v2@${NATS_SERVER_VERSION}")
fi
exit $status

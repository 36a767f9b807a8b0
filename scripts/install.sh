#!/usr/bin/env bash
# Install nfqfw on this host: the binary, the systemd unit and the example
# configs. It never writes over an existing config, and it refuses to enable
# the unit without a config that "nfqfw check" accepts: a firewall that
# starts at boot with a wrong policy can lock you out of a remote host.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/install.sh [--binary FILE] [--config FILE] [--enable] [--start] [--root DIR] [--any-host]

Installs (as root):
  /usr/local/sbin/nfqfw                     the binary (default: bin/nfqfw, from "make build")
  /etc/systemd/system/nfqfw.service         the unit (scripts/systemd/nfqfw.service)
  /usr/local/share/doc/nfqfw/examples/      every example config (rules/examples)
  /etc/nfqfw/nfqfw.yaml.example             the server example, to copy and edit
  /etc/nfqfw/nfqfw.yaml                     only with --config FILE, only if absent

Options:
  --binary FILE   the nfqfw binary to install
  --config FILE   install FILE as /etc/nfqfw/nfqfw.yaml (after "nfqfw check"
                  accepts it) unless a config is already there
  --enable        enable nfqfw.service at boot; refused unless
                  /etc/nfqfw/nfqfw.yaml exists and "nfqfw check --strict-host"
                  accepts it: every interface it names is present on this
                  host (or declared in interfaces.dynamic)
  --start         also start it now (implies --enable)
  --root DIR      install under DIR instead of / (staging, images, tests);
                  enabling then uses "systemctl --root", nothing is started
  --any-host      with --enable: the config is for another machine (an image
                  built here), so skip the check of its interface names
  -h, --help      this help
EOF
}

here=$(cd "$(dirname "$0")/.." && pwd)
binary="$here/bin/nfqfw"
config=""
enable=0
start=0
anyhost=0
root="/"

while [ $# -gt 0 ]; do
	case "$1" in
	--binary) binary=${2:?--binary needs a file}; shift 2 ;;
	--config) config=${2:?--config needs a file}; shift 2 ;;
	--enable) enable=1; shift ;;
	--start) enable=1; start=1; shift ;;
	--root) root=${2:?--root needs a directory}; shift 2 ;;
	--any-host) anyhost=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done

die() {
	echo "install.sh: $*" >&2
	exit 1
}

lockout_warning() {
	cat <<'EOF'

  *** Remote lockout warning ***
  nfqfw decides every NEW connection with the policy in /etc/nfqfw/nfqfw.yaml.
  On a host you reach over the network, that config must admit your own
  management connection BEFORE the firewall starts: put your address in
  "allowlist:" and keep a rule for SSH. Established connections (this
  session) survive, new ones are decided by the policy, and the enabled
  unit applies it again at every boot.
  Try it first from a console, or with a way back:
      sudo nfqfw run -c /etc/nfqfw/nfqfw.yaml --confirm 5m
  then open a NEW ssh connection and run "sudo nfqfw confirm" from it.
EOF
	if [ -n "${SSH_CONNECTION:-}" ]; then
		echo "  You are connected over SSH from ${SSH_CONNECTION%% *}: make sure the config admits it."
	fi
	echo
}

root=${root%/}
[ -n "$root" ] || root=""
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
	die "run as root (or stage into a directory with --root DIR)"
fi
[ -f "$binary" ] || die "no binary at $binary: run \"make build\" first or pass --binary FILE"
[ -x "$binary" ] || die "$binary is not executable"
"$binary" version >/dev/null || die "$binary does not run on this host"

sbin="$root/usr/local/sbin"
unitdir="$root/etc/systemd/system"
docdir="$root/usr/local/share/doc/nfqfw/examples"
etc="$root/etc/nfqfw"
cfg="$etc/nfqfw.yaml"

# The config of a unit enabled here must name interfaces this host has: a
# rule on an interface that does not exist never matches (a typo, or an
# example's interface left unchanged), and "nfqfw run" refuses it.
check_flags=()
if [ "$enable" = 1 ] && [ "$anyhost" = 0 ]; then
	check_flags=(--strict-host)
fi

# Refuse early, before anything is installed.
if [ "$enable" = 1 ] && [ -z "$config" ] && [ ! -e "$cfg" ]; then
	lockout_warning
	die "refusing to enable nfqfw.service: no config at /etc/nfqfw/nfqfw.yaml (pass --config FILE, or install without --enable, copy /etc/nfqfw/nfqfw.yaml.example to /etc/nfqfw/nfqfw.yaml and edit it); nothing installed"
fi
# Validate a config before anything is installed.
if [ -n "$config" ]; then
	[ -f "$config" ] || die "--config $config: no such file"
	"$binary" check "${check_flags[@]}" -c "$config" || die "--config $config: rejected by nfqfw check (nothing installed)"
fi

install -d -m 0755 "$sbin" "$unitdir" "$docdir"
install -d -m 0700 "$etc"
install -m 0755 "$binary" "$sbin/nfqfw"
install -m 0644 "$here/scripts/systemd/nfqfw.service" "$unitdir/nfqfw.service"
install -m 0644 "$here"/rules/examples/*.yaml "$docdir/"
install -m 0600 "$here/rules/examples/server.yaml" "$etc/nfqfw.yaml.example"
echo "installed $sbin/nfqfw ($("$sbin/nfqfw" version))"
echo "installed $unitdir/nfqfw.service"
echo "installed examples in $docdir and $etc/nfqfw.yaml.example"

if [ -n "$config" ]; then
	if [ -e "$cfg" ]; then
		echo "kept the existing $cfg (not replaced by $config)"
	else
		install -m 0600 "$config" "$cfg"
		echo "installed $config as $cfg"
	fi
fi

systemd_running=0
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemd_running=1
fi
if [ "$systemd_running" = 1 ]; then
	systemctl daemon-reload
fi

lockout_warning

if [ "$enable" = 0 ]; then
	if [ -e "$cfg" ]; then
		echo "next: nfqfw check -c /etc/nfqfw/nfqfw.yaml, then systemctl enable --now nfqfw"
	else
		echo "next: cp /etc/nfqfw/nfqfw.yaml.example /etc/nfqfw/nfqfw.yaml, edit it (interfaces, ports, allowlist),"
		echo "      nfqfw check -c /etc/nfqfw/nfqfw.yaml, then systemctl enable --now nfqfw"
	fi
	exit 0
fi

# Enabling: only with a config the binary accepts.
if [ ! -e "$cfg" ]; then
	die "refusing to enable nfqfw.service: no config at /etc/nfqfw/nfqfw.yaml (copy /etc/nfqfw/nfqfw.yaml.example, edit it, or pass --config FILE)"
fi
"$sbin/nfqfw" check "${check_flags[@]}" -c "$cfg" || die "refusing to enable nfqfw.service: nfqfw check rejects $cfg"

if [ "$systemd_running" = 1 ]; then
	if [ "$start" = 1 ]; then
		systemctl enable --now nfqfw.service
		echo "enabled and started nfqfw.service: systemctl status nfqfw; journalctl -u nfqfw -f"
	else
		systemctl enable nfqfw.service
		echo "enabled nfqfw.service (starts at next boot, or now with: systemctl start nfqfw)"
	fi
elif command -v systemctl >/dev/null; then
	systemctl --root="${root:-/}" enable nfqfw.service
	echo "enabled nfqfw.service under ${root:-/} (systemd is not running here: nothing started)"
else
	die "systemctl not found: enable nfqfw.service by hand"
fi

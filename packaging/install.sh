#!/bin/sh
# Install tidewatch on a server and enable it, in one command.
#
#   sudo sh install.sh tidewatch_0.1.0_amd64.deb         # Debian, Ubuntu: the package
#   sudo sh install.sh https://example.org/tidewatch.deb  # the same, downloaded first
#   sudo sh install.sh --binary ./tidewatch               # elsewhere: binary, unit, config
#
# The package path installs with apt (dependencies resolved), which enables and starts the
# systemd unit. The --binary path installs /usr/bin/tidewatch, the unit and the example
# /etc/tidewatch/agent.toml (an existing one is kept) from the directory this script is in (a
# checkout or a release archive), then enables and starts the unit when systemd runs.
# Either way the configuration is validated before the service starts.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
config=/etc/tidewatch/agent.toml

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

[ "$(id -u)" -eq 0 ] || die "run as root (sudo sh $0 ...)"
[ $# -ge 1 ] || usage

systemd_runs() { [ -d /run/systemd/system ]; }

# Fetches a URL to a temporary file and prints its path.
download() {
    target=$(mktemp --suffix=.deb)
    if command -v curl >/dev/null; then
        curl -fsSL --retry 3 -o "$target" "$1" || die "cannot download $1"
    elif command -v wget >/dev/null; then
        wget -q -O "$target" "$1" || die "cannot download $1"
    else
        die "neither curl nor wget is installed to download $1"
    fi
    printf '%s\n' "$target"
}

install_package() {
    package=$1
    command -v apt-get >/dev/null || die "apt-get not found: use --binary on this system"
    case $package in
        http://* | https://*) package=$(download "$package") ;;
    esac
    [ -f "$package" ] || die "$package: no such file"
    case $package in
        /*) ;;
        *) package=$(pwd)/$package ;;
    esac
    say "installing $package"
    # apt-get reads a local file only when the path has a slash; it also pulls the dependencies.
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$package"
}

install_binary() {
    binary=$1
    [ -x "$binary" ] || die "$binary: not an executable file"
    unit=$here/systemd/tidewatch.service
    example=$here/../agent.toml
    [ -f "$unit" ] || die "$unit not found: run this script from a tidewatch checkout or archive"
    [ -f "$example" ] || die "$example not found: run this script from a tidewatch checkout or archive"
    say "installing $binary as /usr/bin/tidewatch"
    install -m 0755 "$binary" /usr/bin/tidewatch
    install -d -m 0755 /etc/tidewatch
    if [ -e "$config" ]; then
        say "keeping the existing $config"
    else
        install -m 0644 "$example" "$config"
    fi
    install -d -m 0700 /var/lib/tidewatch
    install -m 0644 "$unit" /etc/systemd/system/tidewatch.service
    /usr/bin/tidewatch --config "$config" validate
    if systemd_runs; then
        systemctl daemon-reload
        systemctl enable --now tidewatch.service
    fi
}

case $1 in
    -h | --help) usage ;;
    --binary)
        [ $# -eq 2 ] || usage
        install_binary "$2"
        ;;
    *)
        [ $# -eq 1 ] || usage
        install_package "$1"
        ;;
esac

if systemd_runs; then
    if systemctl is-active --quiet tidewatch.service; then
        say "tidewatch is running: systemctl status tidewatch; journalctl -u tidewatch"
    else
        say "tidewatch did not start: see systemctl status tidewatch"
        exit 1
    fi
else
    say "installed; systemd is not running here, so start the agent yourself:"
    say "  /usr/bin/tidewatch --config $config run"
fi
say "edit $config (then: systemctl restart tidewatch); see what it would do: tidewatch check"

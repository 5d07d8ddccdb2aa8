#!/bin/sh
# Install tidewatch on a server and enable it, in one command.
#
#   sudo sh install.sh tidewatch_0.1.0_amd64.deb         # Debian, Ubuntu: the package
#   sudo sh install.sh https://example.org/tidewatch.deb  # the same, downloaded first
#   sudo sh install.sh --sha256 HEX https://example.org/tidewatch.deb
#   sudo sh install.sh --binary ./tidewatch               # elsewhere: binary, unit, config
#
# The package path installs with apt (dependencies resolved), which enables and starts the
# systemd unit. A URL must be https://; its SHA-256 is checked before anything is installed:
# --sha256 HEX, else the checksum file URL.sha256 beside it (`HEX` or `HEX  NAME`). --sha256
# checks a local file too. The --binary path installs /usr/bin/tidewatch, the unit and the
# example /etc/tidewatch/agent.toml (an existing one is kept) from the directory this script is
# in (a checkout or a release archive), the man pages and bash, zsh and fish completions (written
# by the binary itself, to where the package puts them), then enables and starts the unit when
# systemd runs. Either way the configuration is validated before the service starts.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
config=/etc/tidewatch/agent.toml

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

# Whatever ends the script (an error, a signal, the end), its temporary files (downloads, the
# generated man pages) go with it.
tmp=""
cleanup() { if [ -n "$tmp" ]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

sha256=""
mode=package
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) usage ;;
        --sha256)
            [ $# -ge 2 ] || usage
            sha256=$2
            shift 2
            ;;
        --binary)
            mode=binary
            shift
            ;;
        --) shift; break ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -eq 1 ] || usage
target=$1

is_sha256() {
    [ ${#1} -eq 64 ] && case $1 in *[!0-9a-fA-F]*) false ;; *) true ;; esac
}
if [ -n "$sha256" ] && ! is_sha256 "$sha256"; then
    die "--sha256 takes the 64 hex digits of a SHA-256, not \"$sha256\""
fi
# Refused before anything is fetched: a package installed as root must not travel in the clear.
case $target in
    https://*) [ "$mode" = package ] || die "--binary takes a local file, not a URL" ;;
    *://*) die "$target: only https:// URLs are downloaded (or give a local file)" ;;
esac

[ "$(id -u)" -eq 0 ] || die "run as root (sudo sh $0 ...)"

systemd_runs() { [ -d /run/systemd/system ]; }

# Fetches the https:// URL $1 to the file $2; fails quietly (curl and wget say why).
download() {
    if command -v curl >/dev/null; then
        # No redirect to plain HTTP either.
        curl -fsSL --retry 3 --proto =https --proto-redir =https -o "$2" "$1"
    elif command -v wget >/dev/null; then
        wget -q -O "$2" "$1"
    else
        die "neither curl nor wget is installed to download $1"
    fi
}

# Checks that the file $1 has the SHA-256 $2 (hex digits of either case).
verify() {
    expected=$(printf '%s' "$2" | tr 'A-F' 'a-f')
    printf '%s  %s\n' "$expected" "$1" | sha256sum -c --status - ||
        die "$1: SHA-256 mismatch: expected $expected, got $(sha256sum "$1" | cut -d' ' -f1); not installed"
    say "$1: SHA-256 checked"
}

install_package() {
    package=$1
    command -v apt-get >/dev/null || die "apt-get not found: use --binary on this system"
    case $package in
        https://*)
            tmp=$(mktemp -d)
            # apt's sandbox user reads the file: the directory is root's, readable by all.
            chmod 0755 "$tmp"
            url=$package
            package=$tmp/$(basename "$url" | sed 's/[?#].*//')
            case $package in *.deb) ;; *) package=$package.deb ;; esac
            if [ -z "$sha256" ]; then
                download "$url.sha256" "$tmp/checksum" ||
                    die "no --sha256 given, and no checksum could be downloaded from $url.sha256"
                sha256=$(head -n 1 "$tmp/checksum" | tr -d '\r' | cut -d' ' -f1)
                is_sha256 "$sha256" || die "$url.sha256 holds no SHA-256"
            fi
            download "$url" "$package" || die "cannot download $url"
            chmod 0644 "$package"
            ;;
    esac
    [ -f "$package" ] || die "$package: no such file"
    case $package in
        /*) ;;
        *) package=$(pwd)/$package ;;
    esac
    if [ -n "$sha256" ]; then
        verify "$package" "$sha256"
    fi
    say "installing $package"
    # apt-get reads a local file only when the path has a slash; it also pulls the dependencies.
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$package"
}

# The man pages and completion scripts of the binary $1, which writes them itself, installed
# where the package puts them. zsh's directory for packaged completions is vendor-completions on
# Debian and its derivatives, site-functions elsewhere.
install_manual() {
    tmp=$(mktemp -d)
    "$1" man "$tmp/man" >/dev/null
    install -d -m 0755 /usr/share/man/man1
    for page in "$tmp"/man/*.1; do
        if command -v gzip >/dev/null; then
            gzip -9n "$page"
            page=$page.gz
        fi
        install -m 0644 "$page" /usr/share/man/man1/
    done
    if [ -e /etc/debian_version ]; then
        zsh_dir=/usr/share/zsh/vendor-completions
    else
        zsh_dir=/usr/share/zsh/site-functions
    fi
    "$1" completions bash >"$tmp/tidewatch.bash"
    "$1" completions zsh >"$tmp/_tidewatch"
    "$1" completions fish >"$tmp/tidewatch.fish"
    install -d -m 0755 /usr/share/bash-completion/completions "$zsh_dir" \
        /usr/share/fish/vendor_completions.d
    install -m 0644 "$tmp/tidewatch.bash" /usr/share/bash-completion/completions/tidewatch
    install -m 0644 "$tmp/_tidewatch" "$zsh_dir/_tidewatch"
    install -m 0644 "$tmp/tidewatch.fish" /usr/share/fish/vendor_completions.d/tidewatch.fish
}

install_binary() {
    binary=$1
    [ -x "$binary" ] || die "$binary: not an executable file"
    if [ -n "$sha256" ]; then
        verify "$binary" "$sha256"
    fi
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
    install_manual "$binary"
    "$binary" --config "$config" validate
    if systemd_runs; then
        systemctl daemon-reload
        systemctl enable --now tidewatch.service
    fi
}

case $mode in
    binary) install_binary "$target" ;;
    *) install_package "$target" ;;
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

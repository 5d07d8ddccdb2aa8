#!/bin/sh
# Install tidewatch on a server and enable it, in one command.
#
#   sudo sh install.sh --version v0.2.0                  # a release, for this machine's architecture
#   sudo sh install.sh tidewatch_0.1.0_amd64.deb         # Debian, Ubuntu: the package
#   sudo sh install.sh https://example.org/tidewatch.deb  # the same, downloaded first
#   sudo sh install.sh --sha256 HEX https://example.org/tidewatch.deb
#   sudo sh install.sh --binary ./tidewatch               # elsewhere: binary, unit, config
#
# --version downloads the release archive for this machine (x86_64 or aarch64) and the
# release's SHA256SUMS from the project's GitHub releases (TIDEWATCH_RELEASE_URL replaces
# https://github.com/tidewatch/tidewatch/releases/download), checks SHA256SUMS's cosign
# signature when cosign is installed and the archive's SHA-256 against it, then installs
# what the archive holds as --binary does. The package path installs with apt (dependencies
# resolved), which enables and starts the systemd unit. A URL must be https://; its SHA-256 is
# checked before anything is installed: --sha256 HEX, else the checksum file URL.sha256 beside
# it (`HEX` or `HEX  NAME`). --sha256 checks a local file too. The --binary path installs
# /usr/bin/tidewatch, the unit and the example /etc/tidewatch/agent.toml (an existing one is
# kept) from the directory this script is in (a checkout or a release archive), the man pages
# and bash, zsh and fish completions (written by the binary itself, to where the package puts
# them), then enables and starts the unit when systemd runs. Either way the configuration is
# validated before the service starts.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
config=/etc/tidewatch/agent.toml

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

# Whatever ends the script (an error, a signal, the end), its temporary files (downloads, the
# generated man pages) go with it: one directory, made on first use.
tmp=""
cleanup() { if [ -n "$tmp" ]; then rm -rf "$tmp"; fi; }
make_tmp() {
    if [ -z "$tmp" ]; then
        tmp=$(mktemp -d)
        # apt's sandbox user reads a downloaded package: the directory is root's, readable by all.
        chmod 0755 "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

sha256=""
mode=package
release=""
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
        --version)
            [ $# -ge 2 ] || usage
            mode=release
            release=$2
            shift 2
            ;;
        --) shift; break ;;
        -*) usage ;;
        *) break ;;
    esac
done
if [ "$mode" = release ]; then
    [ $# -eq 0 ] || usage
    [ -z "$sha256" ] || die "--sha256 goes with a package or binary; --version checks the release's SHA256SUMS"
    target=""
else
    [ $# -eq 1 ] || usage
    target=$1
fi

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
            make_tmp
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
    make_tmp
    manual=$tmp/manual
    mkdir "$manual"
    "$1" man "$manual/man" >/dev/null
    install -d -m 0755 /usr/share/man/man1
    for page in "$manual"/man/*.1; do
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
    "$1" completions bash >"$manual/tidewatch.bash"
    "$1" completions zsh >"$manual/_tidewatch"
    "$1" completions fish >"$manual/tidewatch.fish"
    install -d -m 0755 /usr/share/bash-completion/completions "$zsh_dir" \
        /usr/share/fish/vendor_completions.d
    install -m 0644 "$manual/tidewatch.bash" /usr/share/bash-completion/completions/tidewatch
    install -m 0644 "$manual/_tidewatch" "$zsh_dir/_tidewatch"
    install -m 0644 "$manual/tidewatch.fish" /usr/share/fish/vendor_completions.d/tidewatch.fish
}

# Installs the binary $1 with the unit and example configuration from the directory $2 (this
# script's by default): systemd/ and agent.toml in a release archive, ../agent.toml in a
# checkout's packaging/.
install_binary() {
    binary=$1
    from=${2:-$here}
    [ -x "$binary" ] || die "$binary: not an executable file"
    if [ -n "$sha256" ]; then
        verify "$binary" "$sha256"
    fi
    unit=$from/systemd/tidewatch.service
    example=$from/agent.toml
    [ -f "$example" ] || example=$from/../agent.toml
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

# The project's GitHub releases, or what stands in for them (a mirror, a test's server).
release_url=${TIDEWATCH_RELEASE_URL:-https://github.com/tidewatch/tidewatch/releases/download}
# Who signs SHA256SUMS: the release workflow, run for the release's tag (keyless, GitHub's OIDC).
signer=https://github.com/tidewatch/tidewatch/.github/workflows/release.yml

# Downloads the release $1 (v0.2.0 or 0.2.0) for this machine's architecture, checks it and
# installs it as --binary does.
install_release() {
    version=${1#v}
    case $version in
        '' | *[!0-9A-Za-z.-]*) die "--version takes a release's version (v0.2.0), not \"$1\"" ;;
    esac
    case $(uname -m) in
        x86_64 | amd64) triple=x86_64-unknown-linux-gnu ;;
        aarch64 | arm64) triple=aarch64-unknown-linux-gnu ;;
        *) die "no release archive for this machine's architecture ($(uname -m)): build from source" ;;
    esac
    case $release_url in
        https://*) ;;
        *) die "TIDEWATCH_RELEASE_URL: only https:// URLs are downloaded, not $release_url" ;;
    esac
    base=${release_url%/}/v$version
    name=tidewatch-$version-$triple
    make_tmp
    download "$base/SHA256SUMS" "$tmp/SHA256SUMS" ||
        die "cannot download $base/SHA256SUMS (is v$version a release?)"
    if command -v cosign >/dev/null; then
        download "$base/SHA256SUMS.cosign.bundle" "$tmp/SHA256SUMS.cosign.bundle" ||
            die "cannot download SHA256SUMS's signature $base/SHA256SUMS.cosign.bundle"
        cosign verify-blob --bundle "$tmp/SHA256SUMS.cosign.bundle" \
            --certificate-identity "$signer@refs/tags/v$version" \
            --certificate-oidc-issuer https://token.actions.githubusercontent.com \
            "$tmp/SHA256SUMS" >/dev/null ||
            die "SHA256SUMS of v$version: its cosign signature does not verify; not installed"
        say "SHA256SUMS: cosign signature of $signer verified"
    else
        say "cosign is not installed: SHA256SUMS is trusted for its https:// origin alone"
    fi
    sha256=$(awk -v f="$name.tar.gz" '$2 == f || $2 == "*" f { print $1; exit }' "$tmp/SHA256SUMS")
    is_sha256 "$sha256" || die "SHA256SUMS of v$version lists no $name.tar.gz"
    download "$base/$name.tar.gz" "$tmp/$name.tar.gz" || die "cannot download $base/$name.tar.gz"
    verify "$tmp/$name.tar.gz" "$sha256"
    # The archive's binary is covered by the archive's checksum.
    sha256=""
    mkdir "$tmp/release"
    tar -xzf "$tmp/$name.tar.gz" -C "$tmp/release" --no-same-owner ||
        die "$name.tar.gz: cannot unpack"
    install_binary "$tmp/release/$name/tidewatch" "$tmp/release/$name"
}

case $mode in
    binary) install_binary "$target" ;;
    release) install_release "$release" ;;
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

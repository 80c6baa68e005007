#!/usr/bin/env bash
# Installs a current gVisor runsc the way an operator would, from Debian's archive, without changing
# the system's apt sources or /usr/bin/runsc: a private apt configuration (in $DATA_DIR/apt-runsc)
# that knows only Debian's SUITE (trixie), signed with the keys in debian-archive-keyring, so apt
# checks the .deb against the signed index; the package's single static binary is unpacked to
# RUNSC_INSTALL_DIR/runsc-<version>/runsc (versioned: an upgrade never replaces a binary that running
# sandboxes use). Prints that path on stdout. Idempotent: an installed candidate is only checked (the
# package index is fetched once; remove $DATA_DIR/apt-runsc to look for a newer release).
# Settings: RUNSC_DEBIAN_SUITE (trixie), RUNSC_DEBIAN_MIRROR (default: the Debian mirror this machine's own
#   apt sources use),
#   RUNSC_INSTALL_DIR (/usr/local/lib/taskflow), DATA_DIR.
# Measured here (Debian 12 host): trixie's runsc 0.0~20240729.0-4+b7, 7.1 MB .deb, a static binary
# with no dependencies, default platform systrap (bookworm's 0.0~20221219 has ptrace and kvm only).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITE="${RUNSC_DEBIAN_SUITE:-trixie}"
# The mirror this machine's apt already uses for Debian (deb822 .sources or a one-line sources.list entry).
system_mirror() {
  local uris
  uris="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '/^deb / { print $2 }')"
  awk '/\/debian\/?$/ { print; exit }' <<<"$uris"
}
MIRROR="${RUNSC_DEBIAN_MIRROR:-$(system_mirror)}"
[[ -n "$MIRROR" ]] || die "no Debian mirror in this machine's apt sources: set RUNSC_DEBIAN_MIRROR"
PREFIX="${RUNSC_INSTALL_DIR:-/usr/local/lib/taskflow}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
APTDIR="$STATE_DIR/apt-runsc"

have apt-get && have dpkg-deb || die "installing runsc from Debian needs apt-get and dpkg-deb"
[[ -s "$KEYRING" ]] || die "$KEYRING is missing (apt-get install debian-archive-keyring): apt could not check Debian $SUITE's signature"
mkdir -p "$APTDIR/etc/sources.list.d" "$APTDIR/etc/preferences.d" "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/dl"
printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' "$MIRROR" "$SUITE" "$KEYRING" \
  >"$APTDIR/etc/sources.list.d/runsc.sources"
# Only this private view of the archive: the system's sources, pins and installed packages stay out of it.
apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$APTDIR/etc/sources.list.d"
  -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=$APTDIR/etc/preferences.d"
  -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache" -o "Dir::State::status=/dev/null"
  -o "APT::Sandbox::User=root")

candidate() { apt-cache "${apt_opts[@]}" policy runsc 2>/dev/null | awk '/Candidate:/ { print $2 }'; }
version="$(candidate)"
if [[ -z "$version" || "$version" == "(none)" ]]; then
  say "apt-get update (private: Debian $SUITE from $MIRROR, for runsc only)"
  apt-get "${apt_opts[@]}" update -qq >"$APTDIR/update.log" 2>&1 || die "apt-get update of Debian $SUITE failed: $(tail -n 3 "$APTDIR/update.log")"
  version="$(candidate)"
fi
[[ -n "$version" && "$version" != "(none)" ]] || die "Debian $SUITE offers no runsc package"
target="$PREFIX/runsc-$version/runsc"
if [[ -x "$target" ]] && "$target" --version >/dev/null 2>&1; then
  echo "$target"
  exit 0
fi
[[ $EUID -eq 0 ]] || die "only root can install runsc to $PREFIX (or set RUNSC_INSTALL_DIR)"
say "apt-get download runsc=$version (Debian $SUITE; apt checks it against the signed index)"
rm -rf "$APTDIR/dl" && mkdir -p "$APTDIR/dl"
(cd "$APTDIR/dl" && apt-get "${apt_opts[@]}" download -qq "runsc=$version" >/dev/null 2>"$APTDIR/download.log") \
  || die "apt-get download runsc=$version failed: $(tail -n 3 "$APTDIR/download.log")"
deb="$(ls "$APTDIR"/dl/runsc_*.deb)"
dpkg-deb -x "$deb" "$APTDIR/dl/x"
[[ -x "$APTDIR/dl/x/usr/bin/runsc" ]] || die "$deb holds no usr/bin/runsc"
install -D -m 0755 "$APTDIR/dl/x/usr/bin/runsc" "$target.tmp" && mv "$target.tmp" "$target"
rm -rf "$APTDIR/dl"
say "installed runsc $version to $target ($("$target" --version 2>&1 | sed -n 1p))"
echo "$target"

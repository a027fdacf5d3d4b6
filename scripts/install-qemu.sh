#!/usr/bin/env bash
# Installs the two QEMU versions that migdiff's test fixtures are made with (Debian bookworm, run as root):
#   QEMU 10.x  from bookworm-backports  -> /usr/bin/qemu-system-x86_64
#   QEMU 7.2   from bookworm, unpacked  -> $QEMU72_ROOT (default /opt/qemu72), run through the wrapper
#              /usr/local/bin/qemu-system-x86_64-7.2 (module dir and firmware search paths set)
# Also installs zstd (for the compressed fixtures).
# Idempotent: does nothing when both qemu-system-x86_64 and qemu-system-x86_64-7.2 already exist.
set -euo pipefail
QEMU72_ROOT=${QEMU72_ROOT:-/opt/qemu72}
WRAPPER=/usr/local/bin/qemu-system-x86_64-7.2

if command -v qemu-system-x86_64 >/dev/null && [ -x "$WRAPPER" ] && command -v zstd >/dev/null; then
  echo "install-qemu: already installed, skipping"
  qemu-system-x86_64 --version | head -1
  "$WRAPPER" --version | head -1
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  cat > /etc/apt/sources.list.d/bookworm-backports.sources <<SRC
Types: deb
URIs: ${uri:-http://deb.debian.org/debian}
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -q
apt-get install -y -q -t bookworm-backports qemu-system-x86 qemu-utils
apt-get install -y -q zstd

# Newest 7.2 build of a package that the configured (non-backports) bookworm suites offer.
v72() { apt-cache madison "$1" | awk -F'|' '{gsub(/ /,"",$2); print $2}' | grep '^1:7\.2' | head -1; }

if [ ! -x "$QEMU72_ROOT/usr/bin/qemu-system-x86_64" ]; then
  tmp=$(mktemp -d); chmod 777 "$tmp"   # apt-get download runs as _apt and must be able to write here
  pkgs=()
  for p in qemu-system-x86 qemu-system-common qemu-system-data; do
    ver=$(v72 "$p")
    [ -n "$ver" ] || { echo "install-qemu: no 7.2 version of $p in apt sources" >&2; exit 1; }
    pkgs+=("$p=$ver")
  done
  (cd "$tmp" && apt-get download "${pkgs[@]}")
  mkdir -p "$QEMU72_ROOT"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$QEMU72_ROOT"; done
  rm -rf "$tmp"
fi

# 7.2's data package symlinks its BIOS and option ROMs to seabios/ipxe paths: add those to -L.
cat > "$WRAPPER" <<WRAP
#!/bin/sh
QEMU_MODULE_DIR=$QEMU72_ROOT/usr/lib/x86_64-linux-gnu/qemu exec $QEMU72_ROOT/usr/bin/qemu-system-x86_64 \\
  -L $QEMU72_ROOT/usr/share/qemu -L /usr/share/seabios -L /usr/lib/ipxe/qemu "\$@"
WRAP
chmod +x "$WRAPPER"
qemu-system-x86_64 --version | head -1
"$WRAPPER" --version | head -1

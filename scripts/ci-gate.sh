#!/usr/bin/env bash
# ci-gate.sh: a migration-compatibility gate a QEMU packager can copy.
#
# For each machine type, compare a dump made by the OLD QEMU binary with one made by the NEW
# binary, allowing only the differences listed in scripts/gate/MACHINE.allow. Fails (exit 1)
# on any unexpected difference or stale allow rule; writes a JUnit report per machine.
#
#   scripts/ci-gate.sh [MACHINE...]            default: pc-i440fx-7.2 pc-q35-7.2
#
# Environment:
#   OLD_QEMU, NEW_QEMU  binaries (default qemu-system-x86_64-7.2, qemu-system-x86_64)
#   DUMP_DIR            where MACHINE-old.mig / MACHINE-new.mig live; a missing dump is made
#                       with its QEMU (TCG, stopped guest, -m 32 -nodefaults) (default: gate-out)
#   ALLOW_DIR           allow lists (default: scripts/gate beside this script)
#   MIGDIFF             the migdiff binary (default: target/release/migdiff, built if missing)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
OLD_QEMU=${OLD_QEMU:-qemu-system-x86_64-7.2}
NEW_QEMU=${NEW_QEMU:-qemu-system-x86_64}
DUMP_DIR=${DUMP_DIR:-gate-out}
ALLOW_DIR=${ALLOW_DIR:-$here/gate}
MIGDIFF=${MIGDIFF:-$root/target/release/migdiff}
[ $# -gt 0 ] || set -- pc-i440fx-7.2 pc-q35-7.2

if [ ! -x "$MIGDIFF" ]; then
  (cd "$root" && cargo build --release --quiet)
fi
mkdir -p "$DUMP_DIR"

# make_dump QEMU MACHINE OUT: a stopped guest's migration stream, through QMP.
make_dump() {
  local qemu=$1 machine=$2 out=$3 dir
  dir=$(mktemp -d)
  "$qemu" -M "$machine" -S -m 32 -nodefaults -display none -accel tcg \
    -qmp "unix:$dir/qmp.sock,server=on,wait=off" &
  local pid=$!
  python3 "$here/qmp-migrate.py" "$dir/qmp.sock" "$(realpath -m "$out")"
  wait "$pid" || true
  rm -rf "$dir"
}

status=0
for machine in "$@"; do
  old=$DUMP_DIR/$machine-old.mig
  new=$DUMP_DIR/$machine-new.mig
  [ -e "$old" ] || make_dump "$OLD_QEMU" "$machine" "$old"
  [ -e "$new" ] || make_dump "$NEW_QEMU" "$machine" "$new"
  allow=$ALLOW_DIR/$machine.allow
  [ -e "$allow" ] || { echo "ci-gate: no allow list $allow" >&2; status=2; continue; }
  "$MIGDIFF" --allow "$allow" --strict --format junit "$old" "$new" > "$DUMP_DIR/$machine.junit.xml" || true
  if "$MIGDIFF" --allow "$allow" --strict --color never "$old" "$new"; then
    echo "ci-gate: $machine: OK"
  else
    rc=$?
    echo "ci-gate: $machine: FAILED (migdiff exit $rc)"
    [ "$rc" -gt "$status" ] && status=$rc
  fi
done
exit "$status"

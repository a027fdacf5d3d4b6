#!/usr/bin/env bash
# ci-gate.sh: a migration-compatibility gate a QEMU packager can copy; all the work is
# `migdiff gate` (see README.md, "CI gate").
#
# Every versioned machine type both QEMU binaries offer is dumped by each (stopped guest,
# -nodefaults -m 32, TCG, and its -dump-vmstate), the dumps are compared with the differences
# the allow file expects, and each is replayed into the other QEMU's loader. Exit 1 on a
# refusal, an unexpected difference or a stale allow rule; 2 when a dump could not be made or
# read.
#
#   scripts/ci-gate.sh [MIGDIFF-GATE-OPTION...]     e.g. --machines 'pc-q35-*' --jobs 4
#
# Environment:
#   OLD_QEMU, NEW_QEMU  binaries (default qemu-system-x86_64-7.2, qemu-system-x86_64); set both
#                       empty to gate the pairs of dumps DUMP_DIR already holds, without QEMU
#   DUMP_DIR            dumps (TYPE-old.mig, TYPE-new.mig, TYPE-*.vmstate.json; reused when
#                       present), junit.xml and report.md (default: gate-out)
#   ALLOW               expected differences (default: scripts/gate/qemu-7.2-to-10.0.allow)
#   MIGDIFF             the migdiff binary (default: target/release/migdiff, built if missing)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
OLD_QEMU=${OLD_QEMU-qemu-system-x86_64-7.2}
NEW_QEMU=${NEW_QEMU-qemu-system-x86_64}
DUMP_DIR=${DUMP_DIR:-gate-out}
ALLOW=${ALLOW:-$here/gate/qemu-7.2-to-10.0.allow}
MIGDIFF=${MIGDIFF:-$root/target/release/migdiff}

if [ ! -x "$MIGDIFF" ]; then
  (cd "$root" && cargo build --release --quiet)
fi
qemus=()
if [ -n "$OLD_QEMU$NEW_QEMU" ]; then
  qemus=(--old "$OLD_QEMU" --new "$NEW_QEMU")
fi
exec "$MIGDIFF" gate "${qemus[@]}" --dumps "$DUMP_DIR" --allow "$ALLOW" --strict \
  --junit "$DUMP_DIR/junit.xml" --report "$DUMP_DIR/report.md" "$@"

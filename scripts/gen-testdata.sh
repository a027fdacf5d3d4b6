#!/usr/bin/env bash
# gen-testdata.sh: regenerate migdiff's real QEMU migration-stream fixtures in testdata/.
#
#   [SKIP_INSTALL=1] [ANALYZE_MIGRATION=<qemu-src>/scripts/analyze-migration.py] scripts/gen-testdata.sh [NAME...]
#
# * Installs QEMU 10.x (qemu-system-x86_64) and QEMU 7.2 (qemu-system-x86_64-7.2) with scripts/install-qemu.sh
#   unless SKIP_INSTALL=1 (needs root on Debian bookworm).
# * For every fixture, starts QEMU (TCG, -m 32, -nodefaults, no display, QMP on a unix socket) in a scratch
#   directory, dumps its migration stream with scripts/qmp-migrate.py (migrate "exec:cat > NAME.mig"), waits
#   for QEMU to exit and moves the dump into testdata/.
# * ANALYZE_MIGRATION: path to QEMU's own decoder, scripts/analyze-migration.py from a QEMU source tree (the
#   test oracle). When set, every fixture it can read is decoded with `-d state` into
#   testdata/oracle/NAME.state.json. When unset, the oracle step is skipped (with a message).
# * Writes testdata/README.md from what was actually run (versions, command lines, QMP settings, hashes).
# * NAME... (file names as in testdata/, e.g. pc10-m64.mig): make only those files. Nothing else in testdata/
#   is touched, and testdata/README.md keeps every other file's entry word for word; the named files' entries
#   are (re)written where a full run would put them. The --again pair (pc10-stopped.mig and
#   pc10-stopped-again.mig) is always made together. Without NAME every file is made from scratch.
# * aarch64-*/riscv64-* need qemu-system-aarch64 and qemu-system-riscv64 (and qemu-efi-aarch64 for the running
#   aarch64 files). guest-* boot Linux from Debian packages (apt-get download, cpio, gzip; arm64 package lists
#   are fetched into the scratch directory) and are stripped by this tree's migdiff (cargo build --release).
#   Stripped dumps are committed as NAME.mig.zst and named NAME.mig on the command line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
td=$root/testdata
QEMU10=qemu-system-x86_64
QEMU_I386=qemu-system-i386
QEMU72=qemu-system-x86_64-7.2
COMMON=(-nodefaults -display none -accel tcg -m 32)
QMP_ARGS=(-qmp "unix:qmp.sock,server=on,wait=off")

declare -A WANT=()
for a in "$@"; do
  case $a in
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gen-testdata: unknown option $a (see --help)" >&2; exit 2 ;;
    *) WANT[$a]=1 ;;
  esac
done
partial=0
[ ${#WANT[@]} = 0 ] || partial=1
if [ "$partial" = 1 ] && [ ! -f "$td/README.md" ]; then
  echo "gen-testdata: NAME... needs an existing testdata/README.md to merge into" >&2
  exit 2
fi

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  bash "$here/install-qemu.sh"
fi
for b in "$QEMU10" "$QEMU72" "$QEMU_I386" qemu-img gzip zstd python3 sha256sum; do
  command -v "$b" >/dev/null || { echo "gen-testdata: $b not found (run scripts/install-qemu.sh)" >&2; exit 1; }
done

scratch=$(mktemp -d)
QPID=
cleanup() {
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then kill "$QPID"; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

mkdir -p "$td/oracle"
if [ "$partial" = 0 ]; then
  rm -f "$td"/*.mig "$td"/*.mig.gz "$td"/*.mig.zst "$td"/vmstate-*.json "$td"/vmstate-*.json.gz "$td"/oracle/*.state.json
fi

declare -a FILES=()            # every generated file, in generation order
declare -a ORDER=()            # every file a full run makes, in generation order (filled by a dry pass)
DRY=1
# want NAME: is NAME to be made in this run?
want() { [ "$partial" = 0 ] || [ -n "${WANT[$1]:-}" ]; }
# step NAME: in the dry pass, notes NAME and fails; afterwards succeeds when NAME is to be made (and then
# removes NAME's old file and oracle output first).
step() {
  if [ "$DRY" = 1 ]; then ORDER+=("$1"); return 1; fi
  want "$1" || return 1
  rm -f "$td/$1" "$td/oracle/${1%.mig}.state.json"
}
declare -A M_VER M_CMD M_CAPS M_PARAMS M_HOW M_NOTE M_ORACLE M_STDERR M_MACH

qemu_version() { "$1" --version | head -1; }

# Command line as one string; single-quotes only the words that need it (e.g. an empty value stays romfile=).
show() {
  local a out=()
  for a in "$@"; do
    if [[ -n $a && $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  printf '%s' "${out[*]}"
}

# start_qemu BIN ARGS...: starts QEMU in $scratch, sets QPID, waits for the QMP socket.
start_qemu() {
  rm -f "$scratch/qmp.sock" "$scratch/qemu.log" "$scratch/serial.log"
  (cd "$scratch" && exec "$@" >"$scratch/qemu.log" 2>&1) &
  QPID=$!
  local _
  for _ in $(seq 200); do
    [ -S "$scratch/qmp.sock" ] && return 0
    if ! kill -0 "$QPID" 2>/dev/null; then
      echo "gen-testdata: QEMU exited early: $(show "$@")" >&2
      cat "$scratch/qemu.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "gen-testdata: no QMP socket after 20 s" >&2
  return 1
}

# wait_qemu: waits (30 s at most) for QEMU to exit after QMP quit; fails if it exits non-zero.
wait_qemu() {
  local _
  for _ in $(seq 300); do
    if ! kill -0 "$QPID" 2>/dev/null; then
      wait "$QPID"
      QPID=
      return 0
    fi
    sleep 0.1
  done
  echo "gen-testdata: QEMU did not exit after quit" >&2
  return 1
}

# record NAME BIN CMDLINE: remember how NAME was made (QMP settings come from the globals set by mig()).
record() {
  local name=$1 bin=$2
  FILES+=("$name")
  M_VER[$name]=$(qemu_version "$bin")
  M_CMD[$name]=$3
  M_CAPS[$name]=$caps_txt
  M_PARAMS[$name]=$params_txt
  M_STDERR[$name]=$(sed 's/^/    /' "$scratch/qemu.log")
}

# mig NAME BIN [--delay S] [--ready MARKER] [--mem MIB] [--cap C]... [--param K=V]... [--again NAME2] -- QEMU-ARGS...
# Runs BIN COMMON QMP QEMU-ARGS, waits S seconds (default 0) or until the guest printed MARKER on its serial
# console (serial.log, see wait_serial), migrates to NAME (and, with --again, tries a second migration of the
# same process 3 s later into NAME2). --mem MIB replaces COMMON's -m 32.
mig() {
  local name=$1 bin=$2; shift 2
  local delay=0 ready='' mem=32 again='' qmpopts=() cap_list=() param_list=()
  while [ "$1" != -- ]; do
    case $1 in
      --delay) delay=$2; shift 2 ;;
      --ready) ready=$2; shift 2 ;;
      --mem) mem=$2; shift 2 ;;
      --cap) qmpopts+=(--cap "$2"); cap_list+=("$2"); shift 2 ;;
      --param) qmpopts+=(--param "$2"); param_list+=("$2"); shift 2 ;;
      --again) again=$2; shift 2 ;;
      *) echo "mig: bad option $1" >&2; return 1 ;;
    esac
  done
  shift
  if [ "$DRY" = 1 ]; then
    ORDER+=("$name")
    [ -z "$again" ] || ORDER+=("$again")
    return 0
  fi
  want "$name" || { [ -n "$again" ] && want "$again"; } || return 0
  rm -f "$td/$name" "$td/oracle/${name%.mig}.state.json"
  [ -z "$again" ] || rm -f "$td/$again" "$td/oracle/${again%.mig}.state.json"
  local common=("${COMMON[@]}") k
  for k in "${!common[@]}"; do
    if [ "${common[$k]}" = -m ]; then common[k+1]=$mem; fi
  done
  local cmd=("$bin" "${common[@]}" "${QMP_ARGS[@]}" "$@")
  caps_txt=${cap_list[*]:-(none)}
  params_txt=${param_list[*]:-(none)}
  echo "== $name: $(show "${cmd[@]}")"
  start_qemu "${cmd[@]}"
  [ "$delay" = 0 ] || sleep "$delay"
  [ -z "$ready" ] || wait_serial "$ready"
  local rc=0
  if [ -n "$again" ]; then
    (cd "$scratch" && python3 "$here/qmp-migrate.py" qmp.sock "$name" "${qmpopts[@]}" \
        --again-after 3 --again-out "$again") 2>"$scratch/qmp.err" || rc=$?
  else
    (cd "$scratch" && python3 "$here/qmp-migrate.py" qmp.sock "$name" "${qmpopts[@]}") 2>"$scratch/qmp.err" || rc=$?
  fi
  cat "$scratch/qmp.err" >&2
  if [ "$rc" != 0 ] && { [ -z "$again" ] || [ "$rc" != 3 ]; }; then
    echo "gen-testdata: qmp-migrate failed for $name (rc $rc)" >&2
    return 1
  fi
  wait_qemu
  mv "$scratch/$name" "$td/$name"
  record "$name" "$bin" "$(show "${cmd[@]}")"
  local how="QMP \`migrate {\"uri\": \"exec:cat > $name\"}\` (run in the scratch directory that holds qmp.sock)"
  [ "$delay" = 0 ] || how="$how, sent ${delay} s after QEMU started (guest running SeaBIOS)"
  M_HOW[$name]=$how
  if [ -n "$again" ]; then
    if [ "$rc" = 0 ]; then
      mv "$scratch/$again" "$td/$again"
      record "$again" "$bin" "$(show "${cmd[@]}")"
      M_HOW[$again]="second QMP \`migrate {\"uri\": \"exec:cat > $again\"}\` of the same QEMU process, 3 s after $name completed"
    else
      # QEMU refused to migrate the same process twice: dump an identical second process instead.
      local why
      why=$(sed -n 's/^qmp-migrate: second migration refused: //p' "$scratch/qmp.err")
      sleep 3
      echo "== $again: second identical process (same-process migration refused)"
      start_qemu "${cmd[@]}"
      (cd "$scratch" && python3 "$here/qmp-migrate.py" qmp.sock "$again" "${qmpopts[@]}")
      wait_qemu
      mv "$scratch/$again" "$td/$again"
      record "$again" "$bin" "$(show "${cmd[@]}")"
      M_HOW[$again]="QMP \`migrate {\"uri\": \"exec:cat > $again\"}\` of a **second, identical QEMU process** started 3 s after $name completed"
      M_NOTE[$again]="A second migration of the process that wrote $name was tried first and refused by QEMU: \`$why\` (after a completed migration the VM is in runstate \`postmigrate\`, and \`migrate\` refuses that state). So this file comes from a fresh process with the same command line. Expect time-derived differences only (RTC, timers, TSC, HPET)."
    fi
  fi
}

# ------------------------------------------------------------------------------------ aarch64 and riscv64
QEMU_A64=qemu-system-aarch64
QEMU_RV64=qemu-system-riscv64
# other_targets: Arm and RISC-V `virt` machines, stopped and after a few seconds of firmware.
other_targets() {
  if [ "$DRY" = 0 ]; then
    for b in "$QEMU_A64" "$QEMU_RV64"; do
      command -v "$b" >/dev/null || { echo "gen-testdata: $b not found (apt-get install qemu-system-arm qemu-system-misc)" >&2; return 1; }
    done
  fi
  # -seed: QEMU writes random rng-seed/kaslr-seed properties into the device tree, which lies in guest RAM;
  # a fixed seed keeps that RAM page the same across processes, so the --again pairs differ in device state only.
  local seed_note="\`-seed 1\` fixes the random seeds QEMU writes into the device tree in guest RAM (without it two processes differ in that RAM page)."
  mig aarch64-max-stopped.mig "$QEMU_A64" --mem 128 --again aarch64-max-stopped-again.mig -- -M virt -cpu max -seed 1 -S
  mig aarch64-a57-stopped.mig "$QEMU_A64" --mem 128 -- -M virt -cpu cortex-a57 -seed 1 -S
  mig riscv64-stopped.mig "$QEMU_RV64" --mem 128 --again riscv64-stopped-again.mig -- -M virt -seed 1 -S
  mig riscv64-running.mig "$QEMU_RV64" --mem 128 --delay 3 -- -M virt -seed 1
  local f
  for f in aarch64-max-stopped.mig aarch64-max-stopped-again.mig aarch64-a57-stopped.mig; do
    M_NOTE[$f]="No firmware (\`-bios\`): the guest never runs, and the 2 MB UEFI image in flash would be most of the file. $seed_note"
  done
  for f in riscv64-stopped.mig riscv64-stopped-again.mig; do M_NOTE[$f]=$seed_note; done
  M_HOW[riscv64-running.mig]="QMP \`migrate {\"uri\": \"exec:cat > riscv64-running.mig\"}\`, sent 3 s after QEMU started (guest running QEMU's default OpenSBI firmware, no kernel)"
  M_NOTE[riscv64-running.mig]=$seed_note
  # UEFI (qemu-efi-aarch64) for a few seconds: its RAM and the 64 MiB flash are stripped, the device state stays.
  local cpu
  for cpu in max cortex-a57; do
    f=aarch64-${cpu#cortex-}-running.mig
    mig "$f" "$QEMU_A64" --mem 128 --delay 5 -- -M virt -cpu "$cpu" -bios /usr/share/qemu-efi-aarch64/QEMU_EFI.fd
    [ "$DRY" = 0 ] && want "$f" || continue
    M_HOW[$f]="QMP \`migrate {\"uri\": \"exec:cat > $f\"}\`, sent 5 s after QEMU started (guest running UEFI, no boot device)"
    strip_dump "$f"
  done
}

# ------------------------------------------------------------------------------------- booted Linux guests
# A Linux guest made from Debian packages only: the kernel package's vmlinuz and virtio modules, and
# busybox-static as init (scripts/guest/init), in an initramfs built here. The packages are fetched with
# `apt-get download` and unpacked with `dpkg -x` into the scratch directory (nothing is installed); for another
# architecture apt reads that architecture's package lists into the scratch directory too. The guest gets an
# address by DHCP over virtio-net (-netdev user), reads its virtio-blk disk, hashes data in a loop and prints
# READY on its serial console, which mig --ready waits for. Each dump is then rewritten by `migdiff strip`
# (every RAM page a zero page, device state byte for byte) and compressed with zstd once the oracle has read
# it: NAME.mig is committed as NAME.mig.zst (and is made by `scripts/gen-testdata.sh NAME.mig`).
MIGDIFF=$root/target/release/migdiff  # built by strip_dump, once a run
GUEST_MODULES=(virtio_pci virtio_net virtio_blk)
GUEST_READY=READY
declare -A GUEST_PKGS=()
declare -a ZSTD_AFTER_ORACLE=()

# wait_serial MARKER: waits (15 min at most: TCG boots are slow on a loaded host) for a line MARKER in serial.log.
wait_serial() {
  local _
  for _ in $(seq 900); do
    grep -qE "^$1"$'\r?$' "$scratch/serial.log" 2>/dev/null && return 0  # the console ends lines with CR LF
    kill -0 "$QPID" 2>/dev/null || { echo "gen-testdata: QEMU exited before the guest printed $1" >&2; return 1; }
    sleep 1
  done
  echo "gen-testdata: no $1 on the serial console after 15 min; its tail:" >&2
  tail -20 "$scratch/serial.log" >&2
  return 1
}

# build_initramfs ROOT OUT MODULE...: a gzip'd newc cpio of busybox (ROOT/bin/busybox), the init script and
# the kernel modules of ROOT/lib/modules/* named, each after the modules it depends on. depmod's modules.dep is
# not in the package, so dependencies come from each .ko's own "depends=" modinfo string.
build_initramfs() {
  local kroot=$1 out=$2; shift 2
  local mods ir=$scratch/initramfs order=() seen=' ' m
  mods=$(echo "$kroot"/lib/modules/*/kernel)
  rm -rf "$ir"
  mkdir -p "$ir"/{bin,dev,proc,sys,tmp,etc,lib/modules}
  cp "$kroot/bin/busybox" "$ir/bin/busybox"
  cp "$here/guest/init" "$ir/init"
  cp "$here/guest/udhcpc.script" "$ir/etc/udhcpc.script"
  add_module() {
    local name=$1 ko dep
    [[ $seen == *" $name "* ]] && return 0
    seen+="$name "
    ko=$(find "$mods" \( -name "$name.ko" -o -name "${name//_/-}.ko" \) | head -1)
    [ -n "$ko" ] || { echo "gen-testdata: no module $name in $mods" >&2; return 1; }
    for dep in $(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | tr ',' ' '); do add_module "$dep"; done
    cp "$ko" "$ir/lib/modules/"
    order+=("${ko##*/}")
  }
  for m in "$@"; do add_module "$m"; done
  printf '%s\n' "${order[@]}" >"$ir/modules"
  (cd "$ir" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 -n >"$out"
}

# guest_files ARCH (dpkg name: amd64, arm64): ARCH/vmlinuz and ARCH/initrd.gz in the scratch directory (once a
# run), from the newest kernel the metapackage depends on, and the guest's 1 MiB raw disk disk.img.
guest_files() {
  local arch=$1 dir=$scratch/$1 apt=() meta kpkg deb
  [ ! -f "$dir/initrd.gz" ] || return 0
  mkdir -p "$dir/debs" "$dir/root"
  if [ "$arch" != "$(dpkg --print-architecture)" ]; then
    mkdir -p "$scratch/apt-$arch/lists/partial" "$scratch/apt-$arch/cache/archives/partial"
    apt=(-o "Dir::State::Lists=$scratch/apt-$arch/lists" -o "Dir::Cache=$scratch/apt-$arch/cache"
         -o "APT::Architecture=$arch" -o "APT::Architectures=$arch")
    apt-get "${apt[@]}" -qq update
  fi
  case $arch in amd64) meta=linux-image-cloud-amd64 ;; *) meta=linux-image-$arch ;; esac
  kpkg=$(apt-cache "${apt[@]}" depends "$meta" | sed -n 's/^ *Depends: \(linux-image-[^ <]*\)$/\1/p' | head -1)
  (cd "$dir/debs" && apt-get "${apt[@]}" -qq download "$kpkg" busybox-static)
  for deb in "$dir"/debs/*.deb; do dpkg -x "$deb" "$dir/root"; done
  GUEST_PKGS[$arch]=$(cd "$dir/debs" && for deb in *.deb; do echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)"; done | paste -sd',' | sed 's/,/, /g')
  cp "$dir"/root/boot/vmlinuz-* "$dir/vmlinuz"
  build_initramfs "$dir/root" "$dir/initrd.gz" "${GUEST_MODULES[@]}"
  if [ ! -f "$scratch/disk.img" ]; then
    seq 1 140000 >"$scratch/disk.img"
    truncate -s 1M "$scratch/disk.img"
  fi
}

# gmig NAME BIN ARCH [--stopped] -- QEMU-ARGS...: mig NAME with the guest's kernel, initramfs, disk and NIC
# (paths relative to the scratch directory, where QEMU runs); waits for READY unless --stopped (then
# QEMU-ARGS hold -S and the dump is of the same VM before the firmware ran). Then strips the dump and queues
# it for zstd.
gmig() {
  local name=$1 bin=$2 arch=$3 stopped=0 console mem
  shift 3
  [ "$1" != --stopped ] || { stopped=1; shift; }
  shift
  # Debian's generic arm64 kernel is about twice the size of the amd64 cloud one.
  case $arch in amd64) console=ttyS0 mem=128 ;; *) console=ttyAMA0 mem=256 ;; esac
  local guest=(-kernel "$arch/vmlinuz" -initrd "$arch/initrd.gz" -append "console=$console panic=-1"
    -serial file:serial.log -netdev user,id=n0 -device virtio-net-pci,netdev=n0
    -drive file=disk.img,format=raw,if=none,id=d0 -device virtio-blk-pci,drive=d0)
  local wait=(--ready "$GUEST_READY")
  [ "$stopped" = 0 ] || wait=()
  if [ "$DRY" = 0 ] && want "$name"; then guest_files "$arch"; fi
  mig "$name" "$bin" --mem "$mem" "${wait[@]}" -- "$@" "${guest[@]}"
  [ "$DRY" = 0 ] && want "$name" || return 0
  if [ "$stopped" = 1 ]; then
    M_HOW[$name]="QMP \`migrate {\"uri\": \"exec:cat > $name\"}\` of the VM stopped at reset (\`-S\`: firmware, kernel and drivers never ran)"
  else
    M_HOW[$name]="QMP \`migrate {\"uri\": \"exec:cat > $name\"}\` once the guest printed \`$GUEST_READY\` on its serial console (scripts/guest/init: virtio modules loaded, DHCP lease over virtio-net, virtio-blk disk read, sha256sum loop running)"
  fi
  M_NOTE[$name]="Guest: ${GUEST_PKGS[$arch]} (Debian, unpacked with dpkg -x), initramfs of busybox, scripts/guest/init and the modules $(zcat "$scratch/$arch/initrd.gz" | cpio -i --quiet --to-stdout modules | paste -sd' '); disk.img is \`seq 1 140000\` padded with zeros to 1 MiB."
  strip_dump "$name"
}

# strip_dump NAME: rewrites testdata/NAME with `migdiff strip` and queues it for zstd after the oracle.
strip_dump() {
  local name=$1 size
  size=$(stat -c %s "$td/$name")
  if [ -z "${migdiff_built:-}" ]; then (cd "$root" && cargo build --release --quiet); migdiff_built=1; fi
  "$MIGDIFF" strip "$td/$name" -o "$scratch/stripped.mig"
  mv "$scratch/stripped.mig" "$td/$name"
  ZSTD_AFTER_ORACLE+=("$name")
  M_HOW[$name]="${M_HOW[$name]}; then \`migdiff strip\` (every RAM page a zero page, device state byte for byte; $size bytes before) and \`zstd -19\`"
}

# booted_guests: x86 q35 guests on QEMU 10 and 7.2, and aarch64 virt guests.
booted_guests() {
  gmig guest-q35-10-max.mig "$QEMU10" amd64 -- -M pc-q35-10.0 -cpu max
  gmig guest-q35-10-max-stopped.mig "$QEMU10" amd64 --stopped -- -M pc-q35-10.0 -cpu max -S
  gmig guest-q35-10-qemu64.mig "$QEMU10" amd64 -- -M pc-q35-10.0 -cpu qemu64
  gmig guest-q35-72-qemu72.mig "$QEMU72" amd64 -- -M pc-q35-7.2
  gmig guest-q35-72-qemu10.mig "$QEMU10" amd64 -- -M pc-q35-7.2
  gmig guest-aarch64-a57.mig "$QEMU_A64" arm64 -- -M virt -cpu cortex-a57
  gmig guest-aarch64-max.mig "$QEMU_A64" arm64 -- -M virt -cpu max
}

# ---------------------------------------------------------------------------------------------- qcow2
# qcow2_snapshots: internal snapshots (HMP savevm) in a qcow2 image attached to a stopped VM: savevm a, then the
# same VM's migration stream (pc10-savevm-a.mig, for comparison with snapshot a), then 1 s of running SeaBIOS
# and savevm b. The image is kept zstd-compressed (1.7 MB raw).
qcow2_snapshots() {
  local img=pc10-savevm.qcow2 mig=pc10-savevm-a.mig
  if [ "$DRY" = 1 ]; then ORDER+=("$img.zst" "$mig"); return 0; fi
  want "$img.zst" || want "$mig" || return 0
  rm -f "$td/$img.zst" "$td/$mig" "$td/oracle/${mig%.mig}.state.json"
  local mk=(qemu-img create -f qcow2 "$img" 16M)
  local cmd=("$QEMU10" "${COMMON[@]}" "${QMP_ARGS[@]}" -M pc-i440fx-10.0 -S -drive "file=$img,format=qcow2,if=ide")
  local hmp=("savevm a" "migrate $mig" cont "sleep 1" stop "savevm b")
  echo "== $img: $(show "${mk[@]}"); $(show "${cmd[@]}")"
  (cd "$scratch" && rm -f "$img" && "${mk[@]}" >/dev/null)
  start_qemu "${cmd[@]}"
  (cd "$scratch" && python3 "$here/qmp-hmp.py" qmp.sock "${hmp[@]}")
  wait_qemu
  zstd -19 -q -c "$scratch/$img" >"$td/$img.zst"
  mv "$scratch/$mig" "$td/$mig"
  caps_txt="(none)"; params_txt="(none)"
  local steps
  steps=$(printf '`%s`, ' "${hmp[@]}")
  record "$img.zst" "$QEMU10" "$(show "${mk[@]}"); $(show "${cmd[@]}")"
  M_MACH[$img.zst]=pc-i440fx-10.0
  M_HOW[$img.zst]="scripts/qmp-hmp.py runs, in order: ${steps%, } (HMP through QMP human-monitor-command; migrate as for the .mig files), then quit; the image is then compressed with $(zstd --version | head -1 | tr -d '*' | sed 's/^ *//; s/ *$//') (\`zstd -19\`)"
  M_ORACLE[$img.zst]="n/a (a disk image; the VM state of its snapshot a is byte-identical to $mig)"
  M_NOTE[$img.zst]="Internal snapshots a (id 1, the guest never ran) and b (id 2, after 1 s of SeaBIOS); QEMU puts their VM state at guest offset 0x20000000 (16 MiB disk rounded up to one L1 entry: 64 KiB clusters, 8192 L2 entries)."
  record "$mig" "$QEMU10" "$(show "${cmd[@]}")"
  M_HOW[$mig]="QMP \`migrate {\"uri\": \"exec:cat > $mig\"}\` right after HMP \`savevm a\` of the VM that wrote $img.zst (see there)"
}

# ---------------------------------------------------------------------------------------------- fixtures
# steps runs twice: a dry pass (DRY=1) that only lists every file in ORDER, then the real one.
steps() {
mig pc72-qemu72.mig "$QEMU72" -- -M pc-i440fx-7.2 -S
mig pc72-qemu10.mig "$QEMU10" -- -M pc-i440fx-7.2 -S
mig q35-72-qemu72.mig "$QEMU72" -- -M pc-q35-7.2 -S
mig q35-72-qemu10.mig "$QEMU10" -- -M pc-q35-7.2 -S
mig pc10-stopped.mig "$QEMU10" --again pc10-stopped-again.mig -- -M pc-i440fx-10.0 -S
mig pc10-running.mig "$QEMU10" --delay 2 -- -M pc-i440fx-10.0
mig pc10-running-ratelimited.mig "$QEMU10" --delay 2 --param max-bandwidth=200000 -- -M pc-i440fx-10.0
mig q35-10.mig "$QEMU10" -- -M pc-q35-10.0 -S
mig pc10-smp2.mig "$QEMU10" -- -M pc-i440fx-10.0 -smp 2 -S
mig pc10-e1000.mig "$QEMU10" -- -M pc-i440fx-10.0 -device e1000 -S
mig pc10-virtio-net.mig "$QEMU10" -- -M pc-i440fx-10.0 -netdev user,id=n0 -device virtio-net-pci,netdev=n0 -S
mig q35-10-xhci-tablet.mig "$QEMU10" -- -M pc-q35-10.0 -device qemu-xhci -device usb-tablet -S
mig pc10-cpu-max.mig "$QEMU10" -- -M pc-i440fx-10.0 -cpu max -S
mig pc10-i386.mig "$QEMU_I386" -- -M pc-i440fx-10.0 -S
mig pc10-suppress-vmdesc.mig "$QEMU10" -- -M pc-i440fx-10.0,suppress-vmdesc=on -S
M_ORACLE[pc10-suppress-vmdesc.mig]="not run: the file has no vmdesc JSON, which analyze-migration.py requires (it dies with \`OSError: [Errno 22] Invalid argument\` while looking for it)"

# QEMU's own qtest scenario (x-ignore-shared + validate-uuid). Falls back to a shared file backend without memfd.
if "$QEMU10" -object help | grep -qw memory-backend-memfd; then
  membackend=memory-backend-memfd,id=mem0,size=32M,share=on
else
  membackend=memory-backend-file,id=mem0,size=32M,mem-path=/dev/shm/migdiff-ignore-shared,share=on
fi
mig pc10-ignore-shared.mig "$QEMU10" --cap x-ignore-shared --cap validate-uuid -- \
  -M pc-i440fx-10.0 -S -uuid 11111111-2222-3333-4444-555555555555 -object "$membackend" -machine memory-backend=mem0
M_NOTE[pc10-ignore-shared.mig]="The guest RAM block \`mem0\` is shared and therefore not sent (only its header with a be64 GPA); the configuration section carries the \`configuration/capabilities\` (x-ignore-shared) and \`configuration/uuid\` subsections."

# Device-heavy q35 for benchmarks. The NICs get romfile= (no option ROM RAM block, ~490 KB less of PAGE data)
# so the file stays under 1 MB; edu has no vmstate (no section), it only occupies a PCI slot.
busy_devices=(
  -device "e1000,romfile=" -netdev "user,id=n0" -device "virtio-net-pci,netdev=n0,romfile="
  -device qemu-xhci -device usb-tablet -device usb-kbd
  -device virtio-rng-pci -device virtio-balloon-pci
  -audiodev "none,id=snd0" -device ich9-intel-hda -device "hda-duplex,audiodev=snd0"
  -device i6300esb -device pvpanic-pci -device edu -device virtio-serial-pci
)
mig q35-10-busy.mig "$QEMU10" -- -M pc-q35-10.0 -smp 4 "${busy_devices[@]}" -S
M_NOTE[q35-10-busy.mig]="hda-duplex needs an audio backend under -nodefaults (\"no default audio driver available\"), hence \`-audiodev none\`. \`romfile=\` on both NICs drops their option-ROM RAM blocks to keep the file small. \`edu\` has no vmstate and adds no section."

# ESP SCSI controllers (am53c974 = PCI device pciespscsi, dc390 is a subclass) on pc-q35-7.2, from both QEMUs.
for dev in am53c974 dc390; do
  mig "q35-72-$dev-qemu72.mig" "$QEMU72" -- -M pc-q35-7.2 -device "$dev" -S
  mig "q35-72-$dev-qemu10.mig" "$QEMU10" -- -M pc-q35-7.2 -device "$dev" -S
  M_NOTE[q35-72-$dev-qemu72.mig]="QEMU 10.0.2 refuses this stream on \`-M pc-q35-7.2 -device $dev\` (\`Missing section footer for 0000:00:01.0/pciespscsi\`), while q35-72-$dev-qemu10.mig loads into QEMU 7.2: see scripts/verdict-check.sh."
done

# Two user-mode (slirp) netdevs without a NIC, if this QEMU build has the slirp backend.
if "$QEMU10" -netdev help 2>/dev/null | grep -qx user; then
  mig pc10-two-slirp.mig "$QEMU10" -- -M pc-i440fx-10.0 -netdev user,id=n0 -netdev user,id=n1 -S
  M_NOTE[pc10-two-slirp.mig]="Two \`-netdev user\` backends and no NIC: two \`slirp\` sections, instance ids 0 and 1."
elif [ "$DRY" = 0 ] && want pc10-two-slirp.mig; then
  echo "gen-testdata: $QEMU10 has no -netdev user (slirp) backend: pc10-two-slirp.mig not made" >&2
fi

mig pc10-m64.mig "$QEMU10" --mem 64 -- -M pc-i440fx-10.0 -S
M_NOTE[pc10-m64.mig]="pc10-stopped.mig's configuration with \`-m 64\` instead of \`-m 32\` (\`pc.ram\` is 0x4000000 bytes)."

qcow2_snapshots

# Compressed copies of pc10-stopped.mig, and -dump-vmstate files: no migration of their own.
caps_txt="n/a"; params_txt="n/a"
: >"$scratch/qemu.log"
if step pc10-stopped.mig.gz; then
  gzip -9 -n -c "$td/pc10-stopped.mig" >"$td/pc10-stopped.mig.gz"
  record pc10-stopped.mig.gz "$QEMU10" "gzip -9 -n -c pc10-stopped.mig > pc10-stopped.mig.gz"
  M_HOW[pc10-stopped.mig.gz]="compressed copy of pc10-stopped.mig made with $(gzip --version | head -1); the stream inside is byte-identical to pc10-stopped.mig"
  gzip -dc "$td/pc10-stopped.mig.gz" | cmp - "$td/pc10-stopped.mig"
fi
if step pc10-stopped.mig.zst; then
  zstd -19 -q -c "$td/pc10-stopped.mig" >"$td/pc10-stopped.mig.zst"
  record pc10-stopped.mig.zst "$QEMU10" "zstd -19 -q -c pc10-stopped.mig > pc10-stopped.mig.zst"
  M_HOW[pc10-stopped.mig.zst]="compressed copy of pc10-stopped.mig made with $(zstd --version | head -1 | tr -d '*' | sed 's/^ *//; s/ *$//'); the stream inside is byte-identical to pc10-stopped.mig"
  zstd -q -dc "$td/pc10-stopped.mig.zst" | cmp - "$td/pc10-stopped.mig"
fi
for f in pc10-stopped.mig.gz pc10-stopped.mig.zst; do
  M_ORACLE[$f]="not run: analyze-migration.py reads raw streams only (decompress first; the result is pc10-stopped.mig)"
done

# -dump-vmstate descriptions (for vmstate-static-checker-style schema comparisons); gzip if > 3 MB.
# MACHINE:SHORT makes vmstate-SHORT-qemu72.json and vmstate-SHORT-qemu10.json.
for spec in pc-i440fx-7.2:pc72 pc-q35-7.2:q35-72; do
  machine=${spec%%:*}
  for v in 72 10; do
    if [ $v = 72 ]; then bin=$QEMU72; else bin=$QEMU10; fi
    vout=vmstate-${spec#*:}-qemu$v.json
    step "$vout" || continue
    rm -f "$td/$vout.gz"
    vcmd=("$bin" -M "$machine" -dump-vmstate "$vout")
    echo "== $vout: $(show "${vcmd[@]}")"
    (cd "$scratch" && "${vcmd[@]}" >"$scratch/qemu.log" 2>&1)
    if [ "$(stat -c %s "$scratch/$vout")" -gt 3000000 ]; then
      gzip -9 -n "$scratch/$vout"
      vout=$vout.gz
    fi
    mv "$scratch/$vout" "$td/$vout"
    record "$vout" "$bin" "$(show "${vcmd[@]}")"
    M_MACH[$vout]=$machine
    M_HOW[$vout]="\`-dump-vmstate\` (QEMU writes the JSON and exits; no guest is started)"
    M_ORACLE[$vout]="n/a (not a migration stream)"
  done
done

other_targets
booted_guests
stream_steps   # the stream-format fixtures (section "stream formats" below)
}

# ---------------------------------------------------------------------------------------------- stream formats
# Fixtures for the stream formats beyond plain precopy RAM: XBZRLE (a live migration of a guest that keeps
# writing memory, the same state re-sent plain, and the destination's RAM as QEMU itself rebuilt it), mapped-ram
# (file: migration, with and without multifd), the pseries and s390x iterative sections (spapr/htab,
# s390-storage_attributes), and a vmdesc whose length holds a 0x06 byte. Driver: scripts/qmp-stream.py.
# Large or sparse streams are committed zstd-compressed (.mig.zst); the oracle reads a decompressed copy.
QEMU_PPC64=qemu-system-ppc64
QEMU_S390X=qemu-system-s390x

# The guest of the XBZRLE fixture: a 512-byte boot sector (SeaBIOS boots it from an IDE disk) that fills the 128
# pages at 0x10000-0x8ffff with a pattern, then forever writes a round counter at offset 0 of each page and at an
# offset that moves with the round. Assembled from (GNU as, .code16, linked at 0x7c00):
#   cli; xor %ax,%ax; mov %ax,%ss; mov $0x7c00,%sp; mov %ax,%ds; mov $0x1000,%bx
#   fill: mov %bx,%es; xor %di,%di; 1: mov %di,%ax; add %bx,%ax; stosb; cmp $0x1000,%di; jb 1b
#         add $0x100,%bx; cmp $0x9000,%bx; jb fill; xor %dx,%dx
#   round: inc %dx; mov $0x4000,%cx; 2: loop 2b; mov $0x1000,%bx
#   3: mov %bx,%es; mov %dx,%di; shl $3,%di; and $0x0ff8,%di; mov %dx,%es:(%di); mov %dx,%es:0
#      add $0x100,%bx; cmp $0x9000,%bx; jb 3b; jmp round
DIRTY_GUEST_HEX=fa31c08ed0bc007c8ed8bb00108ec331ff89f801d8aa81ff001072f581c3000181fb009072e731d242b90040e2febb00108ec389d7c1e70381e7f80f268915268916000081c3000181fb009072e3ebd8
XBZRLE_ARGS=(-M pc-i440fx-10.0 -drive file=dirty-guest.img,format=raw,if=ide)

write_dirty_guest() {
  python3 - "$scratch/dirty-guest.img" "$DIRTY_GUEST_HEX" <<'PY'
import sys
code = bytes.fromhex(sys.argv[2])
open(sys.argv[1], "wb").write(code + bytes(510 - len(code)) + b"\x55\xaa")
PY
}

# stream_oracle NAME: analyze-migration.py on a decompressed copy of NAME (a .mig.zst), into oracle/BASE.state.json
# (zstd-compressed, .state.json.zst, when over 3 MB).
stream_oracle() {
  local f=$1 base=${1%.mig.zst}
  rm -f "$td/oracle/$base.state.json" "$td/oracle/$base.state.json.zst"
  if [ -z "${ANALYZE_MIGRATION:-}" ]; then
    M_ORACLE[$f]="not run (ANALYZE_MIGRATION was not set)"
    return 0
  fi
  zstd -q -d -c "$td/$f" >"$scratch/oracle-input.mig"
  echo "== oracle: $f (decompressed)"
  if python3 "$ANALYZE_MIGRATION" -f "$scratch/oracle-input.mig" -d state >"$td/oracle/$base.state.json" 2>"$scratch/oracle.err"; then
    M_ORACLE[$f]="[oracle/$base.state.json](oracle/$base.state.json) (of the decompressed stream)"
    if [ "$(stat -c %s "$td/oracle/$base.state.json")" -gt 3000000 ]; then
      zstd -19 -q --rm -f "$td/oracle/$base.state.json" && chmod 644 "$td/oracle/$base.state.json.zst"
      M_ORACLE[$f]="[oracle/$base.state.json.zst](oracle/$base.state.json.zst) (of the decompressed stream; compressed)"
    fi
  else
    rm -f "$td/oracle/$base.state.json"
    M_ORACLE[$f]="**FAILED**: \`$(grep -m1 -E '^[A-Za-z_.]*(Error|Exception)' "$scratch/oracle.err" | cut -c1-300)\`"
  fi
  rm -f "$scratch/oracle-input.mig"
}

# stream_mig NAME BIN URI-KIND [--mem MIB] [qmp-stream.py migrate options] -- QEMU-ARGS...: one QEMU, one
# migration to "exec:cat > NAME" (URI-KIND exec) or "file:NAME" (URI-KIND file), the stream compressed into
# testdata/NAME. --mem replaces COMMON's -m 32.
stream_mig() {
  local name=$1 bin=$2 kind=$3; shift 3
  local opts=() caps=() params=() mem=32
  while [ "$1" != -- ]; do
    case $1 in
      --mem) mem=$2 ;;
      --cap) caps+=("$2"); opts+=("$1" "$2") ;;
      --param|--finish-param) params+=("$2"); opts+=("$1" "$2") ;;
      *) opts+=("$1" "$2") ;;
    esac
    shift 2
  done
  shift
  step "$name" || return 0
  local raw=${name%.zst} uri common=("${COMMON[@]}") k
  for k in "${!common[@]}"; do
    if [ "${common[$k]}" = -m ]; then common[k+1]=$mem; fi
  done
  if [ "$kind" = file ]; then uri="file:$scratch/$raw"; else uri="exec:cat > $raw"; fi
  local cmd=("$bin" "${common[@]}" "${QMP_ARGS[@]}" "$@")
  caps_txt=${caps[*]:-(none)}; params_txt=${params[*]:-(none)}
  echo "== $name: $(show "${cmd[@]}")"
  start_qemu "${cmd[@]}"
  (cd "$scratch" && python3 "$here/qmp-stream.py" migrate qmp.sock "$uri" "${opts[@]}") >"$scratch/stats.json"
  wait_qemu
  zstd -19 -q -f "$scratch/$raw" -o "$td/$name" && chmod 644 "$td/$name"
  record "$name" "$bin" "$(show "${cmd[@]}")"
  M_HOW[$name]="QMP \`migrate {\"uri\": \"${uri/$scratch\//}\"}\` by scripts/qmp-stream.py, then \`zstd -19\`; query-migrate said: \`$(cat "$scratch/stats.json")\`"
  rm -f "$scratch/$raw"
}

stream_steps() {
# XBZRLE: several iterations (downtime-limit 1 ms keeps QEMU iterating, raised to 60 s after 4 s).
if [ "$DRY" = 0 ]; then write_dirty_guest; fi
stream_mig pc10-xbzrle-live.mig.zst "$QEMU10" exec --cap xbzrle --param max-bandwidth=4000000 \
  --param downtime-limit=1 --finish-after 4 --finish-param downtime-limit=60000 -- "${XBZRLE_ARGS[@]}"
M_NOTE[pc10-xbzrle-live.mig.zst]="The guest is a 512-byte boot sector (scripts/gen-testdata.sh, DIRTY_GUEST_HEX) that keeps rewriting 128 pages, so most pages after the first pass travel as XBZRLE deltas, some over earlier deltas. pc10-xbzrle-resent.mig.zst is the same state loaded by QEMU and sent again plain; pc10-xbzrle-live.pmem.xxh3 holds the digests of the RAM QEMU rebuilt from this stream."
M_ORACLE[pc10-xbzrle-live.mig.zst]="not run: analyze-migration.py refuses XBZRLE pages (\`XBZRLE RAM compression is not supported yet\`)"

# The destination of pc10-xbzrle-live: QEMU loads the stream (-incoming), pmemsaves guest RAM (an independent
# reconstruction of every XBZRLE page), and migrates the loaded state out again with every page plain. Makes
# pc10-xbzrle-live.pmem.xxh3 too; remake both whenever pc10-xbzrle-live.mig.zst is remade.
if step pc10-xbzrle-resent.mig.zst; then
  command -v xxhsum >/dev/null || { echo "gen-testdata: xxhsum not found (apt-get install xxhash)" >&2; exit 1; }
  zstd -q -d -c "$td/pc10-xbzrle-live.mig.zst" >"$scratch/live.mig"
  cmd=("$QEMU10" "${COMMON[@]}" "${QMP_ARGS[@]}" "${XBZRLE_ARGS[@]}" -S -incoming "exec:cat live.mig")
  echo "== pc10-xbzrle-resent.mig.zst: $(show "${cmd[@]}")"
  start_qemu "${cmd[@]}"
  (cd "$scratch" && python3 "$here/qmp-stream.py" incoming qmp.sock --pmemsave "0:0x2000000:$scratch/pmem.bin" \
    --then "exec:cat > resent.mig")
  wait_qemu
  zstd -19 -q -f "$scratch/resent.mig" -o "$td/pc10-xbzrle-resent.mig.zst"
  caps_txt="(none)"; params_txt="(none)"
  record pc10-xbzrle-resent.mig.zst "$QEMU10" "$(show "${cmd[@]}")"
  M_HOW[pc10-xbzrle-resent.mig.zst]="QEMU loads pc10-xbzrle-live.mig (-incoming, -S), then QMP \`pmemsave\` of guest-physical 0-0x1ffffff and \`migrate {\"uri\": \"exec:cat > resent.mig\"}\` with no capabilities, then \`zstd -19\`"
  M_NOTE[pc10-xbzrle-resent.mig.zst]="Its RAM is what QEMU rebuilt from pc10-xbzrle-live's XBZRLE deltas, sent as plain pages: migdiff finds no RAM difference between the two."
  stream_oracle pc10-xbzrle-resent.mig.zst
  # Page digests of the pmemsave (xxh3-64, as migdiff's): runs "START COUNT DIGEST", page indices in pc.ram,
  # which is guest-physical 0-0x1ffffff with -m 32 (pmemsave reads 0xa0000-0xfffff through the RAM too here).
  mkdir -p "$scratch/pages"
  python3 - "$scratch/pmem.bin" "$scratch/pages" <<'PY'
import sys
mem = open(sys.argv[1], "rb").read()
for i in range(len(mem) // 4096):
    open(f"{sys.argv[2]}/{i:05d}", "wb").write(mem[i * 4096:(i + 1) * 4096])
PY
  (cd "$scratch/pages" && xxhsum -H3 -- *) | python3 -c '
import sys
runs = []
for line in sys.stdin:
    name, digest = line.rsplit(" = ", 1)
    page, digest = int(name[name.index("(") + 1:-1]), digest.strip()
    if runs and runs[-1][2] == digest and runs[-1][0] + runs[-1][1] == page:
        runs[-1][1] += 1
    else:
        runs.append([page, 1, digest])
print("# pc.ram page digests (xxh3-64) of QEMU'"'"'s pmemsave after loading pc10-xbzrle-live.mig: START COUNT DIGEST")
for r in runs:
    print(*r)' >"$td/pc10-xbzrle-live.pmem.xxh3"
  rm -rf "$scratch/pages" "$scratch/pmem.bin" "$scratch/live.mig" "$scratch/resent.mig"
fi
if [ "$DRY" = 1 ]; then ORDER+=(pc10-xbzrle-live.pmem.xxh3); fi
caps_txt="n/a"; params_txt="n/a"
if [ "$DRY" = 0 ] && want pc10-xbzrle-resent.mig.zst; then
  : >"$scratch/qemu.log"
  record pc10-xbzrle-live.pmem.xxh3 "$QEMU10" "pmemsave 0 0x2000000 (QMP), then xxhsum -H3 per 4 KiB page"
  M_MACH[pc10-xbzrle-live.pmem.xxh3]=pc-i440fx-10.0
  M_HOW[pc10-xbzrle-live.pmem.xxh3]="made with pc10-xbzrle-resent.mig.zst (see there): runs of equal page digests of the guest RAM QEMU rebuilt"
  M_ORACLE[pc10-xbzrle-live.pmem.xxh3]="n/a (it is itself an oracle: tests/streams.rs checks migdiff's pc.ram digests of pc10-xbzrle-live against it)"
fi

# mapped-ram: file: migration of a stopped guest, without and with multifd (2 channels).
stream_mig pc10-mapped-ram.mig.zst "$QEMU10" file --cap mapped-ram -- -M pc-i440fx-10.0 -S
stream_mig pc10-mapped-ram-multifd.mig.zst "$QEMU10" file --cap mapped-ram --cap multifd \
  --param multifd-channels=2 -- -M pc-i440fx-10.0 -S
for f in pc10-mapped-ram.mig.zst pc10-mapped-ram-multifd.mig.zst; do
  if [ "$DRY" = 0 ] && want "$f"; then
    stream_oracle "$f"
    M_NOTE[$f]="A sparse file (each RAM block's pages at fixed 1 MiB-aligned offsets, zero pages left as holes): compressed for the repository. Same guest as pc10-stopped.mig."
  fi
done

# pseries and s390x: their iterative sections, and each VM dumped twice (the default ignores).
for spec in "pseries:$QEMU_PPC64:-M pseries" "s390x:$QEMU_S390X:-M s390-ccw-virtio"; do
  IFS=: read -r short bin margs <<<"$spec"
  if ! command -v "$bin" >/dev/null; then
    [ "$DRY" = 1 ] || ! want "$short-stopped.mig.zst" || echo "gen-testdata: $bin not found: $short fixtures not made" >&2
    continue
  fi
  for again in "" -again; do
    # shellcheck disable=SC2086
    stream_mig "$short-stopped$again.mig.zst" "$bin" exec --mem 256 -- $margs -S
    if [ "$DRY" = 0 ] && want "$short-stopped$again.mig.zst"; then
      if [ -z "$again" ]; then
        stream_oracle "$short-stopped.mig.zst"
      else
        M_ORACLE[$short-stopped$again.mig.zst]="not run: the layout of $short-stopped.mig.zst, whose oracle output there is"
        M_NOTE[$short-stopped$again.mig.zst]="A second, identical QEMU process started after $short-stopped.mig.zst: what differs between the two is what the default ignores hold for $short."
      fi
    fi
  done
done

# dirty-bitmap: two block dirty bitmaps on a qcow2 disk, one persistent with 192 KiB written under it (by the HMP
# qemu-io command), migrated with the dirty-bitmaps capability: QEMU writes the iterative "dirty-bitmap" section
# into an exec: migration like any other.
if [ "$DRY" = 0 ] && want pc10-dirty-bitmap.mig.zst; then qemu-img create -f qcow2 "$scratch/disk.qcow2" 16M >/dev/null; fi
dbm_add='{"execute": "block-dirty-bitmap-add", "arguments": {"node": "disk0", "name": "bm0", "persistent": true, "granularity": 65536}}'
dbm_write='{"execute": "human-monitor-command", "arguments": {"command-line": "qemu-io -d hd0 \"write -P 0x55 1M 192k\""}}'
dbm_add2='{"execute": "block-dirty-bitmap-add", "arguments": {"node": "disk0", "name": "bm1", "persistent": false}}'
stream_mig pc10-dirty-bitmap.mig.zst "$QEMU10" exec --qmp "$dbm_add" --qmp "$dbm_write" --qmp "$dbm_add2" \
  --cap dirty-bitmaps -- -M pc-i440fx-10.0 -blockdev driver=file,filename=disk.qcow2,node-name=file0 \
  -blockdev driver=qcow2,file=file0,node-name=disk0 -device ide-hd,drive=disk0,id=hd0 -S
if [ "$DRY" = 0 ] && want pc10-dirty-bitmap.mig.zst; then
  M_NOTE[pc10-dirty-bitmap.mig.zst]="Before migrating, QMP: \`$dbm_add\`, \`$dbm_write\`, \`$dbm_add2\` (disk.qcow2: \`qemu-img create -f qcow2 disk.qcow2 16M\`)."
  M_ORACLE[pc10-dirty-bitmap.mig.zst]="not run: with dirty-bitmaps on QEMU sends a POSTCOPY_ADVISE command, on which analyze-migration.py dies (\`Exception: Unknown QEMU_VM_COMMAND: 3\`) before the section; it has no reader for dirty-bitmap either"
fi

# A vmdesc of 0xcd06 bytes: its length holds the 0x06 of the vmdesc marker.
mig q35-10-vmdesc-0xcd06.mig "$QEMU10" -- -M pc-q35-10.0 -device e1000,romfile= -device virtio-rng-pci \
  -device virtio-rng-pci -device virtio-balloon-pci -device ich9-usb-ehci1 -device i6300esb -S
M_NOTE[q35-10-vmdesc-0xcd06.mig]="Its vmdesc JSON is 0xcd06 bytes long, so the byte before the JSON is 0x06, the vmdesc marker's value: a locator that takes the last 0x06 as the marker finds no vmdesc."
}

steps
DRY=0
for a in "${!WANT[@]}"; do
  if [[ " ${ORDER[*]} " != *" $a "* ]]; then
    echo "gen-testdata: no recipe for $a; known files: ${ORDER[*]}" >&2
    exit 2
  fi
done
steps

# ---------------------------------------------------------------------------------------------- oracle
oracle_sha=
if [ -n "${ANALYZE_MIGRATION:-}" ]; then
  oracle_sha=$(sha256sum "$ANALYZE_MIGRATION" | cut -d' ' -f1)
  for f in "${FILES[@]}"; do
    case $f in *.mig) ;; *) continue ;; esac
    [ -z "${M_ORACLE[$f]:-}" ] || continue
    base=${f%.mig}
    echo "== oracle: $f"
    if python3 "$ANALYZE_MIGRATION" -f "$td/$f" -d state >"$td/oracle/$base.state.json" 2>"$scratch/oracle.err"; then
      M_ORACLE[$f]="[oracle/$base.state.json](oracle/$base.state.json)"
    else
      rm -f "$td/oracle/$base.state.json"
      # The script re-raises every error with the whole vmdesc attached: keep only the first exception line.
      err=$(grep -m1 -E '^[A-Za-z_.]*(Error|Exception)' "$scratch/oracle.err" | cut -c1-300)
      M_ORACLE[$f]="**FAILED**: \`${err:-unknown error}\`"
      echo "gen-testdata: oracle failed on $f: $err" >&2
    fi
  done
else
  echo "gen-testdata: ANALYZE_MIGRATION not set: skipping the oracle step (no oracle output for the files made in this run)" >&2
  for f in "${FILES[@]}"; do
    case $f in *.mig) [ -n "${M_ORACLE[$f]:-}" ] || M_ORACLE[$f]="not run (ANALYZE_MIGRATION was not set)" ;; esac
  done
fi

# Booted guests' dumps (gmig) are compressed once the oracle has read them; their entries follow the file.
for f in "${ZSTD_AFTER_ORACLE[@]}"; do
  zstd -19 -q -f --rm "$td/$f"
  for i in "${!FILES[@]}"; do [ "${FILES[$i]}" != "$f" ] || FILES[i]=$f.zst; done
  for map in M_VER M_CMD M_CAPS M_PARAMS M_HOW M_NOTE M_ORACLE M_STDERR M_MACH; do
    declare -n entry=$map
    [ -z "${entry[$f]+set}" ] || entry[$f.zst]=${entry[$f]}
    unset "entry[$f]"
    unset -n entry
  done
done

# ---------------------------------------------------------------------------------------------- README
# Machine type as written in the stream's configuration section (0x07, be32 len, name).
stream_machine() {
  python3 - "$1" <<'PY'
import gzip, sys
path = sys.argv[1]
d = open(path, "rb").read(512)
if path.endswith(".gz"):
    d = gzip.open(path).read(512)
if d[:4] != b"QEVM" or d[8] != 7:
    print("?")
else:
    n = int.from_bytes(d[9:13], "big")
    print(d[13:13 + n].decode())
PY
}

# Each generated file's overview row and section go to $scratch/readme/{rows,sections}/NAME, the header to
# $scratch/readme/header. merge_readme then writes README.md: in a full run from these pieces alone, in a
# partial run (NAME...) with every other file's row and section taken word for word from the old README.md.
rd=$scratch/readme
mkdir -p "$rd/rows" "$rd/sections"
{
  cat <<'EOF'
# migdiff test data: real QEMU migration streams

Generated by `scripts/gen-testdata.sh` (do not edit by hand: this file is written by that script from what it
actually ran). To regenerate, as root on Debian bookworm:

```sh
ANALYZE_MIGRATION=<qemu-source>/scripts/analyze-migration.py scripts/gen-testdata.sh   # SKIP_INSTALL=1 to skip apt
```

`scripts/gen-testdata.sh NAME...` makes only the named files and rewrites only their entries below; every other entry
is kept word for word from the run that made that file (so each entry's oracle cell says how that file was checked).

`scripts/install-qemu.sh` installs QEMU 10.x from bookworm-backports as `qemu-system-x86_64` and QEMU 7.2 from
bookworm, unpacked under `/opt/qemu72` and run through the wrapper `/usr/local/bin/qemu-system-x86_64-7.2`, which adds
`QEMU_MODULE_DIR=/opt/qemu72/usr/lib/x86_64-linux-gnu/qemu` and
`-L /opt/qemu72/usr/share/qemu -L /usr/share/seabios -L /usr/lib/ipxe/qemu` (firmware search paths).

Each `.mig` is a precopy stream written by QMP `migrate {"uri": "exec:cat > NAME.mig"}` (driver:
`scripts/qmp-migrate.py`, which polls `query-migrate` until `completed` and then sends `quit`). QEMU runs under TCG in a
scratch directory holding the QMP socket `qmp.sock`; the command lines below are exact. RTC, timer and TSC state
comes from the host clock, so regenerated files differ from these in those fields (and so in sha256), not in
layout. `-S` means the guest never ran (runstate `prelaunch`); the other x86 `pc10-*`/`q35-*` files ran SeaBIOS with
no boot device. `guest-*` files booted Linux (kernel and busybox from Debian packages, init `scripts/guest/init`) and
are committed stripped (`migdiff strip`: RAM pages zeroed, device state intact) and zstd-compressed; `aarch64-*` and
`riscv64-*` files are Arm and RISC-V `virt` machines. Each entry's "how" and "note" say what ran.

**Oracle.** `oracle/NAME.state.json` is the output of QEMU's own `scripts/analyze-migration.py -f NAME.mig -d state`
(keys are `"<idstr> (<section_id>)"`, values as that script formats them). The oracle cannot read:
`pc10-suppress-vmdesc.mig` (no vmdesc JSON: the script needs it and dies with `OSError: [Errno 22]`), and the
`.gz`/`.zst` copies of `pc10-stopped.mig` (raw streams only; the other `.mig.zst` files were read before
compression). Any other failure is listed in the table below and in the file's section.
EOF
  if [ -n "$oracle_sha" ]; then
    echo
    echo "analyze-migration.py used: sha256 \`$oracle_sha\`."
  fi
  echo
} >"$rd/header"
for f in "${FILES[@]}"; do
  case $f in
    *.mig|*.mig.gz) mach=$(stream_machine "$td/$f") ;;
    *.mig.zst) zstd -q -d -c "$td/$f" >"$scratch/unzstd.mig" && mach=$(stream_machine "$scratch/unzstd.mig") ;;
    *) mach=${M_MACH[$f]} ;;
  esac
  M_MACH[$f]=$mach
  ver=${M_VER[$f]#QEMU emulator version }
  echo "| \`$f\` | $(stat -c %s "$td/$f") | ${ver%% *} | \`$mach\` | ${M_ORACLE[$f]:-} |" >"$rd/rows/$f"
  {
    echo "### \`$f\`"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| QEMU version | ${M_VER[$f]} |"
    echo "| machine type | \`${M_MACH[$f]}\` |"
    echo "| command line | \`${M_CMD[$f]}\` |"
    echo "| how | ${M_HOW[$f]} |"
    echo "| QMP migrate-set-capabilities | ${M_CAPS[$f]} |"
    echo "| QMP migrate-set-parameters | ${M_PARAMS[$f]} |"
    echo "| sha256 | \`$(sha256sum "$td/$f" | cut -d' ' -f1)\` |"
    echo "| size | $(stat -c %s "$td/$f") bytes |"
    echo "| oracle | ${M_ORACLE[$f]:-} |"
    if [ -n "${M_NOTE[$f]:-}" ]; then echo "| note | ${M_NOTE[$f]} |"; fi
    if [ -n "${M_STDERR[$f]}" ]; then
      echo
      echo "QEMU stderr:"
      echo
      echo "${M_STDERR[$f]}"
    fi
  } >"$rd/sections/$f"
done
printf '%s\n' "${ORDER[@]}" >"$rd/order"
printf '%s\n' "${FILES[@]}" >"$rd/made"
old_readme=
if [ "$partial" = 1 ]; then cp "$td/README.md" "$scratch/README.old.md"; old_readme=$scratch/README.old.md; fi

# merge_readme DIR [OLD-README]: the new README.md on stdout (see above).
merge_readme() {
  python3 - "$1" "${2:-}" <<'PY'
import os, re, sys
rd, old = sys.argv[1], sys.argv[2]
def read(*p):
    with open(os.path.join(*p), encoding="utf-8") as f:
        return f.read()
order = read(rd, "order").split()
made = read(rd, "made").split()
header = read(rd, "header")
rows = {f: read(rd, "rows", f) for f in made}
secs = {f: read(rd, "sections", f) for f in made}
if old:
    text = read(old)
    pre, sep, rest = text.partition("## Overview\n")
    ov, sep2, files = rest.partition("\n## Files\n")
    if not sep or not sep2:
        sys.exit("gen-testdata: cannot parse the old README.md (no Overview/Files headings)")
    # Keep the old run's analyze-migration.py line when this run did not use the oracle.
    m = re.search(r"^analyze-migration\.py used: sha256 `[0-9a-f]+`\.\n", pre, re.M)
    if m and "analyze-migration.py used:" not in header:
        header = header.rstrip("\n") + "\n\n" + m.group(0) + "\n"
    old_names = []
    for line in ov.splitlines(True):
        m = re.match(r"\| `([^`]+)` \|", line)
        if m and m.group(1) not in rows:
            rows[m.group(1)] = line
            old_names.append(m.group(1))
    for chunk in re.split(r"(?m)^(?=### `)", files)[1:]:
        name = re.match(r"### `([^`]+)`", chunk).group(1)
        if chunk.endswith("\n\n"):
            chunk = chunk[:-1]  # the blank line before the next heading is written with that heading
        if name not in secs:
            secs[name] = chunk
    for name in old_names:
        if name not in secs:
            sys.exit(f"gen-testdata: the old README.md has a row but no section for {name}")
def rank(name):
    for n in (name, re.sub(r"\.(gz|zst)$", "", name)):
        if n in order:
            return order.index(n)
    print(f"gen-testdata: README.md entry {name} has no recipe any more: kept at the end", file=sys.stderr)
    return len(order)
names = sorted(rows, key=rank)  # stable: entries without a recipe keep their old order, at the end
out = [header, "## Overview\n\n", "| file | size (bytes) | QEMU | machine | oracle |\n", "|---|---:|---|---|---|\n"]
out += [rows[n] for n in names]
out.append("\n## Files\n")
out += ["\n" + secs[n] for n in names]
sys.stdout.write("".join(out))
PY
}
merge_readme "$rd" "$old_readme" >"$scratch/README.new.md"
mv "$scratch/README.new.md" "$td/README.md"

echo "gen-testdata: done"
( cd "$td" && ls -l ./*.mig* ./*.json* oracle/ ) || true
du -sh "$td"

#!/usr/bin/env bash
# verdict-check.sh: does `migdiff check` predict what a real destination QEMU does with a stream?
#
#   scripts/verdict-check.sh [--qemu-only] [--dst KINDS] [CASE-NUMBER...]
#   scripts/verdict-check.sh [--qemu-only] [--dst KINDS] --machines PATTERN
#
# For every case of the table below (a source dump, a dump the destination made, and the destination QEMU's
# command line) it
#   1. runs `migdiff check SRC --against DST...` with the destination described three ways (KINDS):
#        dump     the destination's dump only (--against DUMP)
#        vmstate  the destination QEMU's -dump-vmstate for the destination's machine type only: the
#                 testdata/vmstate-*.json fixture where there is one (pc-i440fx-7.2 and pc-q35-7.2 on
#                 either QEMU), else made on the fly with `QEMU -M TYPE -dump-vmstate F`
#        both     --against DUMP --against VMSTATE (migdiff's most decided answer)
#      and maps each exit status to a predicted verdict: 0 = loads, 1 = refused, 3 = not decided,
#      anything else = trouble; the first reason is its first "refused" line (or first "undecided" line);
#   2. really tries it, once per case: starts the destination QEMU (TCG, paused, QMP on a unix socket)
#      with -incoming "exec:cat SRC" and waits (TIMEOUT seconds, default 20) until QMP query-migrate says
#      "completed" (loads) or "failed" (refused), or QEMU exits with "load of migration failed" and
#      friends on stderr (refused). Anything else (timeout, QEMU not starting) is "trouble".
# It then prints a Markdown table, one row per (case, kind): case | DST given to migdiff | predicted |
# actual (QEMU) | agree? | QEMU's message. agree? is "yes" when the predicted loads/refused is QEMU's
# verdict ("yes (other wording)": a refusal whose first reason is not QEMU's message word for word),
# "not decided" when migdiff did not decide (neither agreement nor disagreement), "**NO**" when the
# prediction is the other verdict, "trouble" when migdiff or QEMU gave no verdict. Then one count line per
# kind and one for all: "N agree, M not decided, K disagree" (", T trouble" when there is any).
# Exit status: 0 when nothing disagrees and nothing is trouble, 1 otherwise (2 on bad usage).
# QEMU's message is its first stderr line that is not a warning, without the "qemu-system-x86_64: " prefix.
#
# SRC and DST are files in testdata/, or @NAME: a stream or -dump-vmstate file made on the fly in the
# scratch directory (recipes in make_dump). Rows that run the very same QEMU command on the same SRC share
# one QEMU run.
#
# --machines PATTERN: instead of the cases, every versioned machine type that both QEMU 7.2 and QEMU 10 offer
# (`-M help`), restricted to pc-i440fx-* and pc-q35-* names matching the shell glob PATTERN (e.g. 'pc-*',
# 'pc-q35-7.*'), both ways: forward (a QEMU 7.2 dump loaded by QEMU 10) and backward (a QEMU 10 dump of the
# same type loaded by QEMU 7.2), all with -m 32 -S and -nodefaults. Dumps and the destination QEMU's
# -dump-vmstate of each type are made on the fly; at most JOBS QEMUs run at a time. One table row per
# (type, direction): migdiff's prediction for each KIND, QEMU's verdict and message; then the count lines.
#
# --dst KINDS: a comma-separated subset of dump,vmstate,both (default all three).
# --qemu-only skips migdiff entirely (only the QEMU half; exit 1 if a QEMU run ended in trouble).
# CASE-NUMBER restricts the run to those cases (1-based, as numbered in the table).
#
# Environment:
#   MIGDIFF   the migdiff binary (default: target/release/migdiff next to this script's repository)
#   QEMU10    QEMU 10.x binary (default: qemu-system-x86_64)
#   QEMU72    QEMU 7.2 binary (default: qemu-system-x86_64-7.2)
#   TIMEOUT   seconds per QEMU run (default 20)
#   JOBS      --machines only: QEMU processes at a time (default 2)
#   LOG_DIR   if set, every case's migdiff output and QEMU stderr are kept there (caseN.qemu,
#             caseN.KIND.migdiff; with --machines TYPE.fwd.qemu, TYPE.fwd.KIND.migdiff, same for bwd)
#
# Needs python3 (stdlib only) for the QMP side. Not run in CI: it needs real QEMU binaries (see
# scripts/install-qemu.sh). On 2 CPUs the cases take about half a minute and --machines 'pc-*' (47 types, 94
# loads) about a minute. The destination command lines copy the source's command line from
# testdata/README.md except for the one deliberate difference of each case.
# Skipped on purpose: pc10-ignore-shared.mig (the destination would need the memfd backend, the same uuid
# and the x-ignore-shared/validate-uuid capabilities set before migrate-incoming).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
td=$root/testdata
MIGDIFF=${MIGDIFF:-$root/target/release/migdiff}
QEMU10=${QEMU10:-qemu-system-x86_64}
QEMU72=${QEMU72:-qemu-system-x86_64-7.2}
TIMEOUT=${TIMEOUT:-20}
JOBS=${JOBS:-2}
LOG_DIR=${LOG_DIR:-}

qemu_only=0 machines='' dst_kinds=dump,vmstate,both
declare -a only=()
while [ $# -gt 0 ]; do
  case $1 in
    --qemu-only) qemu_only=1 ;;
    --machines) [ $# -ge 2 ] || { echo "verdict-check: --machines needs a PATTERN" >&2; exit 2; }
      machines=$2; shift ;;
    --machines=*) machines=${1#--machines=} ;;
    --dst) [ $# -ge 2 ] || { echo "verdict-check: --dst needs KINDS" >&2; exit 2; }
      dst_kinds=$2; shift ;;
    --dst=*) dst_kinds=${1#--dst=} ;;
    -h|--help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    [0-9]*) only+=("$1") ;;
    *) echo "verdict-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$machines" ] && [ ${#only[@]} -gt 0 ]; then
  echo "verdict-check: --machines and CASE-NUMBER do not go together" >&2
  exit 2
fi
declare -a KINDS=()
IFS=, read -r -a KINDS <<<"$dst_kinds"
[ ${#KINDS[@]} -gt 0 ] || { echo "verdict-check: --dst needs at least one of dump,vmstate,both" >&2; exit 2; }
for k in "${KINDS[@]}"; do
  case $k in dump|vmstate|both) ;;
    *) echo "verdict-check: --dst: unknown kind '$k' (dump, vmstate, both)" >&2; exit 2 ;; esac
done
case $JOBS in ''|*[!0-9]*|0) echo "verdict-check: JOBS must be a positive number" >&2; exit 2 ;; esac

for b in "$QEMU10" "$QEMU72" python3; do
  command -v "$b" >/dev/null || { echo "verdict-check: $b not found" >&2; exit 2; }
done
if [ "$qemu_only" = 0 ] && [ ! -x "$MIGDIFF" ]; then
  echo "verdict-check: $MIGDIFF not found (cargo build --release, or set MIGDIFF); predictions will say trouble" >&2
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
[ -z "$LOG_DIR" ] || mkdir -p "$LOG_DIR"

# ------------------------------------------------------------------------------------------------ cases
# add_case SRC DST BINVAR NOTE -- QEMU-ARGS...
#   SRC     the stream QEMU is fed: a fixture in testdata/, or @NAME for a dump made on the fly by make_dump
#   DST     a dump the destination made (same machine type and devices): a file in testdata/, or @NAME.
#           The destination's -dump-vmstate is found from BINVAR and the -M of QEMU-ARGS (vmstate_for).
#   BINVAR  QEMU10 or QEMU72: the destination binary
#   QEMU-ARGS  the destination's configuration; -S, -display none, -qmp and -incoming are added.
BASE=(-nodefaults -display none -accel tcg)
declare -a C_SRC=() C_DST=() C_BIN=() C_NOTE=() C_ARGS=() C_MACHINE=()
add_case() {
  C_SRC+=("$1"); C_DST+=("$2"); C_BIN+=("$3"); C_NOTE+=("$4")
  shift 5
  C_ARGS+=("$(printf '%q ' "$@")")
  local m=
  while [ $# -gt 0 ]; do
    if [ "$1" = -M ] && [ $# -ge 2 ]; then m=$2; fi
    shift
  done
  C_MACHINE+=("$m")
}

# vmstate_for BINVAR MACHINE: the destination QEMU's -dump-vmstate for MACHINE, as a DST name: a testdata/
# fixture where there is one, else @vmstate-MACHINE-qemu10.json / -qemu72.json (made on the fly). The
# content does not depend on the machine type except its name.
vmstate_for() {
  local q=qemu10
  [ "$1" != QEMU72 ] || q=qemu72
  case $2 in
    pc-i440fx-7.2) echo "vmstate-pc72-$q.json" ;;
    pc-q35-7.2) echo "vmstate-q35-72-$q.json" ;;
    *) echo "@vmstate-$2-$q.json" ;;
  esac
}

add_case pc72-qemu72.mig pc72-qemu10.mig QEMU10 "forward 7.2 -> 10" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-7.2
add_case pc72-qemu10.mig pc72-qemu72.mig QEMU72 "backward 10 -> 7.2" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-7.2
add_case q35-72-qemu72.mig q35-72-qemu10.mig QEMU10 "forward 7.2 -> 10, q35" -- \
  "${BASE[@]}" -m 32 -M pc-q35-7.2
add_case pc10-e1000.mig pc10-stopped.mig QEMU10 "e1000 missing on the destination" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0
add_case pc10-smp2.mig pc10-stopped.mig QEMU10 "2 CPUs into -smp 1" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0 -smp 1
add_case pc10-stopped.mig pc10-smp2.mig QEMU10 "1 CPU into -smp 2" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0 -smp 2
add_case q35-10.mig pc10-stopped.mig QEMU10 "machine type q35 into i440fx" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0
add_case pc10-stopped.mig pc10-m64.mig QEMU10 "32 MiB RAM into -m 64" -- \
  "${BASE[@]}" -m 64 -M pc-i440fx-10.0
add_case pc10-running.mig pc10-stopped.mig QEMU10 "running source, same config" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0
add_case pc10-cpu-max.mig pc10-stopped.mig QEMU10 "-cpu max into the default CPU" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0
# Two more: a missing device without a RAM block (so the section itself is what QEMU trips on), and the
# reverse of case 4, a device the destination has but the stream lacks.
add_case q35-10-xhci-tablet.mig q35-10.mig QEMU10 "xhci + tablet missing on the destination" -- \
  "${BASE[@]}" -m 32 -M pc-q35-10.0
add_case pc10-stopped.mig pc10-e1000.mig QEMU10 "destination has an e1000 the stream lacks" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0 -device e1000
# ESP SCSI controllers on q35-7.2, both ways.
for dev in am53c974 dc390; do
  add_case "q35-72-$dev-qemu72.mig" "q35-72-$dev-qemu10.mig" QEMU10 "$dev forward 7.2 -> 10, q35" -- \
    "${BASE[@]}" -m 32 -M pc-q35-7.2 -device "$dev"
  add_case "q35-72-$dev-qemu10.mig" "q35-72-$dev-qemu72.mig" QEMU72 "$dev backward 10 -> 7.2, q35" -- \
    "${BASE[@]}" -m 32 -M pc-q35-7.2 -device "$dev"
done
# Configuration differences on one QEMU (a -dump-vmstate alone cannot show them: it has no instances).
add_case pc10-two-slirp.mig @pc10-one-slirp.mig QEMU10 "two slirp netdevs into one" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0 -netdev user,id=n0
add_case @pc10-one-slirp.mig pc10-two-slirp.mig QEMU10 "one slirp netdev (made on the fly) into two" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0 -netdev user,id=n0 -netdev user,id=n1
add_case pc10-m64.mig pc10-stopped.mig QEMU10 "64 MiB RAM into -m 32" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0
add_case q35-10.mig q35-10-xhci-tablet.mig QEMU10 "xhci + tablet only on the destination" -- \
  "${BASE[@]}" -m 32 -M pc-q35-10.0 -device qemu-xhci -device usb-tablet
# Guests that ran 5 s (SeaBIOS, no boot device) before the migration, dumped on the fly.
add_case @pc10-ran5s.mig pc10-stopped.mig QEMU10 "source ran 5 s (made on the fly), 10 -> 10" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0
add_case @pc72-ran5s-qemu72.mig pc72-qemu10.mig QEMU10 "source ran 5 s on QEMU 7.2 (made on the fly), 7.2 -> 10" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-7.2

# ------------------------------------------------------------------------------------ on-the-fly dumps
# dump_stream OUT BIN DELAY ARGS...: starts BIN ARGS with a QMP socket, waits DELAY seconds and migrates
# into OUT through scripts/qmp-migrate.py. On failure OUT is removed and OUT.err says why (one line).
dump_stream() {
  local out=$1 bin=$2 delay=$3; shift 3
  local dir pid rc=0 _
  dir=$(mktemp -d "$scratch/dump.XXXXXX")
  rm -f "$out" "$out.err"
  "$bin" "$@" -qmp "unix:$dir/qmp.sock,server=on,wait=off" </dev/null >"$dir/qemu.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    [ ! -S "$dir/qmp.sock" ] || break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -S "$dir/qmp.sock" ]; then
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    { grep -v -e 'warning:' -e '^qemu: module' "$dir/qemu.log" | head -1; echo "(QEMU did not start)"; } |
      head -1 >"$out.err"
    return 1
  fi
  [ "$delay" = 0 ] || sleep "$delay"
  python3 "$here/qmp-migrate.py" "$dir/qmp.sock" "$out" >"$dir/qmp.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    cat "$dir/qmp.log" "$dir/qemu.log" | grep -v -e 'warning:' -e '^qemu: module' | head -1 >"$out.err"
    rm -f "$out"
    return 1
  fi
  wait "$pid" 2>/dev/null
  [ -s "$out" ] || { echo "empty dump" >"$out.err"; return 1; }
}

# dump_vmstate OUT BIN MACHINE: BIN -M MACHINE -dump-vmstate OUT (as scripts/gen-testdata.sh does).
dump_vmstate() {
  local out=$1 bin=$2 machine=$3 dir
  dir=$(mktemp -d "$scratch/vmstate.XXXXXX")
  rm -f "$out" "$out.err"
  if ! (cd "$dir" && "$bin" -M "$machine" -dump-vmstate "$out") </dev/null >"$dir/qemu.log" 2>&1 || [ ! -s "$out" ]; then
    { grep -v -e 'warning:' -e '^qemu: module' "$dir/qemu.log" | head -1; echo "-dump-vmstate failed"; } |
      head -1 >"$out.err"
    rm -f "$out"
    return 1
  fi
}

# make_dump NAME: the on-the-fly @NAME files, made once into $scratch/NAME.
make_dump() {
  local name=$1
  [ -s "$scratch/$name" ] && return 0
  case $name in
    pc10-one-slirp.mig)
      dump_stream "$scratch/$name" "$QEMU10" 0 "${BASE[@]}" -m 32 -M pc-i440fx-10.0 -netdev user,id=n0 -S ;;
    pc10-ran5s.mig)
      dump_stream "$scratch/$name" "$QEMU10" 5 "${BASE[@]}" -m 32 -M pc-i440fx-10.0 ;;
    pc72-ran5s-qemu72.mig)
      dump_stream "$scratch/$name" "$QEMU72" 5 "${BASE[@]}" -m 32 -M pc-i440fx-7.2 ;;
    vmstate-*-qemu10.json)
      local m=${name#vmstate-}
      dump_vmstate "$scratch/$name" "$QEMU10" "${m%-qemu10.json}" ;;
    vmstate-*-qemu72.json)
      local m=${name#vmstate-}
      dump_vmstate "$scratch/$name" "$QEMU72" "${m%-qemu72.json}" ;;
    *) echo "no recipe" >"$scratch/$name.err"; false ;;
  esac || {
    echo "verdict-check: could not make @$name: $(cat "$scratch/$name.err" 2>/dev/null)" >&2
    return 1
  }
}

# --------------------------------------------------------------------------------------------- QEMU run
# try_load ERRFILE SRC QEMU ARGS...: prints "VERDICT<TAB>MESSAGE" (loads/refused/trouble); QEMU's stderr goes
# to ERRFILE.
try_load() {
  python3 - "$TIMEOUT" "$scratch" "$@" <<'PY'
import json, os, shlex, socket, subprocess, sys, tempfile, time

timeout, scratch, err_path, src = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
cmd = sys.argv[5:]
work = tempfile.mkdtemp(dir=scratch, prefix="load.")
sock_path = os.path.join(work, "qmp.sock")
cmd = cmd + ["-S", "-display", "none", "-qmp", f"unix:{sock_path},server=on,wait=off",
             "-incoming", "exec:cat " + shlex.quote(src)]
with open(err_path, "w") as errf:
    proc = subprocess.Popen(cmd, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf)

sock = rfile = None
def qmp(name):
    sock.sendall(json.dumps({"execute": name}).encode() + b"\n")
    while True:
        line = rfile.readline()
        if not line:
            raise EOFError("QMP closed")
        resp = json.loads(line)
        if "event" not in resp:
            return resp

status, desc, seen = None, "", None
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    if proc.poll() is not None:
        break
    try:
        if sock is None:
            if not os.path.exists(sock_path):
                time.sleep(0.05)
                continue
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(sock_path)
            rfile = sock.makefile("r", encoding="utf-8")
            rfile.readline()  # greeting
            qmp("qmp_capabilities")
        ret = qmp("query-migrate").get("return", {})
        seen = ret.get("status", seen)
        if seen in ("completed", "failed"):
            status, desc = seen, ret.get("error-desc", "")
            break
    except (OSError, EOFError, ValueError):
        if sock is not None:
            sock.close()
        sock = None
    time.sleep(0.1)

if status == "completed":
    time.sleep(0.3)  # a destination that dies right after "completed" did not really load
    if proc.poll() is not None and proc.returncode != 0:
        status = None
exit_code = proc.poll()
if exit_code is None:
    try:
        if sock is not None:
            qmp("quit")
    except Exception:
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

with open(err_path) as f:
    lines = [l.rstrip("\n") for l in f]
def strip(l):
    head, sep, rest = l.partition(": ")
    return rest if sep and head.startswith("qemu") else l
errors = [strip(l) for l in lines
          if l.strip() and "warning:" not in l and not l.startswith("qemu: module")]
load_failed = any(k in l for l in lines for k in (
    "load of migration failed", "error while loading state", "Unknown savevm section",
    "cannot accept migration", "Machine type received"))

if status == "completed":
    verdict, msg = "loads", "migration completed" + (f" (stderr: {errors[0]})" if errors else "")
elif status == "failed" or load_failed:
    verdict, msg = "refused", (errors[0] if errors else desc or "query-migrate: failed")
elif exit_code is not None:
    verdict, msg = "trouble", f"QEMU exited ({exit_code}) before the migration finished" + \
        (f": {errors[0]}" if errors else "")
else:
    verdict, msg = "trouble", f"no verdict after {timeout:g} s (query-migrate status: {seen})"
print(f"{verdict}\t{msg}")
PY
}

# -------------------------------------------------------------------------------------- migdiff predict
# predict SRC DST...: prints "VERDICT<TAB>FIRST-REASON" (VERDICT: loads, refused, undecided or trouble) for
# `migdiff check SRC --against DST [--against DST2]`; the whole output goes to $scratch/migdiff.out.
# Text output is a headline, then one line per reason, "refused  SUBJECT: MESSAGE" or "undecided SUBJECT: ...".
# The first reason is the first "refused" line (or the first "undecided" line), without the keyword; failing
# those, the first non-empty line. Run from the repository root, so paths print relative.
predict() {
  local rc=0 verdict line src=$1 d
  local -a against=()
  shift
  for d in "$@"; do against+=(--against "$d"); done
  (cd "$root" && "$MIGDIFF" check "$src" "${against[@]}") >"$scratch/migdiff.out" 2>&1 </dev/null || rc=$?
  case $rc in
    0) verdict=loads ;;
    1) verdict=refused ;;
    3) verdict=undecided ;;
    *) verdict=trouble ;;
  esac
  local out=$scratch/migdiff.out
  line=$(grep -m1 '^refused[[:space:]]' "$out" || grep -m1 '^undecided[[:space:]]' "$out" ||
    grep -m1 -v '^[[:space:]]*$' "$out")
  line=$(printf '%s' "$line" | sed -E 's/^(refused|undecided)[[:space:]]+//')
  [ "$verdict" != trouble ] || [ "$rc" = 2 ] || line="exit $rc: $line"
  printf '%s\t%s\n' "$verdict" "${line:-(no output)}"
}

# --------------------------------------------------------------------------------------------- the run
cell() { local s=${1//|/\\|}; printf '%s' "${s:0:300}"; }
pretty_bin() { if [ "$1" = QEMU72 ]; then echo "QEMU 7.2"; else echo "QEMU 10"; fi; }
kind_name() { case $1 in vmstate) echo -dump-vmstate ;; *) echo "$1" ;; esac; }
# pred_cell VERDICT MESSAGE: the "predicted" cell.
pred_cell() {
  case $1 in
    loads) printf loads ;;
    undecided) printf 'not decided: %s' "$2" ;;
    *) printf '%s: %s' "$1" "$2" ;;
  esac
}
# judge KIND PREDICTED PMSG ACTUAL QMSG: sets J_CELL (the "agree?" cell: "yes", "yes (other wording)",
# "not decided", "**NO**" or "trouble") and counts it for KIND in CNT.
declare -A CNT=()
J_CELL=
judge() {
  local kind=$1 p=$2 pmsg=$3 a=$4 qmsg=$5 cat
  if [ "$p" = trouble ] || [ "$a" = trouble ]; then
    J_CELL=trouble cat=trouble
  elif [ "$p" = undecided ]; then
    J_CELL="not decided" cat=undecided
  elif [ "$p" = "$a" ]; then
    # Same verdict; for a refusal, say whether migdiff's first reason is QEMU's message word for word.
    if [ "$a" = refused ] && [[ $pmsg != *"$qmsg" ]]; then J_CELL="yes (other wording)"; else J_CELL=yes; fi
    cat=agree
  else
    J_CELL="**NO**" cat=disagree
  fi
  CNT[$kind:$cat]=$((${CNT[$kind:$cat]:-0} + 1))
}
# counts: one line per kind and one for all, "N agree, M not decided, K disagree[, T trouble]"; returns 1
# when anything disagrees or is trouble.
counts() {
  local k c line bad=0
  local -A all=()
  for k in "${KINDS[@]}" all; do
    if [ "$k" != all ]; then
      for c in agree undecided disagree trouble; do all[$c]=$((${all[$c]:-0} + ${CNT[$k:$c]:-0})); done
      line="DST $(kind_name "$k"): ${CNT[$k:agree]:-0} agree, ${CNT[$k:undecided]:-0} not decided, ${CNT[$k:disagree]:-0} disagree"
      [ "${CNT[$k:trouble]:-0}" = 0 ] || line+=", ${CNT[$k:trouble]} trouble"
    else
      line="all: ${all[agree]:-0} agree, ${all[undecided]:-0} not decided, ${all[disagree]:-0} disagree"
      [ "${all[trouble]:-0}" = 0 ] || line+=", ${all[trouble]} trouble"
      [ "${all[disagree]:-0}" = 0 ] && [ "${all[trouble]:-0}" = 0 ] || bad=1
    fi
    echo "$line"
  done
  return "$bad"
}

run_cases() {
  local rows=() trouble_runs=0 i n src dst binvar bin label_args label srcpath dstpath vmpath vm key
  local actual qmsg qerr predicted pmsg kind first dcell args=() dsts=()
  declare -A qcache=()   # "SRC|BINVAR|ARGS" -> "VERDICT<TAB>MESSAGE<TAB>ERRFILE"
  for i in "${!C_SRC[@]}"; do
    n=$((i + 1))
    if [ ${#only[@]} -gt 0 ] && [[ " ${only[*]} " != *" $n "* ]]; then continue; fi
    src=${C_SRC[$i]} dst=${C_DST[$i]} binvar=${C_BIN[$i]}
    eval "args=(${C_ARGS[$i]})"
    bin=${!binvar}
    # the destination's deliberate settings, for the label: everything after BASE
    label_args=$(printf '%s ' "${args[@]:${#BASE[@]}}")
    label="$n. \`${src#@}\` → $(pretty_bin "$binvar") \`${label_args% }\`: ${C_NOTE[$i]}"
    echo "verdict-check: case $n: $src -> $bin ${args[*]}" >&2

    srcpath=$td/$src
    if [[ $src == @* ]]; then
      srcpath=$scratch/${src#@}
      if ! make_dump "${src#@}"; then
        trouble_runs=$((trouble_runs + 1))
        for kind in "${KINDS[@]}"; do [ "$qemu_only" = 1 ] || judge "$kind" trouble "" trouble ""; done
        rows+=("| $(cell "$label") | - | - | trouble | - | $(cell "could not make the SRC dump: $(cat "$srcpath.err" 2>/dev/null)") |")
        continue
      fi
    fi

    # QEMU first, so a broken migdiff still leaves the QEMU facts. The same run is not repeated.
    key="$src|$binvar|${C_ARGS[$i]}"
    if [ -z "${qcache[$key]:-}" ]; then
      IFS=$'\t' read -r actual qmsg < <(try_load "$scratch/qemu.$n.err" "$srcpath" "$bin" "${args[@]}")
      qcache[$key]="$actual"$'\t'"$qmsg"$'\t'"$scratch/qemu.$n.err"
      [ "$actual" != trouble ] || trouble_runs=$((trouble_runs + 1))
    fi
    IFS=$'\t' read -r actual qmsg qerr <<<"${qcache[$key]}"
    [ -z "$LOG_DIR" ] || cp "$qerr" "$LOG_DIR/case$n.qemu"

    if [ "$qemu_only" = 1 ]; then
      rows+=("| $(cell "$label") | - | - | $actual | - | $(cell "$qmsg") |")
      continue
    fi

    # the destination described by its dump, by its QEMU's -dump-vmstate, or both
    dstpath=testdata/$dst
    if [[ $dst == @* ]]; then
      dstpath=
      make_dump "${dst#@}" && dstpath=$scratch/${dst#@}
    fi
    vm=$(vmstate_for "$binvar" "${C_MACHINE[$i]}")
    vmpath=testdata/$vm
    if [[ $vm == @* ]]; then
      vmpath=
      make_dump "${vm#@}" && vmpath=$scratch/${vm#@}
    fi
    [[ $src == @* ]] || srcpath=testdata/$src
    first=1
    for kind in "${KINDS[@]}"; do
      case $kind in
        dump) dsts=("$dstpath"); dcell="dump \`${dst#@}\`" ;;
        vmstate) dsts=("$vmpath"); dcell="-dump-vmstate \`${vm#@}\`" ;;
        both) dsts=("$dstpath" "$vmpath"); dcell="both" ;;
      esac
      if [ "$first" = 1 ]; then label=$(cell "$label"); else label="$n. (same case)"; fi
      first=0
      if [ -z "${dsts[0]}" ] || [ -z "${dsts[-1]}" ]; then
        rows+=("| $label | $dcell | skipped (could not make the DST file) | $actual | - | $(cell "$qmsg") |")
        continue
      fi
      IFS=$'\t' read -r predicted pmsg < <(predict "$srcpath" "${dsts[@]}")
      [ -z "$LOG_DIR" ] || cp "$scratch/migdiff.out" "$LOG_DIR/case$n.$kind.migdiff"
      judge "$kind" "$predicted" "$pmsg" "$actual" "$qmsg"
      rows+=("| $label | $dcell | $(cell "$(pred_cell "$predicted" "$pmsg")") | $actual | $J_CELL | $(cell "$qmsg") |")
    done
  done

  echo "| case | DST given to migdiff | predicted | actual (QEMU) | agree? | QEMU's message |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  if [ "$qemu_only" = 1 ]; then
    echo "QEMU only: ${#rows[@]} cases run, $trouble_runs without a verdict"
    [ "$trouble_runs" = 0 ]
    return
  fi
  counts
}

# ------------------------------------------------------------------------------------------ --machines
# Versioned pc-i440fx-*/pc-q35-* machine types of BIN, one a line.
machine_types() {
  "$1" -M help 2>/dev/null | awk 'NR > 1 {print $1}' | grep -E '^pc-(i440fx|q35)-[0-9]' | sort -u
}

# machine_chain TYPE DIR: one direction for one machine type, QEMU processes one after the other (so JOBS
# chains in parallel are JOBS QEMUs at most): the source dump, the destination's dump and -dump-vmstate (the
# destination's dump is the other direction's source; the chains share it), the load.
# fwd = QEMU 7.2 source into QEMU 10, bwd = QEMU 10 source into QEMU 7.2. Writes $mdir/TYPE.DIR
# ("VERDICT<TAB>MESSAGE") and $mdir/TYPE.DIR.qemu (the destination's stderr).
machine_chain() {
  local m=$1 dir=$2 srcbin dstbin src vm res
  local args=("${BASE[@]}" -m 32 -M "$m")
  if [ "$dir" = fwd ]; then
    srcbin=$QEMU72 dstbin=$QEMU10 src=$mdir/$m-qemu72.mig vm=$mdir/vmstate-$m-qemu10.json
  else
    srcbin=$QEMU10 dstbin=$QEMU72 src=$mdir/$m-qemu10.mig vm=$mdir/vmstate-$m-qemu72.json
  fi
  res=$mdir/$m.$dir
  : >"$res.qemu"
  if ! dump_stream "$src" "$srcbin" 0 "${args[@]}" -S; then
    printf 'trouble\tcould not make the source dump: %s\n' "$(cat "$src.err")" >"$res"
    return
  fi
  dump_vmstate "$vm" "$dstbin" "$m"
  try_load "$res.qemu" "$src" "$dstbin" "${args[@]}" >"$res"
}

run_machines() {
  local pattern=$1 m dir
  mdir=$scratch/machines
  mkdir -p "$mdir"
  local types=()
  while read -r m; do
    # shellcheck disable=SC2053  # PATTERN is a glob on purpose
    [[ $m == $pattern ]] && types+=("$m")
  done < <(comm -12 <(machine_types "$QEMU72") <(machine_types "$QEMU10") | sort -V)
  if [ ${#types[@]} = 0 ]; then
    echo "verdict-check: no machine type of both QEMUs matches '$pattern'" >&2
    return 2
  fi
  echo "verdict-check: ${#types[@]} machine types, both directions, $JOBS QEMUs at a time: ${types[*]}" >&2
  local started=$SECONDS
  for m in "${types[@]}"; do
    for dir in fwd bwd; do
      while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
      machine_chain "$m" "$dir" &
    done
  done
  wait
  echo "verdict-check: QEMU runs took $((SECONDS - started)) s" >&2

  local rows=() trouble_runs=0 n_loads=0 n_refused=0
  local actual qmsg label dstdump dstvm p pm kind srcpath pcells oks head
  local -a dsts=()
  for m in "${types[@]}"; do
    for dir in fwd bwd; do
      IFS=$'\t' read -r actual qmsg <"$mdir/$m.$dir"
      case $actual in loads) n_loads=$((n_loads + 1)) ;; refused) n_refused=$((n_refused + 1)) ;;
        *) trouble_runs=$((trouble_runs + 1)) ;; esac
      [ -z "$LOG_DIR" ] || cp "$mdir/$m.$dir.qemu" "$LOG_DIR/$m.$dir.qemu"
      if [ "$dir" = fwd ]; then
        label="7.2 → 10" srcpath=$mdir/$m-qemu72.mig dstdump=$mdir/$m-qemu10.mig dstvm=$mdir/vmstate-$m-qemu10.json
      else
        label="10 → 7.2" srcpath=$mdir/$m-qemu10.mig dstdump=$mdir/$m-qemu72.mig dstvm=$mdir/vmstate-$m-qemu72.json
      fi
      if [ "$qemu_only" = 1 ]; then
        rows+=("| \`$m\` | $label | $actual | $(cell "$qmsg") |")
        continue
      fi
      pcells="" oks=""
      for kind in "${KINDS[@]}"; do
        case $kind in
          dump) dsts=("$dstdump") ;;
          vmstate) dsts=("$dstvm") ;;
          both) dsts=("$dstdump" "$dstvm") ;;
        esac
        if [ ! -s "$srcpath" ]; then
          p="skipped (no source dump)"; oks+="${oks:+ / }-"
        elif [ ! -s "${dsts[0]}" ] || [ ! -s "${dsts[-1]}" ]; then
          p="skipped (no $(kind_name "$kind"): $(cat "$dstvm.err" 2>/dev/null))"; oks+="${oks:+ / }-"
        else
          IFS=$'\t' read -r p pm < <(predict "$srcpath" "${dsts[@]}")
          [ -z "$LOG_DIR" ] || cp "$scratch/migdiff.out" "$LOG_DIR/$m.$dir.$kind.migdiff"
          judge "$kind" "$p" "$pm" "$actual" "$qmsg"
          p=$(pred_cell "$p" "$pm"); oks+="${oks:+ / }$J_CELL"
        fi
        pcells+=" $(cell "$p") |"
      done
      rows+=("| \`$m\` | $label |$pcells $actual | $oks | $(cell "$qmsg") |")
    done
  done

  if [ "$qemu_only" = 1 ]; then
    echo "| machine | direction | actual (QEMU) | QEMU's message |"
    echo "|---|---|---|---|"
  else
    head="| machine | direction |"
    for kind in "${KINDS[@]}"; do head+=" predicted (DST: $(kind_name "$kind")) |"; done
    head+=" actual (QEMU) | agree? ($(IFS=/; echo "${KINDS[*]}")) | QEMU's message |"
    echo "$head"
    printf '|---|---|'; for kind in "${KINDS[@]}"; do printf -- '---|'; done; echo '---|---|---|'
  fi
  printf '%s\n' "${rows[@]}"
  echo
  echo "machines: ${#types[@]} types, ${#rows[@]} loads: $n_loads loaded, $n_refused refused, $trouble_runs without a verdict"
  if [ "$qemu_only" = 1 ]; then
    [ "$trouble_runs" = 0 ]
    return
  fi
  counts
}

if [ -n "$machines" ]; then
  run_machines "$machines"
else
  run_cases
fi

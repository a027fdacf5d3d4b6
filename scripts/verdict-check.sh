#!/usr/bin/env bash
# verdict-check.sh: does `migdiff check` predict what a real destination QEMU does with a stream?
#
#   scripts/verdict-check.sh [--qemu-only] [CASE-NUMBER...]
#
# For every case of the table below (a source dump from testdata/, the destination description migdiff is
# given, and the destination QEMU's command line) it
#   1. runs `migdiff check SRC --against DST` and maps its exit status to a predicted verdict
#      (0 = loads, 1 = refused, anything else = trouble), keeping its first "refused" line (or, when it
#      would load, its first "warning" line);
#   2. really tries it: starts the destination QEMU (TCG, paused, QMP on a unix socket) with
#      -incoming "exec:cat SRC" and waits (TIMEOUT seconds, default 20) until QMP query-migrate says
#      "completed" (loads) or "failed" (refused), or QEMU exits with "load of migration failed" and
#      friends on stderr (refused). Anything else (timeout, QEMU not starting) is "trouble".
# It then prints a Markdown table (case | predicted | actual (QEMU) | agree? | QEMU's message) and a final
# line "N of M agree" (verdicts only; "yes (other wording)" marks a refusal whose first reason is not QEMU's
# message word for word). Exit status: 0 when every case agrees, 1 otherwise (2 on bad usage).
#
# --qemu-only skips migdiff entirely (only the QEMU half; exit 1 if a QEMU run ended in trouble).
# CASE-NUMBER restricts the run to those rows (1-based, as numbered in the table).
#
# Environment:
#   MIGDIFF   the migdiff binary (default: target/release/migdiff next to this script's repository)
#   QEMU10    QEMU 10.x binary (default: qemu-system-x86_64)
#   QEMU72    QEMU 7.2 binary (default: qemu-system-x86_64-7.2)
#   TIMEOUT   seconds per QEMU run (default 20)
#   LOG_DIR   if set, every case's migdiff output and QEMU stderr are kept there (CASE.migdiff, CASE.qemu)
#
# Needs python3 (stdlib only) for the QMP side. Not run in CI: it needs real QEMU binaries (see
# scripts/install-qemu.sh) and takes about a minute. The destination command lines copy the source's
# command line from testdata/README.md except for the one deliberate difference of each case.
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
LOG_DIR=${LOG_DIR:-}

qemu_only=0
declare -a only=()
for a in "$@"; do
  case $a in
    --qemu-only) qemu_only=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    [0-9]*) only+=("$a") ;;
    *) echo "verdict-check: unknown argument $a (see --help)" >&2; exit 2 ;;
  esac
done

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
#   SRC     fixture in testdata/ (the stream QEMU is fed)
#   DST     what migdiff is told the destination is: a file in testdata/, or @NAME for a dump made on the
#           fly by make_dump (see below)
#   BINVAR  QEMU10 or QEMU72: the destination binary
#   QEMU-ARGS  the destination's configuration; -S, -display none, -qmp and -incoming are added.
BASE=(-nodefaults -display none -accel tcg)
declare -a C_SRC=() C_DST=() C_BIN=() C_NOTE=() C_ARGS=()
add_case() {
  C_SRC+=("$1"); C_DST+=("$2"); C_BIN+=("$3"); C_NOTE+=("$4")
  shift 5
  C_ARGS+=("$(printf '%q ' "$@")")
}

add_case pc72-qemu72.mig pc72-qemu10.mig QEMU10 "forward 7.2 -> 10" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-7.2
add_case pc72-qemu72.mig vmstate-pc72-qemu10.json QEMU10 "forward 7.2 -> 10, against -dump-vmstate" -- \
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
add_case pc10-stopped.mig @pc10-m64.mig QEMU10 "32 MiB RAM into -m 64" -- \
  "${BASE[@]}" -m 64 -M pc-i440fx-10.0
add_case pc10-running.mig pc10-stopped.mig QEMU10 "running source, same config" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0
add_case pc10-cpu-max.mig pc10-stopped.mig QEMU10 "-cpu max into the default CPU" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0
# Two more: a missing device without a RAM block (so the section itself is what QEMU trips on), and the
# reverse of case 5, a device the destination has but the stream lacks.
add_case q35-10-xhci-tablet.mig q35-10.mig QEMU10 "xhci + tablet missing on the destination" -- \
  "${BASE[@]}" -m 32 -M pc-q35-10.0
add_case pc10-stopped.mig pc10-e1000.mig QEMU10 "destination has an e1000 the stream lacks" -- \
  "${BASE[@]}" -m 32 -M pc-i440fx-10.0 -device e1000

# make_dump NAME: the on-the-fly DST dumps (@NAME), made with QEMU10 through scripts/qmp-migrate.py.
make_dump() {
  local name=$1 args
  case $name in
    pc10-m64.mig) args=("${BASE[@]}" -m 64 -M pc-i440fx-10.0 -S) ;;
    *) echo "verdict-check: no recipe for @$name" >&2; return 1 ;;
  esac
  [ -s "$scratch/$name" ] && return 0
  local dir pid rc=0
  dir=$(mktemp -d "$scratch/dump.XXXXXX")
  "$QEMU10" "${args[@]}" -qmp "unix:$dir/qmp.sock,server=on,wait=off" </dev/null >"$dir/qemu.log" 2>&1 &
  pid=$!
  python3 "$here/qmp-migrate.py" "$dir/qmp.sock" "$scratch/$name" >"$dir/qmp.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    echo "verdict-check: could not make $name:" >&2
    cat "$dir/qmp.log" "$dir/qemu.log" >&2
    rm -f "$scratch/$name"
    return 1
  fi
  wait "$pid" 2>/dev/null
  [ -s "$scratch/$name" ]
}

# --------------------------------------------------------------------------------------------- QEMU run
# try_load SRC QEMU ARGS...: prints "VERDICT<TAB>MESSAGE" (loads/refused/trouble); QEMU's stderr goes to
# $scratch/qemu.err.
try_load() {
  python3 - "$TIMEOUT" "$scratch" "$@" <<'PY'
import json, os, shlex, socket, subprocess, sys, tempfile, time

timeout, scratch, src = float(sys.argv[1]), sys.argv[2], sys.argv[3]
cmd = sys.argv[4:]
work = tempfile.mkdtemp(dir=scratch, prefix="load.")
sock_path = os.path.join(work, "qmp.sock")
err_path = os.path.join(scratch, "qemu.err")
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
# predict SRC DST: prints "VERDICT<TAB>FIRST-REASON"; the whole output goes to $scratch/migdiff.out.
# Text output is a headline, then one line per reason, "refused  SUBJECT: MESSAGE" or "warning  SUBJECT: ...".
# The first reason is the first "refused" line (or, when it would load, the first "warning" line), without the
# keyword; failing those, the first non-empty line. Run from the repository root, so paths print relative.
predict() {
  local rc=0 verdict line
  (cd "$root" && "$MIGDIFF" check "$1" --against "$2") >"$scratch/migdiff.out" 2>&1 </dev/null || rc=$?
  case $rc in
    0) verdict=loads ;;
    1) verdict=refused ;;
    *) verdict=trouble ;;
  esac
  local out=$scratch/migdiff.out
  line=$(grep -m1 '^refused[[:space:]]' "$out" || grep -m1 '^warning[[:space:]]' "$out" ||
    grep -m1 -v '^[[:space:]]*$' "$out")
  line=$(printf '%s' "$line" | sed -E 's/^refused[[:space:]]+//; s/^(warning)[[:space:]]+/\1: /')
  [ "$verdict" != trouble ] || [ "$rc" = 2 ] || line="exit $rc: $line"
  printf '%s\t%s\n' "$verdict" "${line:-(no output)}"
}

# --------------------------------------------------------------------------------------------- the run
cell() { local s=${1//|/\\|}; printf '%s' "${s:0:300}"; }
pretty_bin() { if [ "$1" = QEMU72 ]; then echo "QEMU 7.2"; else echo "QEMU 10"; fi; }

rows=() agree=0 total=0 trouble_runs=0
for i in "${!C_SRC[@]}"; do
  n=$((i + 1))
  if [ ${#only[@]} -gt 0 ] && [[ " ${only[*]} " != *" $n "* ]]; then continue; fi
  src=${C_SRC[$i]} dst=${C_DST[$i]} binvar=${C_BIN[$i]}
  eval "args=(${C_ARGS[$i]})"
  bin=${!binvar}
  # the destination's deliberate settings, for the label: everything after BASE
  label_args=$(printf '%s ' "${args[@]:${#BASE[@]}}")
  label="$n. \`$src\` → $(pretty_bin "$binvar") \`${label_args% }\` (DST \`${dst#@}\`): ${C_NOTE[$i]}"
  echo "verdict-check: case $n: $src -> $bin ${args[*]}" >&2

  # QEMU first, so a broken migdiff still leaves the QEMU facts.
  IFS=$'\t' read -r actual qmsg < <(try_load "$td/$src" "$bin" "${args[@]}")
  [ -z "$LOG_DIR" ] || cp "$scratch/qemu.err" "$LOG_DIR/case$n.qemu"
  [ "$actual" != trouble ] || trouble_runs=$((trouble_runs + 1))

  if [ "$qemu_only" = 1 ]; then
    rows+=("| $(cell "$label") | - | $actual | - | $(cell "$qmsg") |")
    continue
  fi

  dstpath=$td/$dst
  if [[ $dst == @* ]]; then
    if make_dump "${dst#@}"; then
      dstpath=$scratch/${dst#@}
    else
      rows+=("| $(cell "$label") | skipped (could not make the DST dump) | $actual | - | $(cell "$qmsg") |")
      continue
    fi
  fi
  [[ $dst == @* ]] || dstpath=testdata/$dst
  IFS=$'\t' read -r predicted pmsg < <(predict "testdata/$src" "$dstpath")
  [ -z "$LOG_DIR" ] || cp "$scratch/migdiff.out" "$LOG_DIR/case$n.migdiff"
  total=$((total + 1))
  if [ "$predicted" = "$actual" ] && [ "$actual" != trouble ]; then
    ok=yes; agree=$((agree + 1))
    # Same verdict; for a refusal, say whether migdiff's first reason is QEMU's message word for word.
    if [ "$actual" = refused ] && [[ $pmsg != *"$qmsg" ]]; then ok="yes (other wording)"; fi
  else
    ok="**NO**"
  fi
  case $predicted in
    loads) if [[ $pmsg == warning:* ]]; then pcell="loads ($pmsg)"; else pcell=loads; fi ;;
    *) pcell="$predicted: $pmsg" ;;
  esac
  rows+=("| $(cell "$label") | $(cell "$pcell") | $actual | $ok | $(cell "$qmsg") |")
done

echo "| case | predicted | actual (QEMU) | agree? | QEMU's message |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
if [ "$qemu_only" = 1 ]; then
  echo "QEMU only: ${#rows[@]} cases run, $trouble_runs without a verdict"
  [ "$trouble_runs" = 0 ]
  exit
fi
echo "$agree of $total agree"
[ "$agree" = "$total" ]

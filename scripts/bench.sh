#!/usr/bin/env bash
# bench.sh: time migdiff on large QEMU migration streams against the disk floor (cat) and QEMU's own decoder.
#
#   [BENCH_DIR=DIR] [ANALYZE_MIGRATION=<qemu-src>/scripts/analyze-migration.py] [MIGDIFF=PATH] \
#     scripts/bench.sh [--sizes "1 4"]
#
# * Dumps: for every size N (GiB) in --sizes (default "1 4"), two streams ramNg-a.mig and ramNg-b.mig of a
#   stopped pc-i440fx-10.0 guest (TCG, -S, -nodefaults) whose RAM is a memory-backend-file pre-filled with an
#   AES-128-CTR keystream (openssl enc over /dev/zero): every 4 KiB page is non-zero and differs from every
#   other page, so each one travels as a PAGE record (none as ZERO) and the stream is about N GiB. B comes from
#   the same backing file with 6 pages (in 4 places) overwritten, so `migdiff A B` has real RAM differences to
#   find. Dumps are written with scripts/qmp-migrate.py (migrate "exec:cat > FILE", max-bandwidth raised so
#   the dump is not rate-limited). They go to BENCH_DIR (default: a new mktemp -d directory) and are reused on
#   the next run when present (delete them to regenerate); the backing files are deleted once both exist.
#   The device-heavy case is testdata/q35-10-busy.mig (pc-q35-10.0, -smp 4, about a dozen devices); it is
#   also diffed against testdata/q35-10.mig (the same machine, default devices), which puts some 40 devices
#   and 60,000 lines on one side only.
# * Measures with warm caches (hyperfine --warmup; each command also runs once untimed in the sanity checks):
#   `cat A B`, `cat A`, `xxhsum -H3 A B`, `migdiff A B`, `migdiff show A`, `python3 $ANALYZE_MIGRATION -f A -d
#   state`, and for the device-heavy dump `migdiff show` and `migdiff show --format json` against
#   `analyze-migration.py -d state` and `migdiff q35-10.mig BUSY` (--warmup 3 --min-runs 20).
# * Paired RAM ratios: hyperfine runs each command N times in a row, so a load that comes and goes on a
#   shared machine lands on one command and not the other. For every large pair, `cat A B`, `xxhsum -H3 A B`
#   (a second floor: reading both files and hashing every byte with the reference XXH3, runtime-dispatched
#   SIMD) and `migdiff A B` also run in turn, BENCH_PAIRS times (the order alternates); each round gives one
#   ratio migdiff/cat and one migdiff/xxhsum, and the report prints the median (and range) of those ratios.
#   Peak RSS comes from /usr/bin/time -v (maximum resident set size: for migdiff this includes the pages of
#   the memory-mapped dumps it has touched, i.e. page cache); the "anon" column is the peak RssAnon of the
#   same run sampled from /proc every 2 ms (heap and stacks only).
# * Prints the machine (CPUs, CPU model, RAM), tool versions and one table: wall time (mean ± σ), runs,
#   throughput, peak RSS, peak anon RSS, ratio to the cat floor and ratio to analyze-migration.py.
#
# Environment:
#   BENCH_DIR          where dumps, logs and hyperfine JSON go (default: mktemp -d; printed at the start)
#   ANALYZE_MIGRATION  path to QEMU's scripts/analyze-migration.py; unset: the oracle rows are skipped
#   MIGDIFF            migdiff binary; default: `cargo build --release` here, then target/release/migdiff
#   QEMU               QEMU 10.x binary (default qemu-system-x86_64 from PATH)
#   BENCH_RUNS         timed runs per command for the large dumps (default 10)
#   BENCH_PAIRS        rounds of the paired cat / xxhsum / migdiff runs per large pair (default BENCH_RUNS)
#   BENCH_INSTALL=0    never apt-get install hyperfine / time / xxhash (default: install them when missing and
#                      root; without xxhsum its rows and ratios are skipped)
#
# Runtime with the defaults on 2 cores: about 1 minute to make the dumps the first time (10 GB of disk), then
# about 3 minutes of measurements. The report also says how much CPU other processes used while timing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

sizes="1 4"
while [ $# -gt 0 ]; do
  case $1 in
    --sizes) [ $# -ge 2 ] || { echo "bench: --sizes needs a value" >&2; exit 2; }; sizes=$2; shift 2 ;;
    --sizes=*) sizes=${1#--sizes=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for n in $sizes; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench: --sizes takes whole GiB counts, got '$n'" >&2; exit 2; }
done

QEMU=${QEMU:-qemu-system-x86_64}
BENCH_DIR=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/migdiff-bench.XXXXXX")}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
busy=$root/testdata/q35-10-busy.mig
plain=$root/testdata/q35-10.mig
res=$BENCH_DIR/results
mkdir -p "$res"
rm -f "$res"/*.json "$res"/*.pairs "$res"/*.tsv "$res"/*.log
echo "bench: BENCH_DIR=$BENCH_DIR"

# ------------------------------------------------------------------------------------------------ tools
apt_install() {
  [ "${BENCH_INSTALL:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  echo "bench: apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$res/apt.log" 2>&1 ||
    { apt-get update -qq >>"$res/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$res/apt.log" 2>&1; }
}
command -v hyperfine >/dev/null || apt_install hyperfine || true
[ -x /usr/bin/time ] || apt_install time || true
command -v xxhsum >/dev/null || apt_install xxhash || true
HYPERFINE=$(command -v hyperfine || true)
XXHSUM=$(command -v xxhsum || true)
[ -n "$XXHSUM" ] || echo "bench: xxhsum (package 'xxhash') not available: the xxhsum -H3 floor is skipped" >&2
[ -n "$HYPERFINE" ] || echo "bench: hyperfine not available: timing with a python3 loop instead" >&2
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time (package 'time') is needed for peak RSS" >&2; exit 1; }
for b in "$QEMU" python3 openssl dd; do
  command -v "$b" >/dev/null || { echo "bench: $b not found" >&2; exit 1; }
done
if [ -n "${ANALYZE_MIGRATION:-}" ]; then
  [ -r "$ANALYZE_MIGRATION" ] || { echo "bench: ANALYZE_MIGRATION=$ANALYZE_MIGRATION is not readable" >&2; exit 1; }
else
  echo "bench: ANALYZE_MIGRATION not set: analyze-migration.py rows and ratios are skipped" >&2
fi

migdiff_rev="MIGDIFF given"
if [ -z "${MIGDIFF:-}" ]; then
  migdiff_rev="built from $(git -C "$root" describe --always --dirty 2>/dev/null || echo "a tree without git")"
  echo "bench: cargo build --release"
  (cd "$root" && cargo build --release --quiet)
  MIGDIFF=${CARGO_TARGET_DIR:-$root/target}/release/migdiff
  case $MIGDIFF in /*) ;; *) MIGDIFF=$root/$MIGDIFF ;; esac
fi
[ -x "$MIGDIFF" ] || { echo "bench: MIGDIFF=$MIGDIFF is not executable" >&2; exit 1; }

# Python helper: fallback timer (hyperfine-compatible JSON), paired timer, RSS sampler, final table.
read -r -d '' HELPER <<'PY' || true
import json, os, resource, shlex, statistics, subprocess, sys, time

def timer(warmup, runs, out, pairs):
    results = []
    for name, cmd in pairs:
        argv = shlex.split(cmd)
        for _ in range(warmup):
            subprocess.run(argv, stdout=subprocess.DEVNULL)
        times, codes = [], []
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(runs):
            t = time.perf_counter()
            codes.append(subprocess.run(argv, stdout=subprocess.DEVNULL).returncode)
            times.append(time.perf_counter() - t)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        results.append({"command": name, "mean": statistics.mean(times),
                        "stddev": statistics.stdev(times) if len(times) > 1 else 0.0,
                        "user": (r1.ru_utime - r0.ru_utime) / runs, "system": (r1.ru_stime - r0.ru_stime) / runs,
                        "times": times, "exit_codes": codes})
    json.dump({"results": results}, open(out, "w"))

def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None

def rss(out, name, cmd):
    """Runs /usr/bin/time -v CMD (stdout to /dev/null); samples the command's RssAnon every 2 ms."""
    tfile = out + ".time"
    p = subprocess.Popen(["/usr/bin/time", "-v", "-o", tfile] + shlex.split(cmd), stdout=subprocess.DEVNULL)
    child, anon = None, 0
    while p.poll() is None:
        if child is None:
            try:
                kids = open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()
                child = int(kids[0]) if kids else None
            except (OSError, ValueError):
                pass
        if child is not None:
            anon = max(anon, status_kb(child, "RssAnon") or 0)
        time.sleep(0.002)
    maxrss, code = None, p.returncode
    for line in open(tfile):
        line = line.strip()
        if line.startswith("Maximum resident set size (kbytes):"):
            maxrss = int(line.rsplit(None, 1)[1])
        elif line.startswith("Exit status:"):
            code = int(line.rsplit(None, 1)[1])
    os.unlink(tfile)
    with open(out, "a") as f:
        f.write(f"{name}\t{maxrss}\t{anon if child else ''}\t{code}\n")

def paired(warmup, runs, out, pairs):
    """Runs the commands in turn, RUNS rounds (order reversed every other round); hyperfine-like JSON."""
    argvs = [(name, shlex.split(cmd)) for name, cmd in pairs]
    for _ in range(warmup):
        for _, argv in argvs:
            subprocess.run(argv, stdout=subprocess.DEVNULL)
    times = {name: [] for name, _ in argvs}
    codes = {name: [] for name, _ in argvs}
    for i in range(runs):
        for name, argv in (argvs if i % 2 == 0 else argvs[::-1]):
            t = time.perf_counter()
            codes[name].append(subprocess.run(argv, stdout=subprocess.DEVNULL).returncode)
            times[name].append(time.perf_counter() - t)
    json.dump({"paired": [{"command": n, "times": times[n], "exit_codes": codes[n]} for n, _ in argvs]},
              open(out, "w"))

def ratios(a, b):
    r = sorted(x / y for x, y in zip(a, b))
    return statistics.median(r), r[0], r[-1], len(r)

def paired_report(resdir):
    """One line per large pair: median (min-max) of the per-round ratios migdiff/cat, migdiff/xxhsum, xxhsum/cat."""
    lines = []
    for fn in sorted(os.listdir(resdir)):
        if not fn.endswith(".pairs"):
            continue
        rs = {r["command"]: r["times"] for r in json.load(open(os.path.join(resdir, fn)))["paired"]}
        names = list(rs)
        floor, tool = names[0], names[-1]
        parts = []
        for other in [floor] + names[1:-1]:
            m, lo, hi, n = ratios(rs[tool], rs[other])
            parts.append(f"{m:.2f}× {other} ({lo:.2f}-{hi:.2f})")
        for other in names[1:-1]:
            m, lo, hi, n = ratios(rs[other], rs[floor])
            parts.append(f"{other} = {m:.2f}× {floor} ({lo:.2f}-{hi:.2f})")
        med = {k: statistics.median(v) for k, v in rs.items()}
        lines.append(f"{tool}: " + ", ".join(parts) + f"; {n} rounds; median wall " +
                     ", ".join(f"{k} {fmt_time(v)}" for k, v in med.items()))
    return lines

def fmt_time(s):
    if s >= 10: return f"{s:.2f} s"
    if s >= 1: return f"{s:.3f} s"
    return f"{s * 1000:.1f} ms"

def fmt_mib(kb):
    return "-" if kb in (None, "") else f"{int(kb) / 1024:.1f} MiB"

def table(resdir, plan_file):
    """plan: lines group<TAB>name<TAB>bytes<TAB>floor-name<TAB>oracle-name<TAB>oracle-factor<TAB>expected-exit"""
    timings, rsses = {}, {}
    for fn in sorted(os.listdir(resdir)):
        if fn.endswith(".json"):
            for r in json.load(open(os.path.join(resdir, fn)))["results"]:
                timings[r["command"]] = r
        elif fn.endswith(".rss.tsv"):
            for line in open(os.path.join(resdir, fn)):
                name, maxrss, anon, code = line.rstrip("\n").split("\t")
                rsses[name] = (maxrss, anon, int(code))
    rows, notes = [], []
    header = ["command", "wall (mean ± σ)", "runs", "CPU", "GiB/s", "peak RSS", "peak anon", "× cat floor", "× analyze-migration.py"]
    group_prev = None
    for line in open(plan_file):
        group, name, nbytes, floor, oracle, factor, want = line.rstrip("\n").split("\t")
        r = timings.get(name)
        if r is None:
            continue
        if group != group_prev and group_prev is not None:
            rows.append(None)
        group_prev = group
        codes = set(r.get("exit_codes") or [])
        bad = [c for c in codes if c != int(want)]
        mean = r["mean"]
        t = f"{fmt_time(mean)} ± {fmt_time(r['stddev'])}"
        if bad:
            t += f" (EXIT {sorted(bad)})"
            notes.append(f"{name}: exit status {sorted(bad)}, expected {want}")
        gibs = f"{int(nbytes) / mean / 2**30:.2f}" if int(nbytes) else "-"
        maxrss, anon, code = rsses.get(name, (None, None, None))
        fl = timings.get(floor) if floor != "-" else None
        xf = f"{mean / fl['mean']:.2f}" if fl and name != floor else ("1.00" if name == floor else "-")
        orc = timings.get(oracle) if oracle != "-" else None
        if orc and name != oracle:
            xo = f"{mean / (orc['mean'] * float(factor)):.3f}" + (" (vs 2×)" if factor != "1" else "")
        elif orc:
            xo = "1.000"
        else:
            xo = "-"
        cpu = fmt_time(r["user"] + r["system"]) if "user" in r else "-"
        rows.append([name, t, str(len(r.get("times", []))), cpu, gibs, fmt_mib(maxrss), fmt_mib(anon), xf, xo])
    widths = [max([len(h)] + [len(r[i]) for r in rows if r]) for i, h in enumerate(header)]
    right = {2, 3, 4, 5, 6, 7, 8}
    def show(cells):
        print("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip())
    show(header)
    show(["-" * w for w in widths])
    for r in rows:
        if r is None:
            print()
        else:
            show(r)
    for n in notes:
        print("WARNING: " + n)
    pl = paired_report(resdir)
    jr = [(n, timings[n]["mean"] / timings[o]["mean"]) for n, o in
          [("migdiff show --format json busy", "analyze -d state busy"), ("migdiff show busy", "analyze -d state busy")]
          if n in timings and o in timings]
    if pl or jr:
        print()
        print("ratios side by side (RAM: paired, commands in turn, median of the per-round ratios, range in")
        print("parentheses; device-heavy dump: ratio of the means above):")
    for l in pl:
        print("  " + l)
    for n, x in jr:
        print(f"  {n}: {x:.4f}× analyze-migration.py -d state ({1 / x:.0f}x faster)")

cmd = sys.argv[1]
if cmd == "time":
    args = sys.argv[5:]
    timer(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], list(zip(args[::2], args[1::2])))
elif cmd == "paired":
    args = sys.argv[5:]
    paired(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], list(zip(args[::2], args[1::2])))
elif cmd == "rss":
    rss(sys.argv[2], sys.argv[3], sys.argv[4])
elif cmd == "table":
    table(sys.argv[2], sys.argv[3])
PY
helper() { python3 -c "$HELPER" "$@"; }

# q ARGS...: one command string, shell-quoted (hyperfine -N and python shlex both split it back).
q() { local a out=(); for a in "$@"; do out+=("$(printf '%q' "$a")"); done; printf '%s' "${out[*]}"; }

# show ARGS...: a command line for people; single-quotes only the words that need it.
show() {
  local a out=()
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  printf '%s' "${out[*]}"
}

# ------------------------------------------------------------------------------------------------ dumps
scratch=$BENCH_DIR/scratch
QPID=
cleanup() {
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then kill "$QPID" 2>/dev/null || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

ZERO_IV=00000000000000000000000000000000

# fill FILE BYTES KEYHEX: FILE = BYTES of AES-128-CTR keystream (deterministic for a given key). Every
# 16-byte block of a CTR keystream is distinct (AES is a permutation of distinct counters), so no 4 KiB page
# is all-zero and no two pages are equal.
fill() {
  head -c "$2" /dev/zero |
    openssl enc -aes-128-ctr -nosalt -K "$3" -iv "$ZERO_IV" >"$1"
  [ "$(stat -c %s "$1")" = "$2" ] || { echo "bench: short fill of $1" >&2; exit 1; }
}

# dump GIB BACKING OUT: migrate a stopped guest whose RAM is BACKING into OUT (written as OUT.tmp, then renamed).
dump() {
  local gib=$1 backing=$2 out=$3
  rm -rf "$scratch" "$out.tmp"
  mkdir -p "$scratch"
  local cmd=("$QEMU" -M pc-i440fx-10.0 -S -nodefaults -display none -accel tcg -m "${gib}G"
    -object "memory-backend-file,id=mem0,size=${gib}G,mem-path=$backing,share=off"
    -machine memory-backend=mem0 -qmp unix:qmp.sock,server=on,wait=off)
  echo "bench:   $(show "${cmd[@]}")"
  (cd "$scratch" && exec "${cmd[@]}" >"$scratch/qemu.log" 2>&1) &
  QPID=$!
  local i
  for i in $(seq 300); do
    [ -S "$scratch/qmp.sock" ] && break
    kill -0 "$QPID" 2>/dev/null || { echo "bench: QEMU exited early:" >&2; cat "$scratch/qemu.log" >&2; exit 1; }
    sleep 0.1
  done
  # share=off maps the backing file privately, so QEMU can never write into it.
  (cd "$scratch" && python3 "$here/qmp-migrate.py" qmp.sock "$out.tmp" --param max-bandwidth=100000000000) ||
    { echo "bench: migration failed; QEMU said:" >&2; cat "$scratch/qemu.log" >&2; exit 1; }
  for i in $(seq 600); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
  wait "$QPID" || { echo "bench: QEMU exited with an error" >&2; exit 1; }
  QPID=
  mv "$out.tmp" "$out"
}

# Pages of B that differ from A: page 256 (1 MiB), one at 1/3, three in a row at 1/2, the last page.
patch_pages() {
  local gib=$1 backing=$2 pages p n spec
  pages=$((gib * 262144))
  for spec in "256 1" "$((pages / 3)) 1" "$((pages / 2)) 3" "$((pages - 1)) 1"; do
    read -r p n <<<"$spec"
    head -c $((n * 4096)) /dev/zero |
      openssl enc -aes-128-ctr -nosalt -K "ffff$(printf '%028x' "$p")" -iv "$ZERO_IV" |
      dd of="$backing" bs=4096 seek="$p" conv=notrunc status=none
  done
}
CHANGED_PAGES=6

check_dump() { # check_dump GIB FILE
  local gib=$1 f=$2 size ram want line
  size=$(stat -c %s "$f")
  ram=$((gib << 30))
  # PAGE records cost 8 + 4096 bytes per page; anything much smaller means pages went out as ZERO records.
  if [ "$size" -lt "$ram" ] || [ "$size" -gt $((ram + ram / 100 + (16 << 20))) ]; then
    echo "bench: $f is $size bytes, expected about $ram (+0.2%): are the pages really sent as PAGE records?" >&2
    exit 1
  fi
  want=$((gib * 262144))
  line=$("$MIGDIFF" show "$f" | grep -m1 -E '^  mem0 = ' || true)
  if [[ $line == *"$want pages (0 zero, $want data)"* ]]; then
    echo "bench:   $(basename "$f"): $size bytes ($(awk -v s="$size" -v r="$ram" 'BEGIN{printf "%.4f", s/r}') × RAM); mem0: $want pages, 0 zero, $want data"
  else
    echo "bench: WARNING: $(basename "$f"): unexpected RAM line in migdiff show: '${line:-none}'" >&2
  fi
}

gen_start=$(date +%s)
generated=0
for n in $sizes; do
  a=$BENCH_DIR/ram${n}g-a.mig b=$BENCH_DIR/ram${n}g-b.mig backing=$BENCH_DIR/ram${n}g.fill
  if [ -f "$a" ] && [ -f "$b" ]; then
    echo "bench: reusing $(basename "$a") and $(basename "$b")"
  else
    generated=1
    t0=$(date +%s)
    echo "bench: making ${n} GiB dumps"
    fill "$backing" $((n << 30)) "$(printf '%032x' "$n")"
    [ -f "$a" ] || dump "$n" "$backing" "$a"
    patch_pages "$n" "$backing"
    [ -f "$b" ] || dump "$n" "$backing" "$b"
    rm -f "$backing"
    echo "bench:   ${n} GiB pair made in $(($(date +%s) - t0)) s"
  fi
  check_dump "$n" "$a"
  check_dump "$n" "$b"
done
[ "$generated" = 0 ] || echo "bench: dump generation took $(($(date +%s) - gen_start)) s"

# ------------------------------------------------------------------------------------------------ sanity
# Also the untimed first run of each migdiff command (hyperfine adds its own warmup runs).
for n in $sizes; do
  a=$BENCH_DIR/ram${n}g-a.mig b=$BENCH_DIR/ram${n}g-b.mig
  rc=0
  "$MIGDIFF" "$a" "$b" >"$res/diff-${n}g.txt" || rc=$?
  if [ "$rc" != 1 ]; then
    echo "bench: migdiff A B on ${n} GiB exited $rc, expected 1 (differences):" >&2
    head -20 "$res/diff-${n}g.txt" >&2
    exit 1
  fi
  echo "bench: migdiff ${n} GiB A B: $(head -1 "$res/diff-${n}g.txt")"
  grep -E '^ram +' "$res/diff-${n}g.txt" | sed 's/^/bench:   /' || true
  grep -qE "mem0: $CHANGED_PAGES of [0-9]+ pages differ" "$res/diff-${n}g.txt" ||
    echo "bench: WARNING: expected 'mem0: $CHANGED_PAGES of N pages differ' in the ${n} GiB diff" >&2
done

# ------------------------------------------------------------------------------------------------ measure
plan=$res/plan.tsv
: >"$plan"
hf_log=$res/hyperfine.log

# cpu_snap: machine-wide busy CPU ticks (/proc/stat), CPU ticks of this shell's finished children, and the time.
cpu_snap() {
  printf '%s %s %s\n' "$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat)" \
    "$(sed 's/.*) //' "/proc/$$/stat" | awk '{print $14 + $15}')" "$(date +%s.%N)"
}
# other_load BEFORE AFTER: CPUs busy with something other than the benchmark between two snapshots.
other_load() {
  awk -v hz="$(getconf CLK_TCK)" -v b="$1" -v a="$2" 'BEGIN {
    split(b, x, " "); split(a, y, " ")
    o = ((y[1] - x[1]) - (y[2] - x[2])) / hz / (y[3] - x[3]); printf "%.2f", (o < 0 ? 0 : o) }'
}

# measure FILE-TAG WARMUP RUNS MIN_RUNS NAME CMD [NAME CMD...]
measure() {
  local tag=$1 warmup=$2 runs=$3 minruns=$4; shift 4
  local pairs=("$@") i names=()
  for ((i = 0; i < ${#pairs[@]}; i += 2)); do names+=("'${pairs[i]}'"); done
  echo "bench: timing ${names[*]}"
  local before after
  before=$(cpu_snap)
  if [ -n "$HYPERFINE" ]; then
    local args=(-N -i --warmup "$warmup" --export-json "$res/$tag.json" --style basic)
    if [ "$runs" -gt 0 ]; then args+=(--runs "$runs"); else args+=(--min-runs "$minruns"); fi
    for ((i = 0; i < ${#pairs[@]}; i += 2)); do args+=(-n "${pairs[i]}" "${pairs[i + 1]}"); done
    "$HYPERFINE" "${args[@]}" >>"$hf_log" 2>&1 || { echo "bench: hyperfine failed, see $hf_log" >&2; exit 1; }
  else
    [ "$runs" -gt 0 ] || runs=$minruns
    helper time "$warmup" "$runs" "$res/$tag.json" "${pairs[@]}"
  fi
  after=$(cpu_snap)
  loads+=("$tag $(other_load "$before" "$after")")
  for ((i = 0; i < ${#pairs[@]}; i += 2)); do helper rss "$res/$tag.rss.tsv" "${pairs[i]}" "${pairs[i + 1]}"; done
}

# plan GROUP NAME BYTES FLOOR ORACLE ORACLE-FACTOR EXPECTED-EXIT: one table row.
planrow() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$plan"; }

meas_start=$(date +%s)
loads=()
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for n in $sizes; do
  a=$BENCH_DIR/ram${n}g-a.mig b=$BENCH_DIR/ram${n}g-b.mig
  sa=$(stat -c %s "$a") sb=$(stat -c %s "$b")
  runs=${BENCH_RUNS:-10}
  orc=-
  cmds=("cat ${n}G A B" "$(q cat "$a" "$b")"
    "cat ${n}G A" "$(q cat "$a")")
  [ -z "$XXHSUM" ] || cmds+=("xxhsum -H3 ${n}G A B" "$(q "$XXHSUM" -H3 "$a" "$b")")
  cmds+=("migdiff ${n}G A B" "$(q "$MIGDIFF" "$a" "$b")"
    "migdiff show ${n}G A" "$(q "$MIGDIFF" show "$a")")
  if [ -n "${ANALYZE_MIGRATION:-}" ]; then
    orc="analyze -d state ${n}G A"
    cmds+=("$orc" "$(q python3 "$ANALYZE_MIGRATION" -f "$a" -d state)")
  fi
  measure "ram${n}g" 1 "$runs" 0 "${cmds[@]}"
  planrow "$n" "cat ${n}G A B" $((sa + sb)) "cat ${n}G A B" - 1 0
  planrow "$n" "cat ${n}G A" "$sa" "cat ${n}G A" - 1 0
  [ -z "$XXHSUM" ] || planrow "$n" "xxhsum -H3 ${n}G A B" $((sa + sb)) "cat ${n}G A B" - 1 0
  planrow "$n" "migdiff ${n}G A B" $((sa + sb)) "cat ${n}G A B" "$orc" 2 1
  planrow "$n" "migdiff show ${n}G A" "$sa" "cat ${n}G A" "$orc" 1 0
  [ "$orc" = - ] || planrow "$n" "$orc" "$sa" "cat ${n}G A" "$orc" 1 0
done

sbusy=$(stat -c %s "$busy")
orc=-
cmds=("cat busy" "$(q cat "$busy")" "migdiff show busy" "$(q "$MIGDIFF" show "$busy")"
  "migdiff show --format json busy" "$(q "$MIGDIFF" show --format json "$busy")"
  "migdiff q35 busy" "$(q "$MIGDIFF" "$plain" "$busy")")
if [ -n "${ANALYZE_MIGRATION:-}" ]; then
  orc="analyze -d state busy"
  cmds+=("$orc" "$(q python3 "$ANALYZE_MIGRATION" -f "$busy" -d state)")
fi
"$MIGDIFF" show "$busy" >/dev/null
measure busy 3 0 20 "${cmds[@]}"
planrow busy "cat busy" "$sbusy" "cat busy" - 1 0
planrow busy "migdiff show busy" "$sbusy" "cat busy" "$orc" 1 0
planrow busy "migdiff show --format json busy" "$sbusy" "cat busy" "$orc" 1 0
planrow busy "migdiff q35 busy" $(($(stat -c %s "$plain") + sbusy)) - - 1 1
[ "$orc" = - ] || planrow busy "$orc" "$sbusy" "cat busy" "$orc" 1 0
for n in $sizes; do
  a=$BENCH_DIR/ram${n}g-a.mig b=$BENCH_DIR/ram${n}g-b.mig
  cmds=("cat ${n}G A B" "$(q cat "$a" "$b")")
  [ -z "$XXHSUM" ] || cmds+=("xxhsum -H3 ${n}G A B" "$(q "$XXHSUM" -H3 "$a" "$b")")
  cmds+=("migdiff ${n}G A B" "$(q "$MIGDIFF" "$a" "$b")")
  echo "bench: paired runs of cat, xxhsum and migdiff on the ${n} GiB pair"
  before=$(cpu_snap)
  helper paired 1 "${BENCH_PAIRS:-${BENCH_RUNS:-10}}" "$res/paired-$(printf '%05d' "$n")g.pairs" "${cmds[@]}"
  loads+=("paired${n}g $(other_load "$before" "$(cpu_snap)")")
done
meas_secs=$(($(date +%s) - meas_start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------------------------------------ report
mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
echo
echo "== migdiff benchmark"
echo "machine:   $(nproc) CPUs, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk -v k="$mem_kb" 'BEGIN{printf "%.1f GiB", k/1048576}') RAM, $(uname -sr)"
echo "migdiff:   $("$MIGDIFF" --version) ($migdiff_rev) $MIGDIFF"
echo "tools:     $("$QEMU" --version | head -1); $(python3 --version); $([ -n "$HYPERFINE" ] && "$HYPERFINE" --version || echo "python3 timer (no hyperfine)"); $([ -n "$XXHSUM" ] && "$XXHSUM" --version 2>&1 | head -1 || echo "no xxhsum")"
if [ -n "${ANALYZE_MIGRATION:-}" ]; then
  echo "oracle:    analyze-migration.py sha256 $(sha256sum "$ANALYZE_MIGRATION" | cut -d' ' -f1)"
fi
for n in $sizes; do
  echo "dumps:     ${n}G: A $(stat -c %s "$BENCH_DIR/ram${n}g-a.mig") bytes, B $(stat -c %s "$BENCH_DIR/ram${n}g-b.mig") bytes (pc-i440fx-10.0, ${n} GiB of non-zero pages, $CHANGED_PAGES pages differ)"
done
echo "busy:      testdata/q35-10-busy.mig, $sbusy bytes (pc-q35-10.0, -smp 4, ~12 devices)"
echo "dir:       $BENCH_DIR (measurements took ${meas_secs} s; load average $load_before before, $load_after after)"
noisy=()
for l in "${loads[@]}"; do
  if awk -v x="${l#* }" 'BEGIN { exit !(x > 0.25) }'; then noisy+=("${l%% *}"); fi
done
echo "others:    CPUs busy with other processes while timing: ${loads[*]/ /=}"
if [ ${#noisy[@]} -gt 0 ]; then
  echo "WARNING:   the machine was not quiet while timing ${noisy[*]} (other processes used > 0.25 CPU): those wall"
  echo "           times are inflated and parallel speedups hidden; rerun when it is idle (the dumps are reused)."
fi
echo
helper table "$res" "$plan"
cat <<'EOF'

wall: warm page cache. CPU: user + system time per run (more than wall = more than one core busy).
peak RSS: /usr/bin/time -v maximum resident set size; for migdiff it includes the pages of the memory-mapped
dumps it has touched (page cache, reclaimable), so it grows with the dump. peak anon: the highest RssAnon
(heap, stacks) sampled every 2 ms in the same run. × cat floor: against `cat` of the same file(s).
× analyze-migration.py: against `analyze-migration.py -f A -d state` on the same dump ("vs 2×": migdiff A B
decodes two dumps, so it is compared with two oracle runs). analyze-migration.py seeks over page contents
without reading them; migdiff reads and hashes every page (xxh3). xxhsum -H3 A B: the reference XXH3 over both
whole files, a floor for reading and hashing every byte.
EOF

#!/usr/bin/env bash
# hostile.sh: every hostile input of issue "Bounded on any input" against a migdiff binary,
# each under an address-space limit and a time limit, to show it ends with exit 0, 1 or 2
# and a message, never a signal or a hang.
#
#   scripts/hostile.sh [MIGDIFF]        (default: target/release/migdiff)
#
# Environment: AS_LIMIT (bytes, default 2000000000), TIME_LIMIT (seconds, default 20).
# Needs python3 (stdlib), zstd, prlimit and timeout (util-linux, coreutils). Not run in CI:
# it writes ~100 MB of inputs to a scratch directory and takes about a minute.
# Prints one line per input: exit status, seconds, and the first line of stderr.
# Exit status: 0 when every input ended with 0, 1 or 2 within the limits, 1 otherwise.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
case ${1:-} in -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
MIGDIFF=${1:-$root/target/release/migdiff}
AS_LIMIT=${AS_LIMIT:-2000000000}
TIME_LIMIT=${TIME_LIMIT:-20}
for tool in python3 zstd prlimit timeout; do
  command -v "$tool" >/dev/null || { echo "hostile: $tool not found" >&2; exit 2; }
done
[ -x "$MIGDIFF" ] || { echo "hostile: $MIGDIFF not found (cargo build --release)" >&2; exit 2; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

python3 - "$scratch" <<'PY'
import json, os, struct, sys
out = sys.argv[1]

def stream(devices, body_of):
    """A stream with one FULL section per device description, and its vmdesc."""
    b = bytearray(b"QEVM" + struct.pack(">I", 3))
    name = b"pc-i440fx-10.0"
    b += b"\x07" + struct.pack(">I", len(name)) + name
    for i, d in enumerate(devices):
        idstr = d["name"].encode()
        b += b"\x04" + struct.pack(">I", i) + bytes([len(idstr)]) + idstr
        b += struct.pack(">II", d["instance_id"], d["version"]) + body_of(d)
        b += b"\x7e" + struct.pack(">I", i)
    j = json.dumps({"page_size": 4096, "devices": devices}).encode()
    b += b"\x00\x06" + struct.pack(">I", len(j)) + j
    return bytes(b)

def device(name, fields):
    return {"name": name, "instance_id": 0, "vmsd_name": name, "version": 1, "fields": fields}

def empty_array(name, inner):
    return {"name": name, "array_len": 65536, "type": "struct",
            "struct": {"vmsd_name": name, "version": 1, "fields": inner}, "size": 0}

# Nested arrays of structs that take no bytes: 65,536^3 nodes from a few hundred bytes.
nested = [empty_array("a", [empty_array("b", [empty_array("c", [])])])]
open(f"{out}/nested-empty.mig", "wb").write(stream([device("nest", nested)], lambda d: b""))

# 100,000 fields renamed between two dumps.
def renamed(prefix):
    fields = [{"name": f"{prefix}{i}", "type": "uint8", "size": 1} for i in range(100000)]
    return stream([device("wide", fields)], lambda d: bytes(100000))
open(f"{out}/wide-a.mig", "wb").write(renamed("a"))
open(f"{out}/wide-b.mig", "wb").write(renamed("b"))

# Two dumps with a 4 KB buffer that differs everywhere, and 400,000 @ranges over it (a
# million would pass the 4 MiB limit of ignore files, tried below).
def buffer(fill):
    return stream([device("buf", [{"name": "data", "type": "buffer", "size": 4096}])],
                  lambda d: bytes([fill]) * 4096)
open(f"{out}/buf-a.mig", "wb").write(buffer(0))
open(f"{out}/buf-b.mig", "wb").write(buffer(1))
ranges = ",".join(str(2 * i) for i in range(400000))
open(f"{out}/million-ranges.ignore", "w").write(f"buf (0)/data@{ranges}\n")
with open(f"{out}/million-lines.ignore", "w") as f:
    for i in range(1000000):
        f.write(f"dev{i} (0)/field{i}\n")

# An export whose RAM blocks claim 2^28 pages each.
block = lambda n: {"name": n, "used_length": 1 << 40, "addr": None,
                   "pages": [{"start": 0, "count": 1 << 28, "digest": "0000000000000002"}],
                   "zero_pages": 0, "data_pages": 0, "opaque_pages": 0}
export = {"migdiff_export": 2, "migdiff": "0", "source": {"path": "x", "size": 0, "sha256": "", "container": "raw stream"},
          "dump": {"machine": None, "capabilities": [], "page_size": 4096, "devices": [],
                   "ram": [block(c) for c in "abcdef"],
                   "stream": {"size": 0, "footers": True, "commands": [], "ram_chunks": 0, "vmdesc_len": None},
                   "warnings": []}}
json.dump(export, open(f"{out}/pages.json", "w"))
PY
# A zstd bomb: 10 GiB of zeros in a few hundred KB.
head -c 10737418240 /dev/zero | zstd -q -1 -o "$scratch/bomb.zst"

fails=0
run() {
  local label=$1; shift
  local start end rc first
  start=$(date +%s%N)
  prlimit --as="$AS_LIMIT" timeout -s KILL "$TIME_LIMIT" "$MIGDIFF" "$@" >/dev/null 2>"$scratch/err" </dev/null
  rc=$?
  end=$(date +%s%N)
  first=$(head -1 "$scratch/err" | cut -c1-150)
  case $rc in 0|1|2) verdict=ok ;; *) verdict=FAIL; fails=$((fails + 1)) ;; esac
  printf '%-4s %-34s exit %3s %6.2fs  %s\n' "$verdict" "$label" "$rc" \
    "$(awk -v n=$((end - start)) 'BEGIN { print n / 1e9 }')" "$first"
}
run "nested empty arrays" show "$scratch/nested-empty.mig"
run "100,000 renamed fields" "$scratch/wide-a.mig" "$scratch/wide-b.mig"
run "400,000 @ranges" --ignore-file "$scratch/million-ranges.ignore" "$scratch/buf-a.mig" "$scratch/buf-b.mig"
run "a million-line ignore file" --ignore-file "$scratch/million-lines.ignore" "$scratch/buf-a.mig" "$scratch/buf-b.mig"
run "export claiming 6 x 2^28 pages" show "$scratch/pages.json"
run "zstd bomb (10 GiB)" show "$scratch/bomb.zst"
run "/dev/zero as input" show /dev/zero
run "/dev/zero as ignore file" --ignore-file /dev/zero "$scratch/buf-a.mig" "$scratch/buf-b.mig"
[ "$fails" = 0 ]

#!/usr/bin/env python3
"""QMP driver for the stream-format fixtures of scripts/gen-testdata.sh (python3 stdlib only).

QEMU must already listen on a QMP unix socket (-qmp unix:SOCK,server=on,wait=off). Subcommands:

  migrate SOCK URI [--qmp JSON]... [--cap C]... [--param K=V]... [--finish-after S --finish-param K=V...]
      Runs each --qmp command ({"execute": ..., "arguments": ...}) first, then
      migrate-set-capabilities / migrate-set-parameters, then migrate {"uri": URI} and poll query-migrate
      until "completed". With --finish-after, the --finish-param parameters are set S seconds after the
      migration started (e.g. a downtime-limit high enough to let a migration that keeps iterating
      converge). Prints the RAM statistics of query-migrate (iterations, xbzrle pages) on stdout as JSON.
  incoming SOCK [--pmemsave ADDR:SIZE:FILE]... [--then URI]
      For a QEMU started with -incoming: waits until query-migrate says "completed" (the stream is loaded),
      pmemsaves guest-physical ranges, and with --then migrates the loaded state out again to URI (no
      capabilities: every page plain).

QEMU is always sent quit at the end. Exit 1 on any failure or after 120 s.
"""
import argparse, importlib.util, json, os, sys, time

# The QMP client and value() of qmp-migrate.py (its name has a dash: load it by path).
spec = importlib.util.spec_from_file_location(
    "qmp_migrate", os.path.join(os.path.dirname(os.path.abspath(__file__)), "qmp-migrate.py"))
qmp_migrate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qmp_migrate)

TIMEOUT = 120.0
qmp_migrate.TIMEOUT = TIMEOUT  # live migrations with several RAM iterations take longer
Failed = qmp_migrate.MigrateError
value = qmp_migrate.value


def params(pairs):
    out = {}
    for p in pairs:
        key, sep, val = p.partition("=")
        if not sep:
            raise Failed(f"{p}: expected KEY=VALUE")
        out[key] = value(val)
    return out


def wait_completed(qmp, what, finish=None):
    start = time.monotonic()
    while True:
        info = qmp.cmd("query-migrate")
        status = info.get("status")
        if status == "completed":
            return info
        if status in ("failed", "cancelled"):
            raise Failed(f"{what} {status}: {info.get('error-desc', '')}")
        if finish and time.monotonic() - start >= finish[0]:
            qmp.cmd("migrate-set-parameters", finish[1])
            finish = None
        if time.monotonic() - start > TIMEOUT:
            raise Failed(f"{what} timed out (status {status})")
        time.sleep(0.05)


def do_migrate(qmp, a):
    for text in a.qmp or []:
        c = json.loads(text)
        qmp.cmd(c["execute"], c.get("arguments"))
    caps = a.cap or []
    if caps:
        qmp.cmd("migrate-set-capabilities", {"capabilities": [{"capability": c, "state": True} for c in caps]})
    p = params(a.param or [])
    if p:
        qmp.cmd("migrate-set-parameters", p)
    finish = (a.finish_after, params(a.finish_param)) if a.finish_after is not None else None
    qmp.cmd("migrate", {"uri": a.uri})
    info = wait_completed(qmp, f"migration to {a.uri}", finish)
    ram = info.get("ram", {})
    stats = {k: ram.get(k) for k in ("dirty-sync-count", "normal", "duplicate", "transferred")}
    if "xbzrle-cache" in info:
        stats["xbzrle"] = {k: info["xbzrle-cache"].get(k) for k in ("pages", "cache-miss", "overflow")}
    print(json.dumps(stats))


def do_incoming(qmp, a):
    wait_completed(qmp, "incoming migration")
    for spec in a.pmemsave or []:
        addr, size, path = spec.split(":", 2)
        qmp.cmd("pmemsave", {"val": int(addr, 0), "size": int(size, 0), "filename": path})
    if a.then:
        qmp.cmd("migrate", {"uri": a.then})
        wait_completed(qmp, f"migration to {a.then}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    m = sub.add_parser("migrate")
    m.add_argument("sock")
    m.add_argument("uri")
    m.add_argument("--qmp", action="append")
    m.add_argument("--cap", action="append")
    m.add_argument("--param", action="append")
    m.add_argument("--finish-after", type=float)
    m.add_argument("--finish-param", action="append", default=[])
    i = sub.add_parser("incoming")
    i.add_argument("sock")
    i.add_argument("--pmemsave", action="append")
    i.add_argument("--then")
    a = ap.parse_args()
    rc, qmp = 0, None
    try:
        qmp = qmp_migrate.QMP(a.sock)
        qmp.cmd("qmp_capabilities")
        (do_migrate if a.what == "migrate" else do_incoming)(qmp, a)
    except (Failed, EOFError, OSError) as e:
        print(f"qmp-stream: {e}", file=sys.stderr)
        rc = 1
    finally:
        try:
            if qmp:
                qmp.cmd("quit")
        except (EOFError, OSError, Failed):
            pass
    sys.exit(rc)


if __name__ == "__main__":
    main()

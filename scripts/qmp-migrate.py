#!/usr/bin/env python3
"""Dump a running QEMU's migration stream to a file over QMP (python3 stdlib only).

Starts nothing itself: QEMU must already listen on a QMP unix socket (-qmp unix:SOCK,server=on,wait=off).
Does qmp_capabilities, migrate-set-capabilities (--cap, repeatable), migrate-set-parameters (--param KEY=VALUE,
repeatable), then migrate {"uri": "exec:cat > OUT"} and polls query-migrate until "completed" (60 s timeout).
With --again-after S --again-out OUT2 it waits S seconds and migrates the same process again. QEMU 10.0 refuses
that ("Can't migrate the vm that was paused due to previous migration"): the error is printed and the exit code
is 3. QEMU is always sent quit at the end. Exit 1 when the first migration fails or times out.
"""
import argparse, json, shlex, socket, sys, time

TIMEOUT = 60.0
EXIT_AGAIN_REFUSED = 3


class MigrateError(Exception):
    pass


class QMP:
    def __init__(self, path):
        deadline = time.monotonic() + TIMEOUT
        while True:  # QEMU may not have created the socket yet
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise MigrateError(f"cannot connect to {path}")
                time.sleep(0.1)
        self.sock.settimeout(TIMEOUT)
        self.rfile = self.sock.makefile("r", encoding="utf-8")
        self.next_id = 0
        if "QMP" not in self._read():
            raise MigrateError("no QMP greeting")

    def _read(self):
        line = self.rfile.readline()
        if not line:
            raise EOFError("QMP connection closed")
        return json.loads(line)

    def cmd(self, name, args=None):
        self.next_id += 1
        msg = {"execute": name, "id": self.next_id, **({"arguments": args} if args is not None else {})}
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            resp = self._read()
            if "event" in resp or resp.get("id") != self.next_id:
                continue  # async events (MIGRATION, STOP, RESUME...) interleave with replies
            if "error" in resp:
                raise MigrateError(f"{name} {json.dumps(args)}: {resp['error'].get('desc', resp['error'])}")
            return resp.get("return")


def value(text):
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text, 0)
    except ValueError:
        return text


def migrate(qmp, out):
    qmp.cmd("migrate", {"uri": "exec:cat > " + shlex.quote(out)})
    deadline = time.monotonic() + TIMEOUT
    while True:
        info = qmp.cmd("query-migrate")
        status = info.get("status")
        if status == "completed":
            print(f"qmp-migrate: {out}: completed; runstate now {qmp.cmd('query-status')['status']}")
            return
        if status in ("failed", "cancelled"):
            raise MigrateError(f"migration to {out} {status}: {info.get('error-desc', '')}")
        if time.monotonic() > deadline:
            raise MigrateError(f"migration to {out} timed out after {TIMEOUT}s (status {status})")
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sock")
    ap.add_argument("out")
    ap.add_argument("--cap", action="append", default=[], help="migration capability to enable")
    ap.add_argument("--param", action="append", default=[], help="migration parameter KEY=VALUE")
    ap.add_argument("--again-after", type=float, help="seconds to wait before a second dump of the same VM")
    ap.add_argument("--again-out", help="file for the second dump")
    a = ap.parse_args()
    if (a.again_after is None) != (a.again_out is None):
        ap.error("--again-after and --again-out go together")
    params = {}
    for p in a.param:
        key, sep, val = p.partition("=")
        if not sep:
            ap.error(f"--param {p}: expected KEY=VALUE")
        params[key] = value(val)

    rc, qmp = 0, None
    try:
        qmp = QMP(a.sock)
        qmp.cmd("qmp_capabilities")
        if a.cap:
            qmp.cmd("migrate-set-capabilities", {"capabilities": [{"capability": c, "state": True} for c in a.cap]})
        if params:
            qmp.cmd("migrate-set-parameters", params)
        migrate(qmp, a.out)
        if a.again_out:
            time.sleep(a.again_after)
            try:
                migrate(qmp, a.again_out)
            except MigrateError as e:
                print(f"qmp-migrate: second migration refused: {e}", file=sys.stderr)
                rc = EXIT_AGAIN_REFUSED
    except MigrateError as e:
        print(f"qmp-migrate: {e}", file=sys.stderr)
        rc = 1
    finally:
        try:
            if qmp:
                qmp.cmd("quit")
        except (EOFError, OSError):
            pass  # QEMU may close the socket before answering
    sys.exit(rc)


if __name__ == "__main__":
    main()

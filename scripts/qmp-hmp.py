#!/usr/bin/env python3
"""Run HMP commands in a running QEMU over QMP, in order, then quit it (python3 stdlib only).

    qmp-hmp.py SOCK STEP...

Each STEP is an HMP command line (sent with human-monitor-command, e.g. "savevm a", "cont", "stop"),
"sleep S" (wait S seconds), or "migrate OUT" (QMP migrate {"uri": "exec:cat > OUT"}, polled until
completed, as scripts/qmp-migrate.py does). HMP commands report failure as text, not as a QMP error:
any output from savevm, cont or stop is treated as an error. Exit 1 on the first failure.
"""
import importlib.util, os, sys, time

# The QMP client and migrate() of qmp-migrate.py (its name has a dash: load it by path).
spec = importlib.util.spec_from_file_location(
    "qmp_migrate", os.path.join(os.path.dirname(os.path.abspath(__file__)), "qmp-migrate.py"))
qmp_migrate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qmp_migrate)

SILENT_ON_SUCCESS = ("savevm", "cont", "stop")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rc, qmp = 0, None
    try:
        qmp = qmp_migrate.QMP(sys.argv[1])
        qmp.cmd("qmp_capabilities")
        for step in sys.argv[2:]:
            verb, _, arg = step.partition(" ")
            if verb == "sleep":
                time.sleep(float(arg))
            elif verb == "migrate":
                qmp_migrate.migrate(qmp, arg)
            else:
                out = qmp.cmd("human-monitor-command", {"command-line": step})
                if out and verb in SILENT_ON_SUCCESS:
                    raise qmp_migrate.MigrateError(f"HMP {step}: {out.strip()}")
                print(f"qmp-hmp: {step}: ok")
    except qmp_migrate.MigrateError as e:
        print(f"qmp-hmp: {e}", file=sys.stderr)
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

"""System calls a served worker makes per operation, counted with strace while the bench drives it.

On a virtual machine a system call costs microseconds, so how many an operation makes is part of
its CPU: ``python -m bench.syscalls --op flow`` serves a deployment with one ``uauth serve``
worker as ``python -m bench.spy`` does, drives ``--op`` from one client process and counts the
worker's calls with ``strace -c`` meanwhile. Operations are counted by the connections the
worker accepted (the sync worker accepts one per request). strace slows the worker down a lot,
so this prints counts only, never times. Needs ``strace`` and a user allowed to ptrace the worker.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

from uauth.core.opaque import JWT
from uauth.core.settings import ACCESS_TOKEN_FORMATS

from . import procstat
from .load import Result
from .load import run_load
from .run import STORES
from .run import Run
from .run import Settings
from .run import deployment

#: HTTP requests (so accepted connections) per operation of the bench's agent.
REQUESTS = {"flow": 3, "refresh": 1, "cc": 1, "userinfo": 1}


def read_summary(lines: Iterable[str]) -> dict[str, int]:
    """Calls per system call from ``strace -c``'s table (``% time seconds usecs/call calls
    [errors] syscall``)."""
    calls: dict[str, int] = {}
    for line in lines:
        fields = line.split()
        if len(fields) in (5, 6) and fields[-1] != "total" and fields[3].isdigit():
            calls[fields[-1]] = int(fields[3])
    return calls


def report(calls: dict[str, int], op: str, store: str, top: int) -> str:
    operations = calls.get("accept4", calls.get("accept", 0)) / REQUESTS[op]
    if operations < 1:
        raise SystemExit("the worker accepted no connection while strace counted")
    total = sum(calls.values())
    lines = [f"{op} on {store}, one uauth serve worker: {total / operations:.0f} system calls "
             f"per operation ({operations:.0f} operations counted)", "",
             "| system call | per operation |", "| --- | --- |"]
    for name, n in sorted(calls.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"| {name} | {n / operations:.1f} |")
    return "\n".join(lines)


def count(store: str, op: str, seconds: float, access_token_format: str, workdir: Path
          ) -> dict[str, int]:
    """Serve ``store`` with one worker, drive ``op`` and count the worker's calls meanwhile."""
    strace = shutil.which("strace")
    if strace is None:
        raise SystemExit("strace is not installed (apt-get install strace)")
    run = Run(Settings(access_token_format=access_token_format))
    with ExitStack() as stack:
        uauth = stack.enter_context(deployment(run, workdir, store, ("RS256",),
                                               access_token_format))
        if uauth is None:
            raise SystemExit(f"{store} is not available here")
        server = uauth.serve(1, 1, ((op, "RS256"),))
        stack.callback(server.stop)
        worker = procstat.children(server.pid)[0]
        warmup = 2.0
        failed: list[BaseException] = []
        measured: list[Result] = []

        def drive() -> None:
            try:
                measured.append(run_load(server.targets["RS256"], op, server_pid=server.pid,
                                         clients=1, seconds=seconds + 2, warmup=warmup))
            except BaseException as exc:  # noqa: BLE001 - reported by the caller's thread
                failed.append(exc)

        load = threading.Thread(target=drive)
        load.start()
        time.sleep(warmup + 1)  # past the client's warm-up: count the steady state
        summary = workdir / "strace.txt"
        tracer = subprocess.Popen(  # noqa: S603 - strace, with our own arguments
            [strace, "-c", "-f", "-p", str(worker), "-o", str(summary)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds)
        tracer.send_signal(signal.SIGINT)  # detaches and writes its table
        tracer.wait(timeout=60)
        load.join()
        if failed:
            raise SystemExit(f"the bench could not drive {op}: {failed[0]}")
        if not summary.exists():
            raise SystemExit("strace could not trace the worker (is ptrace allowed?)")
        with summary.open() as handle:
            return read_summary(handle)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.syscalls", description=__doc__)
    ap.add_argument("--store", choices=STORES, default="sqlite")
    ap.add_argument("--op", choices=sorted(REQUESTS), default="flow")
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds counted")
    ap.add_argument("--top", type=int, default=15, help="system calls listed")
    ap.add_argument("--access-token-format", choices=ACCESS_TOKEN_FORMATS, default=JWT)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="uauth-syscalls-") as tmp:
        calls = count(args.store, args.op, args.seconds, args.access_token_format, Path(tmp))
    print(report(calls, args.op, args.store, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())

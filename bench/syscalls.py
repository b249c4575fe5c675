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
import time
from collections.abc import Iterable
from pathlib import Path

from uauth.core.opaque import JWT
from uauth.core.settings import ACCESS_TOKEN_FORMATS

from .run import STORES
from .served import loaded_worker

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
    summary = workdir / "strace.txt"
    with loaded_worker(store, op, access_token_format, workdir, clients=1, seconds=seconds,
                       warmup=2.0) as load:
        tracer = subprocess.Popen(  # noqa: S603 - strace, with our own arguments
            [strace, "-c", "-f", "-p", str(load.worker), "-o", str(summary)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds)
        tracer.send_signal(signal.SIGINT)  # detaches and writes its table
        tracer.wait(timeout=60)
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

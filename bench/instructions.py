"""What each app's own work costs per operation in instructions, counted by valgrind's callgrind.

Served and in-process CPU figures move with this shared machine by more than a small change
saves: two runs of the targets minutes apart put the reference's flow at 2.28 and 1.87 ms, and
alternated in-process timings of one app move by 20%. An instruction count does not: callgrind
executes the program on a simulated CPU and counts the instructions it runs, whatever else the
machine is doing (random tokens and temporary paths leave two counts of the same code within
about half a percent). ``python -m bench.instructions`` runs each app in a child process under
callgrind, drives the bench's agent through its WSGI app in-process (as ``python -m
bench.own_work`` does), and counts only what runs inside the app: collection is switched on
around each call of the WSGI app (callgrind's ``--toggle-collect`` on ``operator.call``, which
nothing else calls), so neither the agent, the test client, start-up nor warm-up is counted.
``--apps redis,redis-cluster`` counts uauth on a Redis or a Redis Cluster that the parent
starts outside valgrind: the client's side of each round trip is counted, the servers' is not.
The warm-up takes the flow past the grant cap, so that each counted flow evicts a family, as at
the bench's steady state; ``--without-eviction`` counts uauth's apps with the cap evicting
nothing (as ``python -m bench.own_work --without-eviction`` times them), so that the difference
is what the eviction costs. Hash randomisation is off (``PYTHONHASHSEED=0``) so that dictionaries
probe alike from run to run.

What it does not count: the kernel's work (system calls: SQLite's locks and writes, sockets),
and what an instruction costs (cache misses, branch mispredictions). Both make uauth's
instructions dearer than the floor's: per flow, uauth in memory counts 6% more instructions than
the floor and takes about 25% more CPU in-process, and the signature, a fifth of the CPU, counts
more than half of the instructions (valgrind's simulated CPU lacks the vector instructions
OpenSSL would use). So a count is the measure of a change to uauth's own Python, smaller than
its effect in time; it is not a measure of storage or of serving, which ``make bench`` measures.
"""

from __future__ import annotations

import argparse
import operator
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any
from typing import TypeVar

from flask import Flask

from uauth.core.grantlimits import MAX_GRANTS_PER_CLIENT
from uauth.core.opaque import OPAQUE

from .driver import Unsupported
from .storage import OPS
from .storage import backend

#: The apps counted by default: the stack's floor, and uauth on a store needing no server.
SERVERLESS = ("floor", "memory", "sqlite")
#: The apps that can be counted: those, the floor with its records in SQLite, and uauth on Redis
#: and on a Redis Cluster, each started for the count outside valgrind (only the app's side of
#: each round trip is counted).
APPS = (*SERVERLESS, "floor-sqlite", "redis", "redis-cluster")
#: Where a counted child finds the Redis or Redis Cluster its parent started.
STORAGE_URL = "BENCH_STORAGE_URL"
#: Operations per count by default: enough that start-up and warm-up are never counted, and
#: few enough that the slowest (the flow) takes about a minute under callgrind.
COUNTS = {"flow": 30, "refresh": 60, "cc": 120, "userinfo": 120, "introspect": 120, "par": 30,
          "sso": 30}
#: The C function around each call of the app; callgrind collects only inside it.
TOGGLE = "_operator_call"
#: Operations run before counting: caches filled and connections open, and more code flows than
#: the grant cap keeps families of one client, so that every counted flow evicts the oldest, as
#: at the bench's steady state (counted after 20 flows, a flow missed that: 0.22 M instructions
#: in memory, 0.53 M on SQLite).
WARM = MAX_GRANTS_PER_CLIENT + 10
_COLLECTED = re.compile(r"Collected : (\d+)")
#: What one count answers (instructions per operation, or more).
Counted = TypeVar("Counted")
#: The exit status of a counted child whose app cannot do the operation (the floor has no
#: introspection or PAR endpoint): the table shows a dash for it, not an error.
UNSUPPORTED = 3


class CountedApp:
    """The WSGI app, called through ``operator.call`` so that callgrind counts it alone."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner = inner

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return operator.call(self.inner, environ, start_response)


def _app(name: str, workdir: Path) -> tuple[Flask, Any]:
    from .own_work import floor_app
    from .profile import build

    if name == "floor":
        return floor_app()
    if name == "floor-sqlite":
        return floor_app(workdir / "floor.db")
    return build(name, workdir, os.environ.get(STORAGE_URL), access_token_format=OPAQUE)


def child(name: str, op: str, count: int, *, evicting: bool = True) -> None:
    """Run ``op`` ``count`` times through ``name``'s app, counted (under callgrind);
    ``evicting=False``: with the grant cap evicting nothing, warm-up included."""
    from .driver import prepare
    from .own_work import without_eviction
    from .profile import InProcess

    with tempfile.TemporaryDirectory(prefix="uauth-instructions-") as tmp:
        app, target = _app(name, Path(tmp))
        _, run = prepare(target, op, lambda _: InProcess(app))
        if not evicting:
            run = without_eviction(run)
        for _ in range(WARM):
            run()
        app.wsgi_app = CountedApp(app.wsgi_app)  # type: ignore[method-assign]
        for _ in range(count):
            run()


def valgrind_command(name: str, op: str, count: int, out: Path, *, evicting: bool = True
                     ) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--collect-atstart=no",
            f"--toggle-collect={TOGGLE}", f"--callgrind-out-file={out}",
            sys.executable, "-m", "bench.instructions", "--child", name, op, str(count),
            *(() if evicting else ("--without-eviction",))]


def collected(stderr: str) -> int:
    """The instructions callgrind counted, from what it printed at exit."""
    found = _COLLECTED.findall(stderr)
    if not found:
        raise RuntimeError("callgrind printed no count:\n" + stderr[-2000:])
    return int(found[-1])


def count(name: str, op: str, ops: int, *, evicting: bool = True) -> float | None:
    """Instructions per ``op`` inside ``name``'s app; None if the app cannot do ``op``."""
    with tempfile.TemporaryDirectory(prefix="uauth-callgrind-") as tmp, \
            backend(name, Path(tmp)) as url:
        env = {**os.environ, "PYTHONHASHSEED": "0", **({STORAGE_URL: url} if url else {})}
        command = valgrind_command(name, op, ops, Path(tmp) / "callgrind.out",
                                   evicting=evicting)
        done = subprocess.run(command, capture_output=True, text=True, env=env,  # noqa: S603 - valgrind, our own arguments
                              cwd=Path(__file__).resolve().parent.parent, check=False)
        if done.returncode == UNSUPPORTED:
            return None
        if done.returncode != 0:
            raise RuntimeError(f"{name} {op} failed under callgrind:\n{done.stderr[-2000:]}")
        return collected(done.stderr) / ops


def table(counts: Mapping[tuple[str, str], float | None], apps: list[str], ops: list[str],
          what: str = "in the app") -> str:
    """Millions of instructions per operation, and each uauth app's ratio to the floor; a dash
    where an app cannot do the operation."""
    ours = [app for app in apps if app != "floor"]
    head = [f"operation (M instructions {what})", *apps,
            *(f"{app} ÷ floor" for app in ours if "floor" in apps)]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for op in ops:
        cells = [op, *("–" if (n := counts[(app, op)]) is None else f"{n / 1e6:.3f}"
                       for app in apps)]
        if "floor" in apps:
            floor = counts[("floor", op)]
            cells += ["–" if floor is None or (n := counts[(app, op)]) is None
                      else f"{n / floor:.3f}×" for app in ours]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def options(prog: str, doc: str, apps: tuple[str, ...] = APPS) -> argparse.ArgumentParser:
    """The options of both counts, this one and ``bench.served_instructions`` (``apps``: those
    it can count)."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    parser.set_defaults(known_apps=apps)
    parser.add_argument("--apps", default=",".join(SERVERLESS),
                        help="comma-separated, of " + ", ".join(apps))
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated, of " +
                        ", ".join(OPS))
    parser.add_argument("--count", type=int, help="operations counted per app and operation "
                        "(default: " + ", ".join(f"{k} {v}" for k, v in COUNTS.items()) + ")")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="counts run at once")
    return parser


def chosen(parser: argparse.ArgumentParser, args: argparse.Namespace
           ) -> tuple[list[str], list[str]]:
    """The apps and operations asked for; an unknown one is a usage error."""
    apps = [a for a in args.apps.split(",") if a]
    ops = [op for op in args.ops.split(",") if op]
    unknown = (set(apps) - set(args.known_apps)) | (set(ops) - set(OPS))
    if unknown:
        parser.error(f"unknown apps or operations: {', '.join(sorted(unknown))}")
    return apps, ops


def count_all(counter: Callable[[str, str, int], Counted], jobs: list[tuple[str, str]],
              args: argparse.Namespace, counts: dict[str, int] = COUNTS
              ) -> dict[tuple[str, str], Counted]:
    """Each (app, operation)'s count, ``--jobs`` at once: each runs valgrind in a process of
    its own, so threads are enough to keep the cores busy."""
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        found = pool.map(lambda job: counter(job[0], job[1], args.count or counts[job[1]]),
                         jobs)
        return dict(zip(jobs, found, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = options("python -m bench.instructions", __doc__)
    parser.add_argument("--without-eviction", action="store_true",
                        help="count uauth's apps with the grant cap evicting nothing (the "
                             "floor has no cap)")
    parser.add_argument("--child", nargs=3, metavar=("APP", "OP", "COUNT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    evicting = not args.without_eviction
    if args.child:
        try:
            child(args.child[0], args.child[1], int(args.child[2]), evicting=evicting)
        except Unsupported:
            return UNSUPPORTED
        return 0
    apps, ops = chosen(parser, args)
    counts = count_all(partial(count, evicting=evicting),
                       [(app, op) for op in ops for app in apps], args)
    print(table(counts, apps, ops, "in the app" if evicting
                else "in the app, the grant cap evicting nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

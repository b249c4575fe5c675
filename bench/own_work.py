"""What uauth's own work costs per operation: its app against the stack's floor, in-process.

``python -m bench.own_work`` drives the bench's agent through uauth's WSGI app (SQLite and opaque
access tokens, as ``make bench`` measures issue 22's targets) and through the stack's floor
(``bench/floor.py``: Authlib's Flask provider alone, its tokens in memory), both in-process as
``python -m bench.profile`` does, and times the two alternately so that both see the same
disturbances. It prints the least app CPU per operation of each and the difference: what uauth
adds to the stack (storage, login sessions, input checks, audit, headers, the grant cap).
gunicorn and the log lines are left out; serving costs both apps alike, and ``make bench``
measures it. ``--store memory`` keeps uauth's records in memory too, as the floor keeps its own;
``--floor-store sqlite`` keeps the floor's in a SQLite file instead, so that uauth on SQLite is
set against the same stack paying for durability too.

``--without-eviction`` also times a second uauth app, on a store of its own, whose grant cap
never evicts (:func:`uauth.core.grantlimits.evict_oldest` skipped while it runs; a measurement,
not a setting uauth offers): at the bench's steady state every flow starts the bench user's
51st refresh-token family of one client and evicts the oldest, and the difference is what
that costs (performance-log.md, the thirty-ninth part).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from unittest.mock import patch

from flask import Flask

from uauth.core import grantlimits
from uauth.core.opaque import OPAQUE
from uauth.extension import get_state

from .driver import Target
from .driver import prepare
from .profile import InProcess
from .profile import build
from .profile import metered
from .storage import OPS as STORAGE_OPS
from .storage import backend

#: The operations the stack's floor offers too (it has no introspection or PAR endpoint).
OPS = tuple(op for op in STORAGE_OPS if op not in ("introspect", "par"))


def floor_app(database: Path | None = None) -> tuple[Flask, Target]:
    """The stack's floor (its records in ``database``, a SQLite file, or else in memory) and
    the target the agent drives on it."""
    from . import floor

    app = floor.create_app(str(database)) if database else floor.app
    target = Target(issuer=floor.ISSUER, spa_client=floor.PUBLIC_CLIENT,
                    redirect_uri=floor.REDIRECT_URI, service_client=floor.SERVICE_CLIENT,
                    access_token_format=OPAQUE)
    return app, target.discover(InProcess(app))


def without_eviction(run: Callable[[], None]) -> Callable[[], None]:
    """``run`` with the grant cap evicting nothing (its read of the families skipped too); the
    swap is made outside the app, so nothing is charged to it, and undone after each
    operation."""
    def skipping() -> None:
        with patch.object(grantlimits, "evict_oldest", lambda *args, **kwargs: 0):
            run()
    return skipping


def measure(runs: dict[str, tuple[Flask, Callable[[], None]]], timings: int, count: int
            ) -> dict[str, list[float]]:
    """App CPU ms per operation, ``timings`` times for each app, alternated."""
    costs: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(timings):
        for name, (app, run) in runs.items():
            costs[name].append(metered(app, run, count))
    return costs


def table(costs: dict[str, dict[str, list[float]]], store: str, *, evictions: bool = False,
          floor_store: str = "memory") -> str:
    lines = [f"| operation, in-process (least app CPU ms) | uauth ({store}) | Authlib alone "
             f"({floor_store}) | uauth's own work | uauth ÷ floor |"
             + (" uauth, no eviction | the grant cap's eviction |" if evictions else ""),
             "| --- | --- | --- | --- | --- |" + (" --- | --- |" if evictions else "")]
    for op, each in costs.items():
        ours, floor = min(each["uauth"]), min(each["floor"])
        line = (f"| {op} | {ours:.3f} | {floor:.3f} | {ours - floor:+.3f} "
                f"| {ours / floor:.2f}× |")
        if evictions:
            uncapped = min(each["uncapped"])
            line += f" {uncapped:.3f} | {ours - uncapped:+.3f} |"
        lines.append(line)
    return "\n".join(lines)


def in_process(app: Flask, target: Target, op: str) -> Callable[[], None]:
    """The agent's ``op`` on ``app``, answered in-process."""
    return prepare(target, op, lambda _: InProcess(app))[1]


def uauth_app(stack: ExitStack, store: str) -> tuple[Flask, Target]:
    """uauth's app on a ``store`` of its own, closed (and torn down) with ``stack``."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="uauth-own-work-")))
    url = stack.enter_context(backend(store, tmp))
    app, target = build(store, tmp, url, access_token_format=OPAQUE)

    def close() -> None:
        with app.app_context():
            get_state().store.close()  # before a DROP DATABASE ends its connections

    stack.callback(close)
    return app, target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.own_work",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "memory", "redis", "postgres",
                                            "redis-cluster"], default="sqlite")
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated, of " +
                        ", ".join(OPS))
    parser.add_argument("--timings", type=int, default=7, help="timings of each app")
    parser.add_argument("--count", type=int, default=300, help="operations per timing")
    parser.add_argument("--floor-store", choices=["memory", "sqlite"], default="memory",
                        help="where the floor keeps its codes and tokens (sqlite: a file of "
                             "its own, as durable as uauth's)")
    parser.add_argument("--without-eviction", action="store_true",
                        help="also time uauth, on a store of its own, with the grant cap's "
                             "eviction skipped: what it costs at the bench's steady state")
    args = parser.parse_args(argv)
    ops = [op for op in args.ops.split(",") if op]
    unknown = set(ops) - set(OPS)
    if unknown:
        parser.error(f"unknown operations: {', '.join(sorted(unknown))}")
    costs: dict[str, dict[str, list[float]]] = {}
    with ExitStack() as stack:
        apps = {"uauth": uauth_app(stack, args.store)}
        if args.without_eviction:
            apps["uncapped"] = uauth_app(stack, args.store)
        database = None
        if args.floor_store == "sqlite":
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="uauth-floor-"))
            database = Path(folder) / "floor.db"
        floor, floor_target = floor_app(database)
        for op in ops:
            runs = {name: (app, in_process(app, target, op)) for name, (app, target)
                    in [*apps.items(), ("floor", (floor, floor_target))]}
            if "uncapped" in runs:
                app, run = runs["uncapped"]
                runs["uncapped"] = (app, without_eviction(run))
            for _, run in runs.values():
                for _ in range(100):  # warm: caches filled, connections open, the cap reached
                    run()
            costs[op] = measure(runs, args.timings, args.count)
    print(table(costs, args.store, evictions=args.without_eviction,
                floor_store=args.floor_store))
    return 0


if __name__ == "__main__":
    sys.exit(main())

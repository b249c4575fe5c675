"""What ``Store.prefetch`` and ``Store.prefetch_grant`` save a store with round trips: whole
bench operations through the app, in-process, with reads ahead and without, against a server of
their own.

``python -m bench.read_ahead --store redis --op flow`` builds the app as ``python -m
bench.profile`` does, then times the operation alternately with the store reading ahead and
with both made no-ops (as a backend without round trips has them; ``--only prefetch_grant``:
that one alone), so that both see the same disturbances, and prints the least, the lower
quartile and the median of the app's CPU per operation each way, and the round trips each way
(on SQLite, statements). On a shared machine the least is the one to compare.

``--consent`` makes the bench's browser client one that is not first party, with the bench
user's consent to its scopes on record, so that ``/authorize`` reads that consent as it does
for most clients; ``--only consent`` then turns off that one read ahead alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from flask import Flask

from uauth.core.clients import get_client
from uauth.core.clients import save_client
from uauth.core.consents import remember_consent
from uauth.core.opaque import OPAQUE
from uauth.extension import get_state
from uauth.storage import Store
from uauth.web import steps
from uauth.web.views import authorize

from .driver import Target
from .driver import prepare
from .profile import InProcess
from .profile import build
from .profile import metered
from .storage import backend
from .storage import waits

WAYS = ("reads ahead", "no reads ahead")
#: The store's hints that the second way turns off (``--only`` one of them).
HINTS = ("prefetch", "prefetch_grant")
#: ``--only consent``: the consent read ahead at /authorize alone (a ``prefetch``).
CONSENT = "consent"


def _reading(store: Store, way: str, hints: tuple[str, ...] = HINTS) -> None:
    """The store's own ``hints`` for the first way; ones that do nothing for the other."""
    for hint in hints:
        if hint == CONSENT:  # the view's own call, or one that asks for nothing
            own = steps.expect_consent if way == WAYS[0] else (lambda *_: None)
            setattr(authorize, "expect_consent", own)  # noqa: B010
        elif way == WAYS[0]:
            vars(store).pop(hint, None)
        else:
            setattr(store, hint, lambda *_: None)  # a method, shadowed


def ask_consent(app: Flask, target: Target) -> None:
    """The bench's browser client made one that is not first party, and the bench user's
    consent to the scopes it asks for recorded (as its consent page would)."""
    with app.app_context():
        state = get_state()
        client = get_client(state.store, target.spa_client)
        user = state.users.find_by_username(target.login[0]) if target.login else None
        assert client is not None and user is not None, "the bench's client and user"
        client.first_party = False
        save_client(state.store, client)
        remember_consent(state.store, user.id, client.client_id, target.scope.split(),
                         ttl=state.settings.consent_ttl, now=state.now())


def measure(app: Flask, run: Callable[[], None], store: Store, timings: int, count: int,
            hints: tuple[str, ...] = HINTS) -> dict[str, list[float]]:
    """CPU ms per operation, ``timings`` times each way, alternated."""
    costs: dict[str, list[float]] = {way: [] for way in WAYS}
    try:
        for _ in range(timings):
            for way in WAYS:
                _reading(store, way, hints)
                costs[way].append(metered(app, run, count))
    finally:
        _reading(store, WAYS[0], hints)
    return costs


def trips(run: Callable[[], None], store: Store, name: str, count: int,
          hints: tuple[str, ...] = HINTS) -> dict[str, float]:
    """Round trips per operation each way (as ``python -m bench.storage`` counts them; on
    SQLite, statements)."""
    found: dict[str, float] = {}
    try:
        for way in WAYS:
            _reading(store, way, hints)
            with ExitStack() as stack:
                counters = [stack.enter_context(counter) for counter in waits(name)]
                for _ in range(count):
                    run()
            found[way] = sum(counter.calls for counter in counters) / count
    finally:
        _reading(store, WAYS[0], hints)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.read_ahead",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["redis", "postgres", "redis-cluster", "sqlite"],
                        default="redis")
    parser.add_argument("--only", choices=[*HINTS, CONSENT],
                        help="turn off this hint alone (default: both)")
    parser.add_argument("--consent", action="store_true",
                        help="a client that is not first party, its consent on record")
    parser.add_argument("--op", choices=["flow", "refresh", "userinfo"], default="flow")
    parser.add_argument("--timings", type=int, default=15, help="timings each way")
    parser.add_argument("--count", type=int, default=100, help="operations per timing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="uauth-read-ahead-") as tmp, \
            backend(args.store, Path(tmp)) as url:
        app, target = build(args.store, Path(tmp), url, access_token_format=OPAQUE)
        with app.app_context():
            store = get_state().store
        if args.consent or args.only == CONSENT:
            ask_consent(app, target)
        try:
            _, run = prepare(target, args.op, lambda _: InProcess(app))
            for _ in range(200):  # warm: caches filled, statements prepared
                run()
            hints = (args.only,) if args.only else HINTS
            waits = trips(run, store, args.store, args.count, hints)
            costs = measure(app, run, store, args.timings, args.count, hints)
        finally:
            store.close()  # before a DROP DATABASE ends its connections
    print(f"| {args.op} on {args.store}, in-process (app CPU ms per operation) | round trips "
          "| least | lower quartile | median |")
    print("| --- | --- | --- | --- | --- |")
    for way, ms in costs.items():
        quartile = statistics.quantiles(ms, n=4)[0] if len(ms) > 1 else ms[0]
        print(f"| {way} | {waits[way]:.1f} | {min(ms):.3f} | {quartile:.3f} "
              f"| {statistics.median(ms):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

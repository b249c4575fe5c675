"""Storage round trips and CPU per SSO code + PKCE flow (or another operation), per backend,
in-process.

``python -m bench.storage`` runs the bench's flow (authorize with a
signed-in session, code exchange with PKCE, the ID token checked) through the WSGI app on SQLite,
Redis, PostgreSQL and Redis Cluster, and counts what each flow asks of its storage (``--op
refresh``: each rotating refresh, and so on for ``cc``, ``userinfo``, ``introspect``, a resource
server introspecting the flow's access token, ``par``, the flow with its request pushed
first, RFC 9126, and ``sso``, a plain sign-in's flow, without ``offline_access``):

* round trips: how often the app waits for its storage: an SQL statement (SQLite, PostgreSQL), a
  command, script or pipeline (Redis, Redis Cluster; a cluster pipeline writes to every node it
  touches, then reads every reply, so it is one wait);
* requests: what reaches the servers (a cluster pipeline counts once per node).

CPU is the app's own per flow (no HTTP server), so it isolates the storage client's share; the
gunicorn figures of ``make bench`` (``--stores``) are the ones the targets are judged on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis.connection
from redis.cluster import RedisCluster

from tests.postgres_server import SessionDatabase
from tests.redis_cluster import RedisClusterServer
from tests.redis_server import RedisServer
from uauth.core.opaque import JWT
from uauth.core.settings import ACCESS_TOKEN_FORMATS
from uauth.storage.postgres import PostgresStore
from uauth.storage.redis_cluster import RedisClusterStore
from uauth.storage.sqlite import SQLiteStore

from .driver import prepare
from .profile import InProcess
from .profile import build
from .profile import metered
from .run import STORES

#: The operations it can count: each of the bench's, in-process.
OPS = ("flow", "refresh", "cc", "userinfo", "introspect", "par", "sso")


class Counter:
    """Counts calls of a method (on the class, so every instance and process-local pool). The
    method is looked up when the count starts, so two counters of one method, entered one after
    the other, both count (a Redis command is a wait and a request)."""

    def __init__(self, owner: type, name: str) -> None:
        self.owner, self.name = owner, name
        self.calls = 0

    def __enter__(self) -> Counter:
        original = self.original = getattr(self.owner, self.name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        setattr(self.owner, self.name, counted)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(self.owner, self.name, self.original)


def waits(store: str) -> list[Counter]:
    """What makes the app wait for its storage, counted together: a statement, a command, a
    pipeline (``python -m bench.read_ahead`` counts the same)."""
    if store == "sqlite":
        return [Counter(SQLiteStore, "_execute")]  # a statement, or a transaction of held writes
    if store == "postgres":
        return [Counter(PostgresStore, "_run_all")]  # a statement, or a pipeline of held writes
    if store == "redis":
        # Each wait is one write to the socket: a command, or a pipeline sent at once (held
        # writes and the deny list's reads go on the thread's connection, not through
        # redis-py's Pipeline).
        return [Counter(redis.connection.AbstractConnection, "send_packed_command")]
    # uauth routes its commands itself (one wait per call); the cluster client's own calls
    # (slot map refreshes, the fallback, admin listings) count too.
    return [Counter(RedisClusterStore, "_send"), Counter(RedisCluster, "execute_command"),
            Counter(redis.Redis, "execute_command")]


def _requests(store: str) -> Counter:
    """Requests written to a server socket (a cluster pipeline writes one per node)."""
    return Counter(redis.connection.AbstractConnection, "send_packed_command")


@contextmanager
def backend(store: str, workdir: Path) -> Iterator[str | None]:
    """The storage URL for ``store`` (None: SQLite in ``workdir``), torn down afterwards."""
    with ExitStack() as stack:
        if store == "redis":
            server = RedisServer(workdir / "redis")
            server.start()
            stack.callback(server.stop)
            yield server.url
        elif store == "redis-cluster":
            cluster = RedisClusterServer(workdir / "cluster")
            stack.callback(cluster.stop)
            cluster.start()
            yield cluster.url
        elif store == "postgres":
            database = SessionDatabase()
            database.create()
            stack.callback(database.drop)
            yield database.url
        else:
            yield None


def measure(store: str, flows: int, rounds: int, log: Callable[[str], None], op: str = "flow",
            access_token_format: str = JWT) -> tuple[float, float, float]:
    """Round trips (waits), requests written and app CPU ms per ``op`` on ``store`` (CPU: median
    over ``rounds``); the bench's clients get ``access_token_format`` access tokens."""
    with tempfile.TemporaryDirectory(prefix=f"uauth-bench-{store}-") as tmp, \
            backend(store, Path(tmp)) as url:
        app, target = build(store, Path(tmp), url, access_token_format=access_token_format)
        # Set up (a refresh's first tokens, say) and warm before counting: only ``op`` counts.
        _, run = prepare(target, op, lambda _: InProcess(app))
        for _ in range(50):  # connections open, caches warm
            run()
        with ExitStack() as stack:
            counters = [stack.enter_context(c) for c in (*waits(store), _requests(store))]
            for _ in range(flows):
                run()
        trips = sum(c.calls for c in counters[:-1]) / flows
        sent = counters[-1].calls / flows if store.startswith("redis") else trips
        cpu = statistics.median(metered(app, run, flows) for _ in range(rounds))
        log(f"{store}: {trips:.1f} storage round trips ({sent:.1f} requests), "
            f"{cpu:.2f} app CPU ms per {op}")
        return trips, sent, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", default=",".join(STORES))
    ap.add_argument("--flows", type=int, default=500, help="operations measured per store")
    ap.add_argument("--op", choices=[*OPS, "login"], default="flow",
                    help="login: a fresh browser's flow, the password login included (its "
                    "argon2id hash dominates the CPU; the round trips are the figure)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--access-token-format", choices=ACCESS_TOKEN_FORMATS, default=JWT,
                    help="the bench clients' access tokens (make bench's targets use opaque)")
    args = ap.parse_args(argv)
    figures = {}
    for store in args.stores.split(","):
        figures[store] = measure(store, args.flows, args.rounds,
                                 lambda m: print(m, file=sys.stderr, flush=True), args.op,
                                 args.access_token_format)
    per = args.op
    print(f"| storage | round trips per {per} | requests per {per} | app CPU ms per {per} |")
    print("|---|---|---|---|")
    for store, (trips, sent, cpu) in figures.items():
        print(f"| {store} | {trips:.1f} | {sent:.1f} | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

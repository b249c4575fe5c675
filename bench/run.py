"""One bench run: every server is started first and kept up, then each operation is measured
against each server in turn, round after round, so the noise of a shared machine falls on all
of them alike; each figure is the median over the rounds."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from tests.postgres_server import SessionDatabase
from tests.postgres_server import with_options
from tests.redis_cluster import RedisClusterServer
from tests.redis_server import RedisServer
from uauth.core.opaque import JWT

from . import procstat
from .load import NotMeasured
from .load import Result
from .load import run_load
from .servers import FLOOR_OPS
from .servers import Op
from .servers import Server
from .servers import Uauth
from .servers import reference_problem
from .servers import serve_bare
from .servers import serve_floor
from .servers import serve_in_memory
from .servers import serve_reference

#: Storage backends measured, in table order.
STORES = ("sqlite", "redis", "postgres", "redis-cluster")

#: Operations measured on uauth, in table order (see bench.driver.OPERATIONS).
UAUTH_OPS = ("flow", "refresh", "cc", "userinfo", "login")
#: Operations measured only when ``--ops`` names them: ``sso``, a plain sign-in (the flow without
#: ``offline_access``: uauth issues no refresh token, so it starts no family and keeps no cap;
#: the stack's floor and the reference issue one all the same).
ASKED_OPS = ("sso",)

#: ID-token algorithms the flow is measured with: uauth registers one client per algorithm
#: (``--id-token-signed-response-alg``; access tokens stay RS256), the reference provider runs
#: once per algorithm (its ``OP_ALG`` is global).
ALGS = ("RS256", "ES256")


@dataclass
class Settings:
    stores: tuple[str, ...] = STORES
    workers: tuple[int, ...] = (1, 2)
    threads: int = 1
    ops: tuple[str, ...] = UAUTH_OPS
    algs: tuple[str, ...] = ALGS
    seconds: float = 2.0
    warmup: float = 0.3
    #: Untimed seconds before the first measurement of each operation on each server, so every
    #: server is measured in its steady state. CPython settles within a few requests; the
    #: reference runs on V8, whose JIT keeps getting cheaper for ~2,000 flows (measured: 3.6 ms
    #: CPU per flow in the first 2 s, 2.2 ms after 10 s), hence its longer warm-up.
    prewarm: float = 1.0
    reference_prewarm: float = 8.0
    rounds: int = 1
    clients_per_worker: int = 2
    reference: bool = True
    #: Also serve the stack's floor (bench/floor.py: Authlib's Flask provider, nothing else),
    #: its records in memory and, when uauth is measured on SQLite, in SQLite too.
    floor: bool = True
    #: Also serve uauth with its records in memory (bench/memory_app.py): what durable
    #: storage costs, beside the stores.
    in_memory: bool = False
    workdir: Path | None = None
    #: uauth's bench clients get ``jwt`` or ``opaque`` access tokens.
    access_token_format: str = JWT


@dataclass
class Row:
    provider: str  #: "bare", "reference", "floor", "uauth" or "uauth-memory"
    store: str
    workers: int
    op: str
    alg: str = "RS256"
    result: Result | None = None
    note: str = ""
    samples: list[Result] = field(default_factory=list)


class Log:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Run:
    settings: Settings
    rows: list[Row] = field(default_factory=list)
    log: Log = field(default_factory=Log)


def median_result(samples: list[Result]) -> Result:
    """Each figure's median over the rounds; peak memory is the maximum."""
    if len(samples) == 1:
        return samples[0]

    def med(name: str) -> float:
        return float(statistics.median(getattr(s, name) for s in samples))

    return Result(
        ops=sum(s.ops for s in samples), errors=sum(s.errors for s in samples),
        first_error=next((s.first_error for s in samples if s.first_error), ""),
        # so that ops_per_s (ops / seconds) is the median rate
        seconds=sum(s.ops for s in samples) / med("ops_per_s"),
        p50_ms=med("p50_ms"), p99_ms=med("p99_ms"), cpu_ms_per_op=med("cpu_ms_per_op"),
        peak_rss=max(s.peak_rss for s in samples), rss=samples[-1].rss,
        http_requests=sum(s.http_requests for s in samples),
        server_cores=med("server_cores"),
    )


def run_bench(settings: Settings) -> Run:
    run = Run(settings)
    with ExitStack() as stack:
        workdir = settings.workdir or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="uauth-bench-")))
        workdir.mkdir(parents=True, exist_ok=True)
        servers = _start_all(run, workdir, stack)
        rows = {(id(server), op): Row(server.provider, server.store, server.workers, op[0],
                                      op[1] if op[1] != "-" else "RS256")
                for server in servers for op in server.ops}
        for n in range(settings.rounds):
            run.log(f"round {n + 1} of {settings.rounds}")
            for name in ("bare", *settings.ops):
                for server in servers:
                    for op in server.ops:
                        if op[0] == name and not rows[id(server), op].note:
                            _measure(run, server, op, rows[id(server), op],
                                     _warmup(settings, server, n))
        for row in rows.values():
            if row.samples:
                row.result = median_result(row.samples)
        run.rows = list(rows.values())
    return run


def _start_all(run: Run, workdir: Path, stack: ExitStack) -> list[Server]:
    s = run.settings
    servers: list[Server] = []

    def keep(server: Server) -> None:
        stack.callback(server.stop)
        servers.append(server)

    for workers in s.workers:
        keep(serve_bare(workdir, workers, s.threads))
    problem = reference_problem() if s.reference else "not asked for"
    if problem:
        run.log(f"reference provider skipped: {problem}")
    else:
        keep(serve_reference(workdir, tuple(op for op in s.ops if op != "cc")))
        if "cc" in s.ops:  # its client_credentials tokens are RS256 JWTs, like uauth's
            keep(serve_reference(workdir, ("cc",), at_format="jwt"))
        for alg in s.algs:
            if alg != "RS256" and "flow" in s.ops:
                keep(serve_reference(workdir, ("flow",), alg=alg))
    floor_ops = tuple(op for op in s.ops if op in FLOOR_OPS)
    if floor_ops:
        for store in floor_stores(s):
            keep(serve_floor(workdir, floor_ops, store))
    ops = tuple((op, "RS256") for op in s.ops)
    ops += tuple(("flow", alg) for alg in s.algs if alg != "RS256" and "flow" in s.ops)
    if s.in_memory:
        keep(serve_in_memory(workdir, s.threads, ops, s.access_token_format))
    for store in s.stores:
        uauth = stack.enter_context(deployment(run, workdir, store, s.algs,
                                                s.access_token_format))
        if uauth is None:
            continue
        for workers in s.workers:
            keep(uauth.serve(workers, s.threads, ops))
    run.log(f"{len(servers)} servers up")
    return servers


def floor_stores(settings: Settings) -> tuple[str, ...]:
    """Where the served floors keep their records: in memory, as the reference does, and in
    SQLite too when uauth is measured on SQLite (what durability costs the stack itself)."""
    if not settings.floor:
        return ()
    return ("memory", "sqlite") if "sqlite" in settings.stores else ("memory",)


@contextmanager
def deployment(run: Run, workdir: Path, store: str, algs: tuple[str, ...] = ("RS256",),
                access_token_format: str = JWT) -> Iterator[Uauth | None]:
    """A provisioned uauth deployment on ``store``; Redis gets its own redis-server, Redis
    Cluster its own six, PostgreSQL a database of its own on the local server (dropped after)."""
    with ExitStack() as stack:
        try:
            storage, redis = _backend(store, workdir, stack)
        except (FileNotFoundError, RuntimeError, OSError) as exc:
            run.log(f"{store} skipped: {exc}")
            yield None
            return
        uauth = Uauth(workdir, store, redis, algs, storage=storage,
                      access_token_format=access_token_format)
        uauth.provision()
        yield uauth


def _backend(store: str, workdir: Path, stack: ExitStack) -> tuple[str | None, RedisServer | None]:
    """The storage URL (None: SQLite in the instance) and the redis-server for ``store``."""
    if store == "redis":
        redis = RedisServer(workdir / "redis")
        redis.start()
        stack.callback(redis.stop)
        return None, redis
    if store == "redis-cluster":
        cluster = RedisClusterServer(workdir / "cluster")
        stack.callback(cluster.stop)
        cluster.start()
        return cluster.url, None
    if store == "postgres":
        import psycopg

        database = SessionDatabase()
        try:
            database.create()
        except psycopg.Error as exc:
            raise RuntimeError(f"no PostgreSQL at {database.admin_url}: {exc}") from None
        stack.callback(database.drop)
        options = os.environ.get("BENCH_POSTGRES_OPTIONS")  # e.g. -csynchronous_commit=off
        return (with_options(database.url, options) if options else database.url), None
    return None, None


def _warmup(settings: Settings, server: Server, round_index: int) -> float:
    if round_index > 0:
        return settings.warmup
    return settings.reference_prewarm if server.provider == "reference" else settings.prewarm


def _measure(run: Run, server: Server, op: Op, row: Row, warmup: float) -> None:
    s = run.settings
    clients = s.clients_per_worker * server.workers
    try:
        result = run_load(server.targets[op[1]], row.op, server_pid=server.pid, clients=clients,
                          seconds=s.seconds, warmup=warmup)
    except NotMeasured as exc:
        row.note = ("not supported yet: " if exc.unsupported else "failed: ") + str(exc)
        run.log(f"{row.provider:9} {row.store:6} {row.workers}w {row.op:8} {row.alg}: {row.note}")
        return
    row.samples.append(result)
    run.log(f"{row.provider:9} {row.store:6} {row.workers}w {row.op:8} {row.alg}: "
            f"{result.ops_per_s:7.1f} op/s, {result.cpu_ms_per_op:.2f} CPU ms/op")


@dataclass
class MemoryRow:
    store: str
    workers: int
    flows: int  #: flows per step
    #: RSS of each worker after each step (``steps`` lists of per-worker bytes).
    rss: list[list[int]]
    peak: list[int]
    cpu_ms_per_flow: float | None
    note: str = ""


def run_memory(settings: Settings, flows: int, workers: int, steps: int = 2) -> list[MemoryRow]:
    """RSS per worker after every ``flows`` SSO flows, ``steps`` times (a leak shows as growth
    that does not level off)."""
    run = Run(settings)
    rows: list[MemoryRow] = []
    with ExitStack() as stack:
        workdir = settings.workdir or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="uauth-bench-mem-")))
        for store in settings.stores:
            with deployment(run, workdir, store) as uauth:
                if uauth is None:
                    continue
                server = uauth.serve(workers, settings.threads, (("flow", "RS256"),))
                try:
                    rows.append(_soak(server, flows, steps, settings, run.log))
                finally:
                    server.stop()
    return rows


def _soak(server: Server, flows: int, steps: int, settings: Settings,
          log: Callable[[str], None]) -> MemoryRow:
    clients = settings.clients_per_worker * server.workers
    rss: list[list[int]] = []
    cpu: list[float] = []
    for step in range(steps):
        log(f"memory: {server.store} {server.workers}w, flows {flows * step:,} to "
            f"{flows * (step + 1):,}")
        try:
            result = run_load(server.targets["RS256"], "flow", server_pid=server.pid,
                              clients=clients, seconds=3600, warmup=0.0, count=flows)
        except NotMeasured as exc:
            return MemoryRow(server.store, server.workers, flows, rss, [], None, str(exc))
        cpu.append(result.cpu_ms_per_op or 0.0)
        rss.append([m.rss for m in procstat.worker_memory(server.pid)])
    peak = [m.peak for m in procstat.worker_memory(server.pid)]
    return MemoryRow(server.store, server.workers, flows, rss, peak, sum(cpu) / len(cpu))

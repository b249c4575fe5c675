"""Shared fixtures: a fake clock, a real redis-server, Redis Cluster and PostgreSQL, and a store
per backend."""

from __future__ import annotations

import gc
import io
import logging
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import NoReturn
from typing import TypeVar

import pytest

from tests.chromium import BrowserUnavailable
from tests.chromium import browser_required
from tests.chromium import start as start_chromium
from tests.postgres_server import SessionDatabase
from tests.postgres_server import postgres_required
from tests.redis_cluster import RedisClusterServer
from tests.redis_cluster import cluster_required
from tests.redis_server import RedisServer
from tests.redis_server import redis_required
from tests.smtp_server import SmtpServer
from uauth.ops.logs import JsonFormatter
from uauth.storage import Store
from uauth.storage.memory import MemoryStore
from uauth.storage.postgres import PostgresStore
from uauth.storage.redis import RedisStore
from uauth.storage.redis_cluster import RedisClusterStore
from uauth.storage.sqlite import SQLiteStore
from uauth.web.requestlog import RequestIdFilter

BACKENDS = ["memory", "sqlite", "redis", "postgres", "redis-cluster"]
T = TypeVar("T")


class FakeClock:
    """Time that only moves when a test says so; starts at the real time so Redis TTLs agree."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def not_here(what: str, reason: str, *, required: bool, flag: str) -> NoReturn:
    """A real service the tests need is missing: skip loudly, or fail where ``flag`` says it
    must be there (CI)."""
    message = f"{what} TESTS NOT RUN: {reason}"
    if required:
        pytest.fail(f"{message} and {flag}=1", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session; skipped loudly (or failed in CI) without Redis."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
    except (FileNotFoundError, RuntimeError) as exc:
        not_here("REDIS", f"cannot start redis-server ({exc})", required=redis_required(),
                 flag="UAUTH_REQUIRE_REDIS")
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if redis_server.process is None:  # a test stopped it and failed before restarting
        redis_server.start()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[SessionDatabase]:
    """A database of this session's own on the PostgreSQL at 127.0.0.1:5432, dropped at the end;
    skipped loudly (or failed under UAUTH_REQUIRE_POSTGRES=1) without PostgreSQL."""
    import psycopg

    database = SessionDatabase()
    try:
        database.create()
    except psycopg.Error as exc:
        not_here("POSTGRESQL", f"cannot create a database at {database.admin_url} "
                 f"({type(exc).__name__}: {str(exc).strip()[:200]})",
                 required=postgres_required(), flag="UAUTH_REQUIRE_POSTGRES")
    yield database
    database.drop()


@pytest.fixture
def postgres_url(postgres_database: SessionDatabase) -> str:
    """A storage URL on a fresh, empty schema of the session's database."""
    return postgres_database.schema_url()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServer]:
    """Three primaries and three replicas for the session; skipped loudly (or failed under
    UAUTH_REQUIRE_REDIS_CLUSTER=1) where redis-server cannot make a cluster."""
    cluster = RedisClusterServer(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
    except (FileNotFoundError, RuntimeError) as exc:
        cluster.stop()
        not_here("REDIS CLUSTER", f"cannot start a cluster ({exc})",
                 required=cluster_required(), flag="UAUTH_REQUIRE_REDIS_CLUSTER")
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisClusterServer) -> str:
    return redis_cluster.url


def threads_one_after_another(work: Callable[[int], object], n: int) -> None:
    """``work(0)`` to ``work(n - 1)``, each in a thread of its own that ends (and is collected)
    before the next starts, as a threaded server's request threads come; the first failure is
    raised here."""
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 - raised below, in the test's thread
            failures.append(exc)

    for i in range(n):
        thread = threading.Thread(target=run, args=(i,))
        thread.start()
        thread.join()
        gc.collect()
    if failures:
        raise failures[0]


def run_in_processes(target: Callable[..., object], *args: object, n: int = 6) -> None:
    """Start ``n`` forked processes on ``target`` at once (start-up races); all must succeed."""
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=target, args=args) for _ in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0


def run_in_threads(target: Callable[[], T], n: int) -> list[T]:
    """Start ``n`` threads on ``target`` at once (races within one process); what each returned,
    in the order they finished. A thread that raises returns nothing, so the count is short."""
    results: list[T] = []
    lock = threading.Lock()

    def run() -> None:
        result = target()
        with lock:
            results.append(result)

    pool = [threading.Thread(target=run) for _ in range(n)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return results


def ask_forked_child(target: Callable[..., object], *args: object) -> object:
    """Run ``target(*args, results)`` in a forked child, which inherits the parent's connections
    (the tests check it does not use them); what it put on ``results``, once it exited cleanly."""
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=target, args=(*args, results))
    child.start()
    answer = results.get(timeout=30)
    child.join(timeout=30)
    assert child.exitcode == 0
    return answer


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}:"


def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Store:
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "t.sqlite3", clock=clock)
    if kind == "redis":
        return RedisStore(request.getfixturevalue("redis_url"), prefix=unique_prefix(), clock=clock)
    if kind == "postgres":
        return PostgresStore(request.getfixturevalue("postgres_url"), clock=clock)
    if kind == "redis-cluster":
        return RedisClusterStore(request.getfixturevalue("redis_cluster_url"),
                                 prefix=unique_prefix(), clock=clock)
    return MemoryStore(clock=clock)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    backend = make_store(request.param, request, tmp_path, clock)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def shared_instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ``instance/`` (keys, salt, secret key) in-process apps may share when the
    test is not about the instance itself: a new RSA key per app costs ~0.1 s."""
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium under Playwright; skipped loudly (or failed in CI) without it."""
    try:
        playwright, browser = start_chromium()
    except BrowserUnavailable as exc:
        not_here("BROWSER", str(exc), required=browser_required(), flag="UAUTH_REQUIRE_BROWSER")
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """uauth's loggers into a buffer, formatted as ``uauth serve`` formats them."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("uauth")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield buffer
    logger.removeHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    """One real SMTP server (aiosmtpd) for the test session."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    """The session's SMTP server, emptied and accepting mail for this test."""
    smtp_server.clear()
    smtp_server.refuse(None)
    yield smtp_server
    smtp_server.refuse(None)

"""Failing parts and load: storage outages answer 503 and recover with nothing lost, and
gunicorn with 4 workers on SQLite, Redis, PostgreSQL and Redis Cluster loses no code and lets
nothing be redeemed twice (outages of PostgreSQL and Redis Cluster: tests/test_scaleout.py)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
import requests

from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.browser import Browser
from tests.conftest import FakeClock
from tests.conftest import unique_prefix
from tests.live_server import LiveServer
from tests.redis_server import RedisServer
from uauth.core.clients import Registration
from uauth.core.clients import register_client
from uauth.core.users import StoreUsers
from uauth.storage import Store
from uauth.storage import open_store
from uauth.storage.redis import RedisStore
from uauth.storage.sqlite import SQLiteStore

REDIRECT = "http://127.0.0.1:8399/cb"
PASSWORD = "password123"




def code_of(response: requests.Response) -> str:
    assert response.is_redirect, (response.status_code, response.text[:300])
    return parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]


def authorize_url(base: str, client_id: str) -> str:
    return base + "/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
        "scope": "openid", "state": "s"})


def provision(store: Store, users: int = 1) -> tuple[str, str]:
    for i in range(users):
        StoreUsers(store, time.time).create(f"user{i}", PASSWORD, {})
    client, secret = register_client(store, Registration(
        name="Load", redirect_uris=[REDIRECT], first_party=True, always_issue_refresh_token=True))
    assert secret
    return client.client_id, secret


def records_of(store: Store) -> Counter[str]:
    return Counter(entry.kind for entry in store.dump())


def outage_drill(live: LiveServer, store: Store, stop: Callable[[], None],
                 start: Callable[[], None], *, ends_by_itself: bool = False,
                 down_for: float = 0.5) -> None:
    """Traffic throughout; ``stop()`` the backend: after ``down_for`` seconds, 503s with the
    OAuth error (and ``Retry-After``) or the styled page, while /healthz stays up; ``start()``
    it: uauth recovers by itself, with every acknowledged record. A failover
    ``ends_by_itself``: readiness may be back before the drill looks."""
    client_id, secret = provision(store)
    browser = Browser(live.url)
    code = code_of(browser.authorize(authorize_url(live.url, client_id), username="user0"))
    tokens = requests.post(live.url + "/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        headers=basic_auth(client_id, secret), timeout=10).json()
    before = records_of(store)
    statuses: Counter[int] = Counter()
    halt = threading.Event()

    def traffic() -> None:
        while not halt.is_set():
            userinfo = requests.get(live.url + "/userinfo", timeout=10, headers={
                "Authorization": "Bearer " + tokens["access_token"]})
            statuses[userinfo.status_code] += 1
            page = browser.http.get(authorize_url(live.url, client_id), allow_redirects=False,
                                    timeout=10)
            statuses[page.status_code] += 1

    runner = threading.Thread(target=traffic)
    runner.start()
    try:
        time.sleep(0.5)
        stop()
        time.sleep(down_for)
        down = requests.post(live.url + "/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers=basic_auth(client_id, secret), timeout=15)
        assert down.status_code == 503 and down.json()["error"] == "temporarily_unavailable"
        assert down.headers["Retry-After"]
        page = browser.http.get(live.url + "/login", timeout=15)
        # A cluster loses one primary: a page whose records live on the others still works.
        assert page.status_code in ((200, 503) if ends_by_itself else (503,)), page.status_code
        assert page.status_code == 200 or "Temporarily unavailable" in page.text
        assert "Traceback" not in page.text
        assert requests.get(live.url + "/healthz", timeout=15).status_code == 200
        if not ends_by_itself:
            assert requests.get(live.url + "/readyz", timeout=15).status_code == 503
        start()
        deadline = time.monotonic() + 30
        while requests.get(live.url + "/readyz", timeout=15).status_code != 200:
            assert time.monotonic() < deadline, "uauth did not recover"
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        halt.set()
        runner.join(timeout=30)
    assert statuses[503] > 0 and statuses[200] > 0 and statuses[302] > 0, statuses
    assert set(statuses) <= {200, 302, 503}, statuses
    assert live.process is not None and live.process.poll() is None, "still serving"
    after = records_of(store)
    assert after["user"] == before["user"] == 1 and after["client"] == before["client"]
    refreshed = requests.post(live.url + "/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic_auth(client_id, secret), timeout=10)
    assert refreshed.status_code == 200, "the refresh token survived the outage unspent"
    again = requests.post(live.url + "/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic_auth(client_id, secret), timeout=10)
    assert again.json()["error"] == "invalid_grant", "and is spent exactly once"
    fresh = code_of(browser.authorize(authorize_url(live.url, client_id)))
    assert requests.post(live.url + "/token", data={
        "grant_type": "authorization_code", "code": fresh, "redirect_uri": REDIRECT},
        headers=basic_auth(client_id, secret), timeout=10).status_code == 200
    assert "Traceback" not in live.log()


# -- outages --------------------------------------------------------------------------------

@pytest.mark.slow
def test_redis_stopped_mid_traffic_answers_503_and_recovers_with_nothing_lost(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """``redis_server`` makes this test skip loudly, or fail under UAUTH_REQUIRE_REDIS=1, where
    there is no Redis; it stops and starts a server of its own."""
    redis = RedisServer(tmp_path / "redis", persist=True)
    redis.start()
    prefix = unique_prefix()
    store = RedisStore(redis.url, prefix=prefix)
    live = LiveServer(tmp_path / "instance", storage=redis.url,
                      env={"UAUTH_REDIS_PREFIX": prefix})
    try:
        assert live.cli("init").returncode == 0
        live.start()
        # same port and folder: the append-only file brings the data back
        outage_drill(live, store, redis.stop, redis.start, down_for=1.0)
    finally:
        live.stop()
        store.close()
        redis.stop()


def test_a_locked_sqlite_database_answers_503_and_recovers_with_nothing_lost(
        tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "locked.db"
    store = SQLiteStore(path, clock=clock, busy_timeout=0.2)
    d = Driver.of(make_app(tmp_path, store, clock))
    d.user()
    client, secret = d.client()
    assert secret
    d.login()
    code = d.code(client.client_id)
    before = records_of(store)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        down = d.token(client.client_id, secret, code=code)
        assert down.status_code == 503 and json_of(down)["error"] == "temporarily_unavailable"
        authorize = d.http.get("/authorize", query_string={  # WAL: reads go on, writes wait
            "client_id": client.client_id, "redirect_uri": REDIRECT, "response_type": "code",
            "scope": "openid"})
        assert authorize.status_code == 503 and "Temporarily unavailable" in authorize.text
        login = Driver.of(d.app).login()
        assert login.status_code == 503 and login.mimetype == "text/html"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert records_of(store) == before, "nothing half-written"
    exchanged = d.token(client.client_id, secret, code=code)
    assert exchanged.status_code == 200, "the code was not spent by the failed attempt"
    assert json_of(d.token(client.client_id, secret, code=code))["error"] == "invalid_grant"


# -- multi-worker consistency under load -------------------------------------------------------

FLOWS = 1000
BROWSERS = 16
DOUBLE_EVERY = 20  # every 20th flow redeems its code twice at once, and its refresh token


def race(calls: list[Callable[[], requests.Response]]) -> list[int]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], requests.Response]) -> int:
        barrier.wait(timeout=30)
        return call().status_code

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres", "redis-cluster"])
def test_four_workers_lose_no_code_and_allow_no_double_redemption(
        backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    env = {"UAUTH_LOG_LEVEL": "INFO"}
    if backend in ("postgres", "redis-cluster"):
        url = (request.getfixturevalue("postgres_url") if backend == "postgres"
               else request.getfixturevalue("redis_cluster_url"))
        prefix = unique_prefix()
        env["UAUTH_REDIS_PREFIX"] = prefix
        live = LiveServer(instance, storage=url, workers=4, env=env)
        store: Store = open_store(url, redis_prefix=prefix)
    elif backend == "redis":
        redis_url = request.getfixturevalue("redis_url")
        prefix = unique_prefix()
        env["UAUTH_REDIS_PREFIX"] = prefix
        live = LiveServer(instance, storage=redis_url, workers=4, env=env)
        store = RedisStore(redis_url, prefix=prefix)
    else:
        live = LiveServer(instance, storage=f"sqlite:///{instance}/uauth.db", workers=4, env=env)
        store = SQLiteStore(instance / "uauth.db")
    assert live.cli("init").returncode == 0
    live.start()
    try:
        client_id, secret = provision(store, users=BROWSERS)
        browsers = [Browser(live.url) for _ in range(BROWSERS)]
        for i, browser in enumerate(browsers):  # each person signs in once
            code_of(browser.authorize(authorize_url(live.url, client_id), username=f"user{i}"))
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()

        def token(data: dict[str, str]) -> Callable[[], requests.Response]:
            return lambda: requests.post(live.url + "/token", data=data,
                                         headers=basic_auth(client_id, secret), timeout=30)

        def flow(n: int) -> None:
            browser = browsers[n % BROWSERS]
            code = code_of(browser.http.get(authorize_url(live.url, client_id),
                                            allow_redirects=False, timeout=30))
            exchange = {"grant_type": "authorization_code", "code": code,
                        "redirect_uri": REDIRECT}
            if n % DOUBLE_EVERY:
                response = token(exchange)()
                assert response.status_code == 200, response.text
                result = ["code ok"]
                if n % DOUBLE_EVERY == DOUBLE_EVERY // 2:
                    refresh = {"grant_type": "refresh_token",
                               "refresh_token": response.json()["refresh_token"]}
                    codes = sorted(race([token(refresh), token(refresh)]))
                    result.append(f"refresh race {codes}")
            else:
                codes = sorted(race([token(exchange), token(exchange)]))
                result = [f"code race {codes}"]
            with lock:
                outcomes.update(result)

        started = time.monotonic()
        with ThreadPoolExecutor(BROWSERS) as pool:
            list(pool.map(flow, range(FLOWS)))
        elapsed = time.monotonic() - started
        doubles = FLOWS // DOUBLE_EVERY
        assert outcomes["code ok"] == FLOWS - doubles, outcomes
        assert outcomes["code race [200, 400]"] == doubles, f"exactly one winner: {outcomes}"
        assert outcomes["refresh race [200, 400]"] == doubles, f"exactly one winner: {outcomes}"
        log = live.log()
        assert "database is locked" not in log and "Traceback" not in log
        assert '"status": 500' not in log and '"status": 503' not in log
        print(f"{backend}: {FLOWS} flows in {elapsed:.1f} s ({FLOWS / elapsed:.0f} flows/s)")
    finally:
        live.stop()
        store.close()



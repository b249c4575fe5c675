"""/healthz and /readyz with storage up, down and back, against a real redis-server of the test's
own (stopping the session's server would pull storage from under other tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from tests.conftest import unique_prefix
from tests.redis_server import RedisServer
from uauth.storage.redis import RedisStore


@pytest.fixture
def own_redis(redis_server: RedisServer, tmp_path: Path) -> Iterator[RedisServer]:
    """A second redis-server, only once the session's started (so it is skipped without one)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def store(own_redis: RedisServer, clock: FakeClock) -> Iterator[RedisStore]:
    backend = RedisStore(own_redis.url, prefix=unique_prefix(), clock=clock, timeout=0.5)
    yield backend
    backend.close()


def test_readiness_follows_storage_down_and_up(own_redis: RedisServer, store: RedisStore,
                                               tmp_path: Path, clock: FakeClock) -> None:
    driver = Driver.of(make_app(tmp_path, store, clock))
    ready = driver.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ok", "checks": {"keys": "ok", "storage": "ok"}}
    assert ready.headers["Cache-Control"] == "no-store"

    own_redis.stop()
    down = driver.http.get("/readyz")
    assert down.status_code == 503
    assert down.json == {"status": "unavailable",
                         "checks": {"keys": "ok", "storage": "unavailable"}}
    assert driver.http.get("/healthz").json == {"status": "ok"}, "the process itself is fine"
    assert driver.http.get("/jwks.json").status_code == 200, "loaded keys keep being served"

    own_redis.start()
    assert driver.http.get("/readyz").status_code == 200, "recovers by itself"


def test_a_worker_starts_while_storage_is_down_and_loads_keys_later(
        own_redis: RedisServer, store: RedisStore, tmp_path: Path, clock: FakeClock) -> None:
    own_redis.stop()
    driver = Driver.of(make_app(tmp_path, store, clock, UAUTH_KEY_CHECK_INTERVAL=5))
    down = driver.http.get("/readyz")
    assert down.status_code == 503
    assert json_of(down)["checks"] == {"keys": "missing", "storage": "unavailable"}
    token = driver.http.post("/token", data={"grant_type": "authorization_code", "code": "x",
                                             "client_id": "nobody"})
    assert token.status_code == 503 and json_of(token)["error"] == "temporarily_unavailable"

    own_redis.start()
    clock.advance(5)
    up = driver.http.get("/readyz")
    assert up.status_code == 200 and json_of(up)["checks"] == {"keys": "ok", "storage": "ok"}
    assert len(json_of(driver.http.get("/jwks.json"))["keys"]) == 1

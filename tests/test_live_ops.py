"""Operations against real gunicorn (``uauth serve``, two workers): a rotation reaches every
worker, metrics add up across workers, and ``uauth check`` passes against the running server."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from tests.browser import Browser
from tests.browser import location
from tests.conftest import unique_prefix
from tests.live_server import LiveServer
from uauth.core.clients import Registration
from uauth.core.clients import register_client
from uauth.core.users import StoreUsers
from uauth.storage import Store
from uauth.storage.redis import RedisStore
from uauth.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.slow
REDIRECT = "http://127.0.0.1:8399/cb"


def serve(tmp_path: Path, backend: str, redis_url: str | None, **env: str
          ) -> tuple[LiveServer, Store]:
    instance = tmp_path / "instance"
    if backend == "redis":
        assert redis_url is not None
        prefix = unique_prefix()
        env["UAUTH_REDIS_PREFIX"] = prefix
        live = LiveServer(instance, storage=redis_url, env=env)
        store: Store = RedisStore(redis_url, prefix=prefix)
    else:
        live = LiveServer(instance, storage=f"sqlite:///{instance}/uauth.db", env=env)
        store = SQLiteStore(instance / "uauth.db")
    assert live.cli("init").returncode == 0
    live.start()
    deadline = time.monotonic() + 30
    while len(pids_answering(live, "/healthz")) < live.workers:  # every worker has booted
        assert time.monotonic() < deadline, "a worker did not boot"
        fetch_all(live.url + "/healthz", 8)
    return live, store


@pytest.fixture(params=["sqlite", "redis"])
def rotating(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LiveServer,
                                                                               Store]]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    live, store = serve(tmp_path, request.param, redis_url, UAUTH_KEY_CHECK_INTERVAL="1")
    yield live, store
    live.stop()
    store.close()


def fetch_all(url: str, n: int = 24) -> list[requests.Response]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: requests.get(url, timeout=10), range(n)))


def pids_answering(live: LiveServer, path: str) -> set[int]:
    lines = [json.loads(line) for line in live.log().splitlines() if line.startswith("{")]
    return {int(r["pid"]) for r in lines if r.get("path") == path}


def sign_in(live: LiveServer, client_id: str, secret: str, username: str) -> dict[str, Any]:
    browser = Browser(live.url)
    url = (f"{live.url}/authorize?response_type=code&client_id={client_id}&scope=openid"
           f"&redirect_uri={REDIRECT}")
    code = re.search(r"code=([^&]+)", location(browser.authorize(url, username=username)))
    assert code
    response = requests.post(f"{live.url}/token", auth=(client_id, secret), timeout=10, data={
        "grant_type": "authorization_code", "code": code.group(1), "redirect_uri": REDIRECT})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_every_worker_signs_with_and_publishes_the_same_keys(
        rotating: tuple[LiveServer, Store]) -> None:
    live, store = rotating
    before = {r.text for r in fetch_all(live.url + "/jwks.json")}
    assert len(before) == 1
    rotated = live.cli("keys", "rotate", "--now")
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.split(" key ")[1].split(";")[0]

    deadline = time.monotonic() + 15
    while True:
        documents = {r.text for r in fetch_all(live.url + "/jwks.json")}
        if len(documents) == 1 and new_kid in documents.pop():
            break
        assert time.monotonic() < deadline, "workers did not all pick up the rotation"
        time.sleep(0.2)
    assert len(pids_answering(live, "/jwks.json")) == 2, "both workers answered"

    users = StoreUsers(store, time.time)
    users.create("erin", "password123", {})
    client, secret = register_client(store, Registration(name="App", redirect_uris=[REDIRECT]))
    assert secret is not None
    with ThreadPoolExecutor(3) as pool:
        tokens = list(pool.map(lambda _: sign_in(live, client.client_id, secret, "erin"),
                               range(6)))
    kids = {jwt.get_unverified_header(t[name])["kid"] for t in tokens
            for name in ("id_token", "access_token")}
    assert kids == {new_kid}


def test_metrics_add_up_across_workers(tmp_path: Path) -> None:
    live, store = serve(tmp_path, "sqlite", None, UAUTH_METRICS="true")
    try:
        assert all(r.status_code == 200 for r in fetch_all(live.url + "/jwks.json", 30))
        text = requests.get(live.url + "/metrics", timeout=10).text
        assert len(pids_answering(live, "/jwks.json")) == 2, "both workers counted"
    finally:
        live.stop()
        store.close()
    wanted = 'uauth_http_requests_total{endpoint="uauth.discovery.jwks",method="GET",status="200"}'
    line = next(line for line in text.splitlines() if line.startswith(wanted))
    assert float(line.split()[-1]) == 30


def test_check_passes_against_the_running_server_and_leaves_nothing(tmp_path: Path) -> None:
    live, store = serve(tmp_path, "sqlite", None, UAUTH_SIGNING_ALG="ES256")
    try:
        result = live.cli("check", "--url", live.url)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ID token (ES256) and access token verified" in result.stdout
        assert result.stdout.rstrip().endswith("deployment works")
        # What may stay: the provider's own (keys, the pairwise salt) and short-lived markers
        # that expire by themselves (the deny list of the revoked grant, the ended session).
        left = {entry.kind for entry in store.dump()}
        assert left <= {"keyset", "setting", "revoked", "session_ended"}, left
    finally:
        live.stop()
        store.close()
    down = live.cli("check", "--url", live.url)
    assert down.returncode == 1 and "cannot reach the server" in down.stdout

"""Past one machine, under gunicorn: a PostgreSQL restart and a Redis Cluster primary failover
mid-traffic answer 503 ``temporarily_unavailable`` and recover without a restart, with nothing
lost; two hosts on one PostgreSQL database share sessions, keys and consumption."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests
from redis.cluster import RedisCluster

from tests.app_driver import basic_auth
from tests.browser import Browser
from tests.browser import location
from tests.conftest import unique_prefix
from tests.live_server import LiveServer
from tests.postgres_server import PostgresServer
from tests.postgres_server import SessionDatabase
from tests.redis_cluster import RedisClusterServer
from tests.redis_server import free_port
from tests.test_resilience import REDIRECT
from tests.test_resilience import authorize_url
from tests.test_resilience import code_of
from tests.test_resilience import provision
from tests.test_resilience import records_of
from tests.test_two_hosts import LoadBalancer
from tests.test_two_hosts import test_a_flow_hops_between_two_hosts as flow_hops_between_hosts
from uauth.storage import Store
from uauth.storage.postgres import PostgresStore
from uauth.storage.redis_cluster import RedisClusterStore

pytestmark = pytest.mark.slow


def outage_drill(live: LiveServer, store: Store, stop: Callable[[], None],
                 start: Callable[[], None], *, ends_by_itself: bool = False) -> None:
    """Traffic throughout; ``stop()`` the backend: 503s with the OAuth error or the styled page;
    ``start()`` it: uauth recovers by itself, with every acknowledged record. A failover
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
        time.sleep(0.5)
        down = requests.post(live.url + "/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers=basic_auth(client_id, secret), timeout=15)
        assert down.status_code == 503 and down.json()["error"] == "temporarily_unavailable"
        page = browser.http.get(live.url + "/login", timeout=15)
        # A cluster loses one primary: a page whose records live on the others still works.
        assert page.status_code in ((200, 503) if ends_by_itself else (503,)), page.status_code
        assert page.status_code == 200 or "Temporarily unavailable" in page.text
        assert "Traceback" not in page.text
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


def test_a_postgresql_restart_mid_traffic_answers_503_and_recovers(
        tmp_path: Path, postgres_database: SessionDatabase) -> None:
    """A server of its own on a free port (``postgres_database`` only makes the test skip, or
    fail under UAUTH_REQUIRE_POSTGRES=1, where there is no PostgreSQL)."""
    server = PostgresServer()
    try:
        server.start()
        live = LiveServer(tmp_path / "instance", storage=server.url)
        store = PostgresStore(server.url)
        assert live.cli("init").returncode == 0
        live.start()
        try:
            outage_drill(live, store, server.stop, server.start)
        finally:
            live.stop()
            store.close()
    finally:
        server.remove()


def test_a_cluster_primary_failover_mid_traffic_answers_503_and_recovers(
        tmp_path: Path, redis_cluster: RedisClusterServer) -> None:
    """A cluster of its own; the primary holding the client's refresh token is killed and its
    replica takes over."""
    cluster = RedisClusterServer(tmp_path / "cluster")
    cluster.start()
    prefix = unique_prefix()
    live = LiveServer(tmp_path / "instance", storage=cluster.url,
                      env={"UAUTH_REDIS_PREFIX": prefix})
    store = RedisClusterStore(cluster.url, prefix=prefix)
    try:
        assert live.cli("init").returncode == 0
        live.start()
        victim: list[int] = []

        def fail_over() -> None:
            raw = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
            # The primary holding the refresh token: the refresh during the outage then fails
            # before spending it. (Were only its successor's slot down, the token would be
            # spent by a refresh answered 503: rotation is two writes in two slots.)
            name = next(n for n in raw.scan_iter(match=prefix + "r:{refresh_token:*"))
            victim.append(raw.get_node_from_key(name).port)  # type: ignore[no-untyped-call]
            raw.close()
            cluster.kill(victim[0])

        def promoted() -> None:
            cluster.wait_failover(victim[0])
            # the old primary comes back, learns it was replaced, and becomes a replica
            cluster.start_node(victim[0])
            cluster.wait_ok()
            cluster.wait_replicas_in_sync()

        outage_drill(live, store, fail_over, promoted, ends_by_itself=True)
        assert victim[0] not in cluster.primary_ports()
    finally:
        live.stop()
        store.close()
        cluster.stop()


@pytest.fixture
def two_hosts_on_postgres(tmp_path: Path, postgres_database: SessionDatabase
                          ) -> Iterator[tuple[str, list[LiveServer], PostgresStore]]:
    """tests/test_two_hosts.py's recipe with one PostgreSQL database instead of one Redis."""
    url = postgres_database.schema_url()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {"UAUTH_ISSUER": issuer, "UAUTH_TRUSTED_PROXIES": "1"}
    hosts = [LiveServer(tmp_path / f"host-{name}" / "instance", storage=url, env=env)
             for name in ("a", "b")]
    assert hosts[0].cli("init").returncode == 0
    hosts[1].instance.mkdir(parents=True, mode=0o700)
    shutil.copy2(hosts[0].instance / "secret_key", hosts[1].instance / "secret_key")
    assert hosts[1].cli("init").returncode == 0
    for host in hosts:
        host.start()
    balancer = LoadBalancer(port, [host.url for host in hosts])
    thread = threading.Thread(target=balancer.serve_forever, daemon=True)
    thread.start()
    store = PostgresStore(url)
    yield issuer, hosts, store
    balancer.shutdown()
    balancer.server_close()
    thread.join()
    for host in hosts:
        host.stop()
    store.close()


def test_two_hosts_on_one_postgresql_share_sessions_keys_and_consumption(
        two_hosts_on_postgres: tuple[str, list[LiveServer], PostgresStore]) -> None:
    issuer, hosts, store = two_hosts_on_postgres
    flow_hops_between_hosts(two_hosts_on_postgres)  # type: ignore[arg-type]
    jwks = [requests.get(host.url + "/jwks.json", timeout=10).json() for host in hosts]
    assert jwks[0] == jwks[1] and jwks[0]["keys"], "one key set, shared through the database"
    client_id, secret = provision(store, users=0)
    browser = Browser(issuer)
    callback = location(browser.authorize(authorize_url(issuer, client_id), username="fay"))
    code = parse_qs(urlsplit(callback).query)["code"][0]
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    first = requests.post(hosts[0].url + "/token", data=exchange,
                          headers=basic_auth(client_id, secret), timeout=10)
    assert first.status_code == 200, first.text
    replay = requests.post(hosts[1].url + "/token", data=exchange,
                           headers=basic_auth(client_id, secret), timeout=10)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant", (
        "a code redeemed at one host is spent at the other")

"""Past one machine, under gunicorn: a PostgreSQL restart and a Redis Cluster primary failover
mid-traffic answer 503 ``temporarily_unavailable`` and recover without a restart, with nothing
lost; two hosts on one PostgreSQL database share sessions, keys and consumption."""

from __future__ import annotations

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
from tests.redis_server import replicas_caught_up
from tests.test_resilience import REDIRECT
from tests.test_resilience import authorize_url
from tests.test_resilience import outage_drill
from tests.test_resilience import provision
from tests.test_two_hosts import hosts_behind_a_balancer
from tests.test_two_hosts import test_a_flow_hops_between_two_hosts as flow_hops_between_hosts
from uauth.storage.postgres import PostgresStore
from uauth.storage.redis_cluster import RedisClusterStore

pytestmark = pytest.mark.slow


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
            # Replication is asynchronous: what the drill checks afterwards must be there first.
            assert replicas_caught_up(victim[0]) == 1, "the replica has the records"
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
    with hosts_behind_a_balancer(tmp_path, url) as (issuer, hosts):
        store = PostgresStore(url)
        yield issuer, hosts, store
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

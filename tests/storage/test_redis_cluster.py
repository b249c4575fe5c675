"""What the contract cannot say about Redis Cluster: every key carries a hash tag, so each
script runs in one slot, records spread over the primaries, the single-Redis key format is
unchanged, and a primary's failover is survived with what was written before it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from typing import cast

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from tests.conftest import threads_one_after_another
from tests.conftest import unique_prefix
from tests.cutting_proxy import CuttingProxy
from tests.redis_cluster import RedisClusterServer
from tests.redis_cluster import cluster_ports
from tests.redis_cluster import ephemeral_floor
from tests.redis_server import replicas_caught_up
from uauth.core.settings import ConfigError
from uauth.core.settings import validate_storage_url
from uauth.storage import StorageUnavailable
from uauth.storage import open_store
from uauth.storage.redis import RedisStore
from uauth.storage.redis_cluster import SETTLED
from uauth.storage.redis_cluster import RedisClusterStore
from uauth.storage.redis_urls import parse_cluster_url


def test_every_key_is_hash_tagged_and_records_spread_over_the_primaries(
        redis_cluster: RedisClusterServer) -> None:
    prefix = unique_prefix()
    store = RedisClusterStore(redis_cluster.url, prefix=prefix)
    for i in range(40):
        store.save("refresh_token", f"t{i}", {"i": i}, ttl=600, grant_id=f"g{i % 4}")
    store.incr("throttle", "ip", ttl=60)
    raw = RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    names = [n.decode() for n in raw.scan_iter(match=prefix + "*")]
    assert len(names) == 40 + 4 + 1
    for name in names:
        tag = name[name.index("{") + 1:name.index("}")]
        assert name.endswith("}") and tag, name
        assert key_slot(name.encode()) == key_slot(tag.encode())
    owners = {raw.get_node_from_key(n).port for n in names}  # type: ignore[no-untyped-call]
    assert len(owners) == 3, "records spread over every primary"
    assert raw.type(f"{prefix}g:{{g1}}") == b"zset"
    assert raw.zcard(f"{prefix}g:{{g1}}") == 10
    raw.close()
    assert store.revoke_grant("g1") == 10
    assert store.find("refresh_token", "t1") is None and store.find("refresh_token", "t2")
    store.close()


def test_a_test_clusters_ports_and_bus_ports_lie_below_the_ephemeral_range() -> None:
    """Outgoing connections take ephemeral ports at any moment, so a node's port or bus port
    there could be taken between the check and the node's start."""
    ports = cluster_ports(6)
    assert len(set(ports)) == 6
    assert all(port >= 20000 and port + 10000 < ephemeral_floor() for port in ports)


def test_the_single_redis_key_format_is_unchanged(redis_url: str) -> None:
    prefix = unique_prefix()
    store = RedisStore(redis_url, prefix=prefix)
    store.save("refresh_token", "t", {"n": 1}, ttl=60, grant_id="g")
    raw = redis.Redis.from_url(redis_url)
    assert sorted(raw.scan_iter(match=prefix + "*")) == [
        f"{prefix}g:g".encode(), f"{prefix}r:refresh_token:t".encode()]
    raw.close()
    store.close()


def test_urls(tmp_path: Path) -> None:
    nodes, options = parse_cluster_url("rediss+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2:7001")
    assert nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert options == {"username": "u", "password": "p@ss", "ssl": True}
    url = "redis+cluster://10.0.0.1:7000"
    assert validate_storage_url(url, str(tmp_path)) == url
    store = open_store(url, redis_prefix="p:")
    assert isinstance(store, RedisClusterStore) and store.prefix == "p:"
    for bad in ("redis+cluster://10.0.0.1", "redis+cluster://10.0.0.1:7000/3"):
        with pytest.raises(ConfigError):
            validate_storage_url(bad, str(tmp_path))


def test_no_cluster_raises_the_typed_error_without_secrets() -> None:
    store = RedisClusterStore("redis+cluster://:s3cret-pw@127.0.0.1:1", timeout=0.5)
    for call in (lambda: store.find("client", "c"), store.ping,
                 lambda: store.save("client", "c", {}, ttl=None, grant_id="g"),
                 lambda: store.consume("code", "k"), lambda: store.revoke_grant("g")):
        with pytest.raises(StorageUnavailable) as caught:
            call()
        assert "s3cret-pw" not in str(caught.value)


@pytest.mark.slow
def test_a_primary_failover_is_survived_with_what_was_written(tmp_path: Path,
                                                              redis_cluster: RedisClusterServer
                                                              ) -> None:
    """A cluster of its own (``redis_cluster`` only makes it skip or fail where there is none):
    the primary holding a record is killed; calls fail with the typed error until its replica
    is promoted, then the same store object reads and writes again."""
    cluster = RedisClusterServer(tmp_path / "failover")
    cluster.start()
    try:
        store = RedisClusterStore(cluster.url, prefix=unique_prefix(), timeout=0.5)
        store.save("client", "c", {"n": 1}, ttl=None)
        store.save("authorization_code", "k", {"n": 2}, ttl=600)
        assert store.consume("authorization_code", "k").first  # type: ignore[union-attr]
        raw = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
        victim = raw.get_node_from_key(store._key("client", "c")).port  # type: ignore[no-untyped-call]
        raw.close()
        replica = cluster.replica_of(victim)
        assert replicas_caught_up(victim) == 1, "the writes reached the replica before it dies"
        cluster.kill(victim)
        failures = misses = 0
        deadline = time.monotonic() + 30
        while True:
            try:
                found = store.find("client", "c")
            except StorageUnavailable:
                failures += 1
                found = {}
            if found == {"n": 1}:
                break
            # Until the promotion every read fails (the slot's primary is gone, other nodes
            # redirect to it); a read answered None would be the record lost, as it was when
            # the primary died before its replica had the writes.
            misses += found is None
            assert time.monotonic() < deadline, (
                f"no promotion within 30 s ({misses} misses, {failures} failures); the nodes:\n"
                + cluster.describe(store._key("client", "c")))
            time.sleep(0.1)
        assert misses == 0, f"{misses} reads answered None during the failover"
        assert failures > 0, "the outage was seen as StorageUnavailable"
        assert replica in cluster.primary_ports(replica), "the replica was promoted"
        # The record's slot answers as soon as its replica is promoted; a node may still call
        # the cluster down for a moment after (CLUSTERDOWN, StorageUnavailable) until every
        # node agrees, which the same store object must then get past without a restart.
        while True:
            try:
                again = store.consume("authorization_code", "k")
                store.save("client", "d", {"n": 3}, ttl=None)
                break
            except StorageUnavailable:
                assert time.monotonic() < deadline, "writes did not come back within 30 s"
                time.sleep(0.1)
        assert again is not None and not again.first, "consumption survived the failover"
        assert store.find("client", "d") == {"n": 3}
        store.close()
    finally:
        cluster.stop()


def test_a_group_index_forgets_the_records_deleted_from_it(redis_url: str) -> None:
    """Records deleted one by one (evicted families' notes) or expired leave the grant's index
    when it is next read, so a long-lived group does not grow with every record ever saved."""
    prefix = unique_prefix()
    store = RedisStore(redis_url, prefix=prefix)
    for n in range(5):
        store.save("app_grant", f"n{n}", {"n": n}, ttl=3600, grant_id="apps-of:u")
    store.save("app_grant", "short", {"n": 9}, ttl=1, grant_id="apps-of:u")
    for n in range(3):
        store.delete("app_grant", f"n{n}")
    store.save("app_grant", "n4", {"n": 4}, ttl=3600, grant_id="apps-of:other")
    raw = redis.Redis.from_url(redis_url)
    assert raw.scard(f"{prefix}g:apps-of:u") == 6
    time.sleep(1.1)
    assert [key for _, key, _ in store.grant_records("apps-of:u")] == ["n3"]
    assert raw.scard(f"{prefix}g:apps-of:u") == 1, "gone, expired and moved members dropped"
    store.save("app_grant", "n0", {"n": 0}, ttl=3600, grant_id="apps-of:u")
    assert sorted(key for _, key, _ in store.grant_records("apps-of:u")) == ["n0", "n3"]
    assert store.revoke_grant("apps-of:u") == 2
    raw.close()
    store.close()


def test_a_cluster_group_index_forgets_deleted_and_moved_records(
        redis_cluster: RedisClusterServer) -> None:
    """On a cluster a delete is one script that leaves a tombstone; a read of the index drops
    members saved again elsewhere and members of deleted records, but keeps a member whose record
    is missing while it may be a save in flight (younger than SETTLED), and one saved again."""
    prefix = unique_prefix()
    now = [1_000_000.0]
    store = RedisClusterStore(redis_cluster.url, prefix=prefix, clock=lambda: now[0])
    for n in range(5):
        store.save("app_grant", f"n{n}", {"n": n}, ttl=3600, grant_id="apps-of:u")
    store.save("throttle", "plain", {"n": 1}, ttl=60)
    store.delete("throttle", "plain")
    assert store.find("throttle", "plain") is None, "a record under no grant is deleted too"
    now[0] += 1
    for n in range(3):
        store.delete("app_grant", f"n{n}")
        assert store.find("app_grant", f"n{n}") is None
        assert store.add("app_grant", f"n{n}", {"n": n}, ttl=1, grant_id="elsewhere"), \
            "a tombstone does not hold the key against add"
        store.delete("app_grant", f"n{n}")
    assert store.consume("app_grant", "n0") is None
    assert sorted(key for key, _ in store.scan("app_grant")) == ["n3", "n4"], "no tombstones"
    store.save("app_grant", "n4", {"n": 4}, ttl=3600, grant_id="apps-of:other")
    raw = RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    index = f"{prefix}g:{{apps-of:u}}"

    def members() -> list[str]:
        names: list[bytes] = raw.zrange(index, 0, -1)  # type: ignore[assignment]
        return sorted(m.decode()[len(prefix) + 13:-1] for m in names)

    assert [key for _, key, _ in store.grant_records("apps-of:u")] == ["n3"]
    assert members() == ["n3"], "deleted and moved members left"
    assert store.revoke_grant("elsewhere") == 0, "tombstones are not counted as revoked"

    store.save("app_grant", "gone", {"n": 9}, ttl=3600, grant_id="apps-of:u")
    raw.delete(f"{prefix}r:{{app_grant:gone}}")  # as if expired, or a save not written yet
    assert [key for _, key, _ in store.grant_records("apps-of:u")] == ["n3"]
    assert members() == ["gone", "n3"], "a young member of a missing record may be in flight"
    store.delete("app_grant", "n3")
    now[0] += 1
    store.save("app_grant", "n3", {"n": 3}, ttl=3600, grant_id="apps-of:u")  # saved again
    now[0] += SETTLED + 1
    assert [key for _, key, _ in store.grant_records("apps-of:u")] == ["n3"]
    assert members() == ["n3"], "the settled missing member left; n3, saved again, stays"
    assert store.revoke_grant("apps-of:u") == 1 and store.find("app_grant", "n4") is not None
    assert raw.zcard(index) == 0
    raw.close()
    store.close()


def test_a_cluster_index_read_prunes_only_once_a_quarter_is_stale(
        redis_cluster: RedisClusterServer) -> None:
    """Pruning costs a round trip, so a read spends it only when stale members are a quarter of
    the index: a person's apps index at the grant cap loses one family per new one, and pays
    for its pruning once in a while, not on every read."""
    prefix = unique_prefix()
    now = [1_000_000.0]
    store = RedisClusterStore(redis_cluster.url, prefix=prefix, clock=lambda: now[0])
    for n in range(20):
        store.save("app_grant", f"n{n:02}", {"n": n}, ttl=3600, grant_id="apps-of:u")
    now[0] += 1
    raw = RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    index = f"{prefix}g:{{apps-of:u}}"
    for n in range(4):
        store.delete("app_grant", f"n{n:02}")
    assert len(store.grant_records("apps-of:u")) == 16
    assert raw.zcard(index) == 20, "4 of 20 stale: kept for now"
    store.delete("app_grant", "n04")
    assert len(store.grant_records("apps-of:u")) == 15
    assert raw.zcard(index) == 15, "5 of 20 stale: pruned"
    raw.close()
    store.close()


def test_a_cluster_index_written_as_a_set_is_read_and_extended(
        redis_cluster: RedisClusterServer) -> None:
    """A grant index written before the scores (a plain set) keeps working: its records are
    listed and revoked, and a new save converts it in place, its expiry kept."""
    prefix = unique_prefix()
    store = RedisClusterStore(redis_cluster.url, prefix=prefix)
    raw = RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    store.save("refresh_token", "old", {"n": 1}, ttl=600, grant_id="g")
    index = f"{prefix}g:{{g}}"
    raw.delete(index)
    raw.sadd(index, f"{prefix}r:{{refresh_token:old}}")
    raw.pexpire(index, 500_000)
    assert [key for _, key, _ in store.grant_records("g")] == ["old"]
    store.save("refresh_token", "new", {"n": 2}, ttl=60, grant_id="g")
    left: int = raw.pttl(index)  # type: ignore[assignment]
    assert raw.type(index) == b"zset" and 0 < left <= 500_000
    assert sorted(key for _, key, _ in store.grant_records("g")) == ["new", "old"]
    assert store.revoke_grant("g") == 2
    raw.close()
    store.close()


def _handed_out(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the connections any pool hands out from now on (each primary has its own pool)."""
    handed = [0]
    original = redis.connection.ConnectionPool.get_connection

    def get_connection(self: Any, *args: Any, **kwargs: Any) -> Any:
        handed[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.ConnectionPool, "get_connection", get_connection)
    return handed


def _pools(store: RedisClusterStore) -> list[Any]:
    return [node.redis_connection.connection_pool
            for node in store._client().nodes_manager.nodes_cache.values()
            if node.redis_connection is not None]


def test_a_thread_keeps_one_connection_per_primary(redis_cluster: RedisClusterServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool checks a connection for unread data each time it hands it out (three system calls);
    a thread keeps one per primary instead, for every command, pipeline and script."""
    store = RedisClusterStore(redis_cluster.url, prefix=unique_prefix())
    store.ping()  # the slot map, read by the cluster client through its own pools
    handed = _handed_out(monkeypatch)
    for n in range(20):
        store.save("refresh_token", f"t{n}", {"n": n}, ttl=600, grant_id=f"g{n % 3}")
        assert store.find("refresh_token", f"t{n}") == {"n": n}
    assert len(store.grant_records("g1")) == 7
    assert store.revoke_grant("g2") == 6
    assert handed[0] <= 3, f"the pools handed out {handed[0]} connections for 80 commands"
    store.close()


def test_a_cluster_thread_that_ends_gives_its_connections_back(
        redis_cluster: RedisClusterServer) -> None:
    store = RedisClusterStore(redis_cluster.url, prefix=unique_prefix())
    for n in range(12):
        store.save("refresh_token", f"m{n}", {"n": n}, ttl=600)  # this thread's, on every primary

    def work(n: int) -> None:
        for i in range(12):
            store.save("refresh_token", f"t{n}-{i}", {"i": i}, ttl=600)

    threads_one_after_another(work, 8)
    assert store.find("refresh_token", "t7-11") == {"i": 11}
    pools = _pools(store)
    assert len(pools) >= 3
    created = [pool._created_connections for pool in pools]
    assert all(n <= 3 for n in created), f"{created} connections per primary for two threads"
    assert sum(len(pool._in_use_connections) for pool in pools) <= 3, "only this thread's kept"
    store.close()


def test_a_kept_connection_the_server_closed_is_replaced(redis_cluster: RedisClusterServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A primary that dropped a kept connection (a restart, its idle timeout): the call is
    answered anyway, through the cluster client, and the next one keeps a new connection."""
    store = RedisClusterStore(redis_cluster.url, prefix=unique_prefix())
    for n in range(12):
        store.save("client", f"c{n}", {"n": n}, ttl=None)
    for port in redis_cluster.ports:
        admin = redis.Redis(port=port)
        admin.client_kill_filter(_type="normal", skipme=True)
        admin.close()
    assert store.find_many("client", [f"c{n}" for n in range(12)]) == [
        {"n": n} for n in range(12)]
    assert store.find("client", "c3") == {"n": 3}
    handed = _handed_out(monkeypatch)
    for _ in range(2):
        assert all(store.find("client", f"c{n}") == {"n": n} for n in range(12))
    assert handed[0] <= 2, "a new connection to each primary, kept"
    store.close()


def _commands(store: RedisClusterStore, monkeypatch: pytest.MonkeyPatch
              ) -> list[list[tuple[Any, ...]]]:
    """The commands of each of the store's waits for the cluster, from now on."""
    waits: list[list[tuple[Any, ...]]] = []
    original = RedisClusterStore._send

    def send(self: RedisClusterStore, commands: list[tuple[Any, ...]]) -> list[Any]:
        if self is store:
            waits.append(list(commands))
        return original(self, commands)

    monkeypatch.setattr(RedisClusterStore, "_send", send)
    return waits


def _sizes(waits: list[list[tuple[Any, ...]]]) -> list[int]:
    """How many commands each wait sent."""
    return [len(commands) for commands in waits]


def test_cluster_held_writes_travel_with_the_next_command_that_answers(
        redis_cluster: RedisClusterServer, monkeypatch: pytest.MonkeyPatch) -> None:
    store = RedisClusterStore(redis_cluster.url, prefix=unique_prefix())
    store.save("authorization_code", "gone", {"n": 0}, ttl=60)
    raw = RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    seen = _commands(store, monkeypatch)
    with store.batch():
        store.save("authorization_code", "a", {"n": 1}, ttl=60, grant_id="g")
        store.save("authorization_code", "b", {"n": 2}, ttl=60)
        store.delete("authorization_code", "gone")
        store.prefetch("user", "u")
        assert _sizes(seen) == [], "nothing sent yet"
        assert raw.hget(store._key("authorization_code", "a"), "v") is None, "nobody sees it yet"
        consumed = store.consume("authorization_code", "b")
        assert consumed is not None and consumed.first
        assert _sizes(seen) == [6], "the index, three writes, the read ahead and the consume: one wait"
        assert store.find("user", "u") is None and _sizes(seen) == [6], "answered from the read ahead"
        store.save("authorization_code", "c", {"n": 3}, ttl=60)
    assert _sizes(seen) == [6, 1], "the rest is sent when the block ends"
    assert cast(bytes, raw.hget(store._key("authorization_code", "c"), "v")) == b'{"n": 3}'
    assert store.find("authorization_code", "gone") is None
    assert store.grant_records("g") == [("authorization_code", "a", {"n": 1})]
    raw.close()
    store.close()


def test_a_dropped_grant_is_deleted_with_the_writes_held_after_it(
        redis_cluster: RedisClusterServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The grant cap's eviction on a cluster: the index's members must be read now (the
    records live on other primaries), but their deletes wait for the batch's end."""
    store = RedisClusterStore(redis_cluster.url, prefix=unique_prefix())
    for key in ("r1", "r2", "r3"):
        store.save("refresh_token", key, {"n": 1}, ttl=60, grant_id="g")
    seen = _commands(store, monkeypatch)
    with store.batch():
        store.save("revoked", "grant:g", {"at": 1}, ttl=60)
        store.drop_grant("g")
        assert _sizes(seen) == [2], "the marker held before it and the index's members: one wait"
        store.save("authorization_code", "after", {"n": 2}, ttl=60)
    assert _sizes(seen) == [2, 5], "three deletes, the index's removal and the save: one wait at the end"
    assert store.find_many("refresh_token", ["r1", "r2", "r3"]) == [None, None, None]
    assert store.grant_records("g") == []
    assert store.find("authorization_code", "after") == {"n": 2}
    store.close()


def test_only_what_a_primary_refused_is_sent_again(redis_cluster: RedisClusterServer) -> None:
    """A stale slot map (a resharding, a failover) sends a held save to the wrong primary, which
    answers MOVED; the save goes again through the cluster client, but the code consumed in the
    same pipeline is not consumed a second time (that would read as a replay and revoke it)."""
    store = RedisClusterStore(redis_cluster.url, prefix=unique_prefix())
    store.save("authorization_code", "k", {"n": 1}, ttl=600)
    client = store._client()
    code_node = client.get_node_from_key(store._key("authorization_code", "k"))
    name = next(f"r{n}" for n in range(200)
                if client.get_node_from_key(store._key("client", f"r{n}")).name != code_node.name)
    slot = client.keyslot(store._key("client", name))
    client.nodes_manager.slots_cache[slot] = [code_node]
    with store.batch():
        store.save("client", name, {"n": 2}, ttl=None)
        consumed = store.consume("authorization_code", "k")
    assert consumed is not None and consumed.first, "consumed once"
    assert store.find("client", name) == {"n": 2}, "the refused save went again, and landed"
    again = store.consume("authorization_code", "k")
    assert again is not None and not again.first
    store.close()


def test_a_connection_cut_while_its_replies_are_read_sends_only_the_unanswered_again(
        redis_cluster: RedisClusterServer) -> None:
    """A kept connection that fails after some of a primary's replies were read: what was
    answered is not sent again (a counter, a consumed code would count twice), what was not
    goes again through the cluster client, and the other primaries' replies stand."""
    proxies = {port: CuttingProxy(("127.0.0.1", port)) for port in redis_cluster.ports}

    def behind_proxy(address: tuple[str, int]) -> tuple[str, int]:
        proxy = proxies.get(address[1])
        return ("127.0.0.1", proxy.port) if proxy is not None else address

    store = RedisClusterStore(redis_cluster.url, prefix=unique_prefix())
    try:
        seed = proxies[redis_cluster.ports[0]].port
        store._cluster = RedisCluster(host="127.0.0.1", port=seed, address_remap=behind_proxy)
        client = store._client()
        names = [store._key("throttle", f"n{n}") for n in range(200)]
        first = client.get_node_from_key(names[0])
        same = next(name for name in names[1:] if client.get_node_from_key(name) == first)
        other = next(name for name in names if client.get_node_from_key(name) != first)
        store._send([("SET", same, "kept"), ("SET", other, "0")])  # both kept connections open
        cutter = next(proxy for proxy in proxies.values() if proxy.port == first.port)
        cutter.cut_after(len(b":1\r\n"))  # the counter's reply gets through, no more
        replies = store._send([("INCR", names[0]), ("GET", same), ("INCR", other)])
        assert cutter.cuts == 1, "the connection was cut after the first reply"
        assert replies == [1, b"kept", 1]
        assert store._send([("GET", names[0]), ("GET", other)]) == [b"1", b"1"], "each ran once"
        assert store._send([("GET", same)]) == [b"kept"], "a new connection, kept again"
    finally:
        store.close()
        for proxy in proxies.values():
            proxy.close()


def test_a_listing_reads_each_primarys_records_with_one_command(
        redis_cluster: RedisClusterServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A person's fifty families at the grant cap: their records spread over every primary,
    and each primary's share is one script's reply, in the same wait as the writes held before
    it, not one reply per record; a record that is gone reads as gone."""
    store = RedisClusterStore(redis_cluster.url, prefix=unique_prefix())
    keys = [f"n{n:02}" for n in range(30)]
    for key in keys:
        store.save("app_grant", key, {"key": key}, ttl=600, grant_id="apps-of:u")
    client = store._client()
    primaries = {client.get_node_from_key(store._key("app_grant", key)).name for key in keys}
    assert len(primaries) == len(client.get_primaries()) > 1, "the records are on every primary"
    waits = _commands(store, monkeypatch)
    with store.batch():
        store.save("app_grant", "held", {"key": "held"}, ttl=600)
        rows = store.find_many("app_grant", [*keys, "missing"])
        assert len(waits) == 1, "one wait"
        held, *reads = waits[0]
        assert held[0] == "EVAL" and held[3] == store._key("app_grant", "held")
        assert len(reads) == len(primaries), "one command a primary"
        assert all(command[0] == "EVAL" for command in reads)
    assert rows == [*({"key": key} for key in keys), None]
    assert sorted(key for _, key, _ in store.grant_records("apps-of:u")) == keys
    assert store.find("app_grant", "held") == {"key": "held"}
    store.close()


def test_a_listing_reads_a_record_the_slot_map_misplaces(
        redis_cluster: RedisClusterServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stale slot map (a resharding, a failover) sends a record's name to a primary that does
    not serve it: the script there cannot read it, and says so rather than read it as missing
    (a family missing from the listing would escape the grant cap, and its index member could
    be pruned); it is read again on its own, through the cluster client's redirection."""
    prefix = unique_prefix()
    now = [1_000_000.0]
    store = RedisClusterStore(redis_cluster.url, prefix=prefix, clock=lambda: now[0])
    keys = [f"n{n:02}" for n in range(12)]
    for key in keys:
        store.save("app_grant", key, {"key": key}, ttl=3600, grant_id="apps-of:u")
    now[0] += SETTLED + 1  # old enough that a missing record's member would be pruned
    client = store._client()
    nodes = {key: client.get_node_from_key(store._key("app_grant", key)) for key in keys}
    moved = keys[0]
    other = next(node for node in nodes.values() if node.name != nodes[moved].name)
    slot = client.keyslot(store._key("app_grant", moved))
    client.nodes_manager.slots_cache[slot] = [other]
    waits = _commands(store, monkeypatch)
    assert sorted(key for _, key, _ in store.grant_records("apps-of:u")) == keys
    assert waits[-1] == [("HMGET", store._key("app_grant", moved), "v", "e", "g", "d")], \
        "the misplaced record alone was read again"
    raw = RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    assert raw.zcard(f"{prefix}g:{{apps-of:u}}") == len(keys), "nothing pruned"
    raw.close()
    store.close()


def test_a_listing_reads_a_record_moved_while_its_slot_migrates(
        redis_cluster: RedisClusterServer) -> None:
    """A resharding in progress: the record has been migrated, its slot not yet handed over, so
    the primary the map names answers for the slot but no longer holds the record. The script
    there must not read it as missing; it is read again and found through the cluster's ``ASK``
    redirection."""
    store = RedisClusterStore(redis_cluster.url, prefix=unique_prefix())
    client = store._client()

    def command(r: redis.Redis, *args: Any) -> Any:
        return r.execute_command(*args)  # type: ignore[no-untyped-call]

    while True:  # a slot no other test's records use (they stay until they expire)
        tag = unique_prefix()
        name = store._key("app_grant", f"{tag}00")
        source = client.get_node_from_key(name)
        src = redis.Redis(host="127.0.0.1", port=source.port)
        if command(src, "CLUSTER", "COUNTKEYSINSLOT", client.keyslot(name)) == 0:
            break
        src.close()
    keys = [f"{tag}{n:02}" for n in range(12)]
    for key in keys:
        store.save("app_grant", key, {"key": key}, ttl=600, grant_id="apps-of:u")
    slot = client.keyslot(name)
    target = next(node for node in client.get_primaries() if node.name != source.name)
    dst = redis.Redis(host="127.0.0.1", port=target.port)
    assert command(src, "CLUSTER", "COUNTKEYSINSLOT", slot) == 1, "the slot holds this record"
    ids = {r: cast(bytes, command(r, "CLUSTER", "MYID")).decode() for r in (src, dst)}
    try:
        command(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src])
        command(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst])
        command(src, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", name)
        with pytest.raises(redis.exceptions.AskError):  # it has left the primary the map names
            src.exists(name)
        assert sorted(key for _, key, _ in store.grant_records("apps-of:u")) == keys
    finally:
        for r in (dst, src):  # hand the slot over, so the cluster is whole again
            command(r, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
        src.close()
        dst.close()
        store.close()

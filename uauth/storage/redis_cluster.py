"""Redis Cluster storage: ``redis+cluster://host:7000[,host:7001…]`` (TLS: ``rediss+cluster://``).

Records are hashes with the fields of :mod:`uauth.storage.redis` (``v e c g``), read and written
by the same code (:class:`~uauth.storage.redis.RedisRecordStore`), under keys whose hash tag is
the record's own ``kind:key``, so records spread over every primary::

    {prefix}r:{authorization_code:<digest>}      a record
    {prefix}g:{<grant id>}                       the set of record keys saved under a grant

Every script touches exactly one key and names it (``KEYS[1]``), so it runs in that key's slot:
save, add, consume and incr are one atomic script each, as on single Redis. A record and its
grant index live in different slots, so a save under a grant is two atomic scripts sent in one
pipeline (one round trip's wait, both primaries written in parallel): the index gains the
record's key, the record is written with its grant id. Should one fail, the save raises, so the
caller never hands out the secret (code, token, session cookie) of a record the index may lack.
The index may name a record that is gone or was re-saved under another grant; revocation and
listing trust the record's own ``g`` field, as the single-Redis scripts do. Revocation removes
from the index only the members it read, so a record added meanwhile stays revocable.

The single-Redis backend keeps its key format (``{prefix}r:{kind}:{key}`` without hash tags):
nothing changes for existing deployments; moving to a cluster is ``uauth migrate --to``.

Failover: redis-py's cluster client follows ``MOVED`` redirections and re-reads the slot map
after a connection error; while a primary's slots have no primary yet, calls raise
:class:`StorageUnavailable` (503) and succeed again once a replica is promoted.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from .base import Clock
from .base import Kind
from .base import Record
from .base import StorageError
from .base import StorageUnavailable
from .base import system_clock
from .redis import _SAVE_RECORD
from .redis import RedisRecordStore
from .redis import _glob_escape
from .redis_urls import parse_cluster_url

# KEYS: record. ARGV: value, expires_at|'', ttl_ms|'', grant|'', now, mode.
_SAVE = _SAVE_RECORD + "return 1\n"

# KEYS: grant index. ARGV: record key, ttl_ms|''. The index lives as long as its longest record.
_INDEX = """
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SADD', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  redis.call('PERSIST', KEYS[1])
else
  local left = redis.call('PTTL', KEYS[1])
  if existed == 0 or (left >= 0 and left < tonumber(ARGV[2])) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
end
return 1
"""

# KEYS: record. ARGV: grant id. Deletes the record only if it is still saved under that grant.
_DELETE_IF_GRANT = """
if redis.call('HGET', KEYS[1], 'g') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: record. Deletes a record saved under no grant and returns nil; for one saved under a
# grant returns the grant id and leaves the record: the caller takes it out of the grant's index
# first and deletes it second, so a save racing the delete can leave a stale index member (read
# past) but never a live record its grant's revocation would miss.
_DELETE_UNLESS_GRANT = """
local g = redis.call('HGET', KEYS[1], 'g')
if not g or g == '' then
  redis.call('DEL', KEYS[1])
  return nil
end
return g
"""

T = TypeVar("T")


class RedisClusterStore(RedisRecordStore):
    def __init__(self, url: str, *, prefix: str = "uauth:", clock: Clock = system_clock,
                 timeout: float = 2.0) -> None:
        self.url = url
        self.prefix = prefix
        self._clock = clock
        self._timeout = timeout
        self._nodes, self._auth = parse_cluster_url(url)
        self._lock = threading.Lock()
        self._cluster: Any = None

    # -- connection -----------------------------------------------------------------------

    def _client(self) -> Any:  # redis-py's cluster client is barely typed
        """The cluster client, made on first use: its constructor reads the slot map, and
        opening a store must not connect. redis-py resets its pools in a forked child."""
        cluster = self._cluster
        if cluster is None:
            with self._lock:
                if self._cluster is None:
                    self._cluster = RedisCluster(
                        startup_nodes=[ClusterNode(host, port)  # type: ignore[no-untyped-call]
                                       for host, port in self._nodes],
                        socket_timeout=self._timeout, socket_connect_timeout=self._timeout,
                        retry=Retry(NoBackoff(), 1), reinitialize_steps=1,
                        **self._auth)
                cluster = self._cluster
        return cluster

    def _where(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self._nodes)

    def _call(self, fn: Callable[[Any], T]) -> T:
        try:
            return fn(self._client())
        except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError,
                redis.exceptions.TryAgainError) as exc:
            raise StorageUnavailable(f"redis cluster unavailable at {self._where()}") from exc
        except RedisClusterException as exc:
            # e.g. no seed node answers, or a slot has no primary: start afresh next time,
            # from the seed nodes of the URL, so the store recovers without a restart.
            self._reset()
            raise StorageUnavailable(f"redis cluster unavailable at {self._where()}") from exc
        except redis.RedisError as exc:
            raise StorageError(
                f"redis cluster at {self._where()} failed: {type(exc).__name__}") from exc

    def _reset(self) -> None:
        with self._lock:
            cluster, self._cluster = self._cluster, None
        if cluster is not None:
            with contextlib.suppress(redis.RedisError, RedisClusterException, OSError):
                cluster.close()

    def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Run ``commands`` (each names its key second: ``HMGET key …``, ``EVAL body 1 key …``)
        and return their raw replies, in order.

        The hot path routes them itself: the slot map gives each key's primary, each primary
        gets its commands in one write, then every reply is read, so commands on several
        primaries cost one round trip's wait and none of the cluster client's per-command
        bookkeeping. Anything unusual (a ``MOVED`` or ``ASK`` after a resharding or failover, a
        node that does not answer, a slot without a primary) falls back to redis-py's cluster
        pipeline, which follows redirections and re-reads the slot map, or raises."""
        try:
            return self._send_direct(self._client(), commands)
        except (redis.RedisError, RedisClusterException, OSError):
            pass

        def via_cluster(c: Any) -> list[Any]:
            pipe = c.pipeline()
            for command in commands:
                pipe.execute_command(*command)
            return list(pipe.execute())

        return self._call(via_cluster)

    @staticmethod
    def _send_direct(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        manager = client.nodes_manager
        groups: dict[str, tuple[Any, list[int]]] = {}
        for index, command in enumerate(commands):
            key = command[1] if command[0] != "EVAL" else command[3]
            node = manager.get_node_from_slot(client.keyslot(key))
            groups.setdefault(node.name, (node, []))[1].append(index)
        held = []
        replies: list[Any] = [None] * len(commands)
        try:
            for node, indexes in groups.values():
                pool = client.get_redis_connection(node).connection_pool
                connection = pool.get_connection()
                held.append((pool, connection, indexes))
                connection.send_packed_command(
                    connection.pack_commands([commands[i] for i in indexes]))
            for _, connection, indexes in held:
                for i in indexes:
                    replies[i] = connection.read_response()
        except BaseException:
            for _, connection, _ in held:  # replies may be left unread: never reuse these
                connection.disconnect()
            raise
        finally:
            for pool, connection, _ in held:
                pool.release(connection)
        return replies

    # -- keys -----------------------------------------------------------------------------

    def _key(self, kind: Kind, key: str) -> str:
        return f"{self.prefix}r:{{{kind}:{key}}}"

    def _head(self, kind: Kind | None) -> str:
        return f"{self.prefix}r:{{" if kind is None else f"{self.prefix}r:{{{kind}:"

    def _grant_key(self, grant_id: str) -> str:
        return f"{self.prefix}g:{{{grant_id}}}"

    def _split(self, name: bytes) -> tuple[Kind, str]:
        inner = name.decode("utf-8")[len(self.prefix) + 3:-1]
        kind, _, key = inner.partition(":")
        return kind, key

    # -- the protocol ---------------------------------------------------------------------

    def _command(self, *command: Any) -> Any:
        return self._send([command])[0]

    def _script(self, body: str, name: str, *args: str) -> Any:
        return self._command("EVAL", body, 1, name, *args)

    def _fields(self, names: list[str], fields: list[str]) -> list[list[bytes | None]]:
        return self._send([("HMGET", name, *fields) for name in names]) if names else []

    def _names(self, head: str) -> list[bytes]:
        def names_on_every_primary(client: Any) -> list[bytes]:
            # SCAN names no key, so no MOVED reply would correct a stale map of the primaries
            # (a replica answers it with whatever it holds): read the map afresh first.
            client.nodes_manager.initialize()
            return list(client.scan_iter(match=_glob_escape(head) + "*", count=1000))

        return self._call(names_on_every_primary)

    def _put(self, name: str, argv: list[str], grant_id: str | None, ttl_ms: str) -> bool:
        save = ("EVAL", _SAVE, 1, name, *argv)
        if not grant_id:
            return bool(self._send([save])[0])
        # The index and the record in one round trip (both primaries written, then both
        # replies read); if either fails, the save raises.
        indexed, saved = self._send([("EVAL", _INDEX, 1, self._grant_key(grant_id), name,
                                      ttl_ms), save])
        return bool(indexed) and bool(saved)

    def _members(self, grant_id: str) -> list[bytes]:
        return sorted(self._call(lambda c: c.smembers(self._grant_key(grant_id))))

    def delete(self, kind: Kind, key: str) -> None:
        """The record, and its member of its grant's index (else a person's long-lived apps
        index would keep a member for every family ever evicted, and every read of it would
        pay for them)."""
        name = self._key(kind, key)
        grant = self._script(_DELETE_UNLESS_GRANT, name)
        if grant is not None:
            self._command("SREM", self._grant_key(grant.decode("utf-8")), name)
            self._command("DEL", name)

    def revoke_grant(self, grant_id: str) -> int:
        members = self._members(grant_id)
        removed = sum(int(n) for n in self._send(
            [("EVAL", _DELETE_IF_GRANT, 1, name, grant_id) for name in members])) \
            if members else 0
        if members:
            self._call(lambda c: c.srem(self._grant_key(grant_id), *members))
        return removed

    def grant_records(self, grant_id: str) -> list[tuple[Kind, str, Record]]:
        members = self._members(grant_id)
        found = []
        moved = []
        rows = self._fields([name.decode("utf-8") for name in members], ["v", "e", "g"])
        for name, (value, expires, grant) in zip(members, rows, strict=True):
            record = self._decode_live(value, expires)
            if record is not None and grant == grant_id.encode("utf-8"):
                kind, key = self._split(name)
                found.append((kind, key, record))
            elif value is not None and grant != grant_id.encode("utf-8"):
                moved.append(name)  # saved again under another grant: never this one's again
        if moved:  # (a missing record may be a save still in flight: its member stays)
            self._command("SREM", self._grant_key(grant_id), *moved)
        return found

    def ping(self) -> None:
        """Every primary answers (redis-py sends PING to all of them)."""
        self._call(lambda c: c.ping())

    def close(self) -> None:
        self._reset()

"""Redis Cluster storage: ``redis+cluster://host:7000[,host:7001…]`` (TLS: ``rediss+cluster://``).

Records are hashes with the fields of :mod:`uauth.storage.redis` (``v e c g``), read and written
by the same code (:class:`~uauth.storage.redis.RedisRecordStore`), under keys whose hash tag is
the record's own ``kind:key``, so records spread over every primary::

    {prefix}r:{authorization_code:<digest>}      a record
    {prefix}g:{<grant id>}                       the records saved under a grant: a sorted set of
                                                 their keys, scored by when each was last added

Every script touches exactly one key and names it (``KEYS[1]``), so it runs in that key's slot:
save, add, consume and incr are one atomic script each, as on single Redis. A record and its
grant index live in different slots, so a save under a grant is two atomic scripts sent in one
pipeline (one round trip's wait, both primaries written in parallel): the index gains the
record's key, the record is written with its grant id. Should one fail, the save raises, so the
caller never hands out the secret (code, token, session cookie) of a record the index may lack.

The index may name a record that is gone, expired or was saved again under another grant:
revocation and listing trust the record's own ``g`` field, as the single-Redis scripts do, and
a member leaves the index only when that is safe, so a live record is never missing from its
grant's index (which would make it unrevocable):

* a delete is one script: a record saved under a grant leaves a tombstone for :data:`SETTLED`
  seconds (its grant id, no value), and its member stays in the index for now;
* a read of the index drops members saved again under another grant (rare) at once; members
  added before their record's tombstone, and members whose record is missing or expired that
  were added more than :data:`SETTLED` seconds ago (before that, the record may be a save still
  in flight, its index written and the record not yet), once they are a quarter of the index.
  So a read of a person's long-lived group stays proportional to what is live, and pruning
  costs one extra round trip now and then, not on every read. A member is dropped only if it
  was not added again since it was read;
* revocation removes from the index only the members it read, so a record added meanwhile stays
  revocable.

Inside :meth:`~uauth.storage.base.Store.batch` saves and deletes are held back and sent with
the next command that answers, and reads asked for ahead (``prefetch``) ride along, as on single
Redis: each primary gets its share in one write and every reply is read, one round trip's wait
for commands on several primaries. Should a primary refuse a command (``MOVED`` after a
resharding), only what it refused goes again (:meth:`RedisClusterStore._send`).

The single-Redis backend keeps its key format (``{prefix}r:{kind}:{key}`` without hash tags):
nothing changes for existing deployments; moving to a cluster is ``uauth migrate --to``.

Failover: redis-py's cluster client follows ``MOVED`` redirections and re-reads the slot map
after a connection error; while a primary's slots have no primary yet, calls raise
:class:`StorageUnavailable` (503) and succeed again once a replica is promoted.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from . import keyorder
from .base import Clock
from .base import Kind
from .base import Record
from .base import StorageError
from .base import StorageUnavailable
from .base import system_clock
from .held import HeldWrites
from .held import listing
from .listed import listed
from .process import current_pid
from .redis import _SAVE_RECORD
from .redis import RedisRecordStore
from .redis import _glob_escape
from .redis_urls import parse_cluster_url

# KEYS: record. ARGV: value, expires_at|'', ttl_ms|'', grant|'', now, mode.
_SAVE = _SAVE_RECORD + "return 1\n"

# KEYS: grant index. An index written as a plain set (by uauth before the scores) becomes a
# sorted set in place, its members as if added long ago, its expiry kept.
_AS_SORTED_SET = """
if redis.call('TYPE', KEYS[1]).ok == 'set' then
  local members = redis.call('SMEMBERS', KEYS[1])
  local left = redis.call('PTTL', KEYS[1])
  redis.call('DEL', KEYS[1])
  for _, member in ipairs(members) do redis.call('ZADD', KEYS[1], 0, member) end
  if left > 0 then redis.call('PEXPIRE', KEYS[1], left) end
end
"""

# KEYS: grant index. ARGV: record key, ttl_ms|'', now. The index lives as long as its longest
# record; a member's score is when it was last added (see SETTLED).
_INDEX = _AS_SORTED_SET + """
local existed = redis.call('EXISTS', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
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
if redis.call('HGET', KEYS[1], 'g') ~= ARGV[1] then return 0 end
local live = redis.call('HEXISTS', KEYS[1], 'v')
redis.call('DEL', KEYS[1])
return live
"""

# KEYS: record. ARGV: tombstone ttl_ms, now. Deletes the record; one saved under a grant leaves
# a tombstone (its grant id, when it was deleted, no value, already expired for ``add``) that
# tells a read of the grant's index that a member added before then is gone for good, not a save
# in flight.
_DELETE = """
local g = redis.call('HGET', KEYS[1], 'g')
local n = redis.call('DEL', KEYS[1])
if g and g ~= '' then
  redis.call('HSET', KEYS[1], 'e', '0', 'c', 0, 'g', g, 'd', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
"""

# KEYS: grant index. Its members and their scores.
_MEMBERS = _AS_SORTED_SET + """
return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
"""

# KEYS: grant index. ARGV: member, score, member, score, ... as read. Removes each member whose
# score is still the one read: one added again since (a new save under this grant) stays.
_FORGET = """
local n = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
"""

# ARGV: record names, then the fields to read, then how many fields. Each record's fields, as
# HMGET reads them, for records this node serves: one reply for a node's share of a listing, not
# one per record. It names no key, so the node runs it whatever slots its records hash to (a
# script without flags may read several slots); a record the node does not serve (a stale slot
# map, a slot being moved) is not read as missing: its row is 0, and it is read again on its own.
_FIELDS_HERE = """
local n = tonumber(ARGV[#ARGV])
local fields = {unpack(ARGV, #ARGV - n, #ARGV - 1)}
local rows = {}
for i = 1, #ARGV - n - 1 do
  local row = redis.pcall('HMGET', ARGV[i], unpack(fields))
  if row.err then rows[i] = 0 else rows[i] = row end
end
return rows
"""

#: Seconds after which an index member whose record is missing is surely not a save in flight
#: (a save writes its index and its record in one pipeline, within the socket timeout and one
#: retry); only then may a read drop it. Generous, so that hosts' clocks may differ.
SETTLED = 60.0

T = TypeVar("T")

#: Replies that say a command did not run where it was sent (after a resharding or failover,
#: while a cluster elects): it is sent again through the cluster client, which follows them.
_NOT_RUN = (redis.exceptions.MovedError, redis.exceptions.AskError,
            redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError,
            redis.exceptions.ReadOnlyError)


def _by_primary(client: Any, keys: Sequence[str | bytes]) -> dict[str, tuple[Any, list[int]]]:
    """The keys' positions grouped by their primary (by name), as the client's slot map has
    it. The first key is looked up as redis-py does (which applies a ``MOVED`` reply's update
    to the map first); the rest read the map itself, and a slot it does not cover goes through
    the lookup, which raises. Looked up one by one, through the client's encoder and the
    lookup's wrapper, fifty keys took a third of the CPU of the listing that reads their
    records."""
    manager = client.nodes_manager
    groups: dict[str, tuple[Any, list[int]]] = {}
    for index, key in enumerate(keys):
        slot = key_slot(key.encode("utf-8") if isinstance(key, str) else key)
        if index == 0:
            node = manager.get_node_from_slot(slot)
            cache = manager.slots_cache  # as the lookup left it
        else:
            nodes = cache.get(slot)
            node = nodes[0] if nodes else manager.get_node_from_slot(slot)
        groups.setdefault(node.name, (node, []))[1].append(index)
    return groups


def _give_back(kept: tuple[Any, Any]) -> None:
    pool, connection = kept
    pool.release(connection)


class _Kept:
    """A thread's kept connections (see :meth:`RedisClusterStore._kept`); given back to their
    pools when the thread ends and its thread-local value goes."""

    def __init__(self) -> None:
        self.pid = current_pid()
        self.connections: dict[str, tuple[Any, Any]] = {}
        weakref.finalize(self, _give_back_all, self.connections, self.pid)

    def give_back(self) -> None:
        _give_back_all(self.connections, self.pid)


def _give_back_all(connections: dict[str, tuple[Any, Any]], pid: int) -> None:
    if pid != current_pid():  # a forked child: the pools start afresh there
        return
    while connections:
        _give_back(connections.popitem()[1])


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
        self._local = threading.local()
        self._held: HeldWrites[tuple[Any, ...]] = HeldWrites()

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
        mine: _Kept | None = getattr(self._local, "kept", None)
        self._local.kept = None
        if mine is not None and mine.pid == current_pid():
            mine.give_back()
        with self._lock:
            cluster, self._cluster = self._cluster, None
        if cluster is not None:
            with contextlib.suppress(redis.RedisError, RedisClusterException, OSError):
                cluster.close()

    def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Run ``commands`` (each names its key second: ``HMGET key …``, ``EVAL body 1 key …``)
        and return their raw replies, in order.

        The hot path routes them itself: the slot map gives each key's primary, each primary
        gets its commands in one write on the connection this thread keeps to it
        (:meth:`_kept`), then every reply is read, so commands on several primaries cost one
        round trip's wait and none of the cluster client's per-command bookkeeping. What the
        hot path could not run (a ``MOVED`` or ``ASK`` after a resharding or failover, a node
        that does not answer, a slot without a primary) goes again through redis-py's cluster
        pipeline, which follows redirections and re-reads the slot map, or raises; only that
        part goes again, so a command that ran on another primary (a code's consumption held
        in one pipeline with a save) never runs twice."""
        try:
            replies, again = self._send_direct(self._client(), commands)
        except (redis.RedisError, RedisClusterException, OSError):  # before anything was sent
            replies, again = [None] * len(commands), list(range(len(commands)))
        if again:
            def via_cluster(c: Any) -> list[Any]:
                pipe = c.pipeline()
                for i in again:
                    pipe.execute_command(*commands[i])
                return list(pipe.execute())

            for i, reply in zip(again, self._call(via_cluster), strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise StorageError(f"redis cluster at {self._where()} failed: "
                                   f"{type(reply).__name__}") from reply
        return replies

    def _kept(self) -> dict[str, tuple[Any, Any]]:
        """This thread's connections, one per primary it has talked to, by node name: kept
        between calls as the single-Redis store keeps its one (``RedisStore._client``), since a
        pool hands a connection out only after checking it for unread data, three system calls
        each time. A thread that ends gives them back; a forked child starts afresh."""
        mine: _Kept | None = getattr(self._local, "kept", None)
        if mine is None or mine.pid != current_pid():
            mine = self._local.kept = _Kept()
        return mine.connections

    def _drop(self, name: str) -> None:
        """Close the kept connection to ``name`` and give it back: replies may be left unread
        on it, so it is never used again as it is."""
        mine = self._kept().pop(name, None)
        if mine is not None:
            mine[1].disconnect()
            _give_back(mine)

    def _send_direct(self, client: Any, commands: list[tuple[Any, ...]]
                     ) -> tuple[list[Any], list[int]]:
        """The replies (a refusal as its ``ResponseError``) and which commands to send again:
        those a primary refused to run there (:data:`_NOT_RUN`) and those of a primary whose
        connection failed before their replies came (as redis-py's own retry would)."""
        groups = _by_primary(client, [command[1] if command[0] != "EVAL" else command[3]
                                      for command in commands])
        kept = self._kept()
        sent = []
        again: list[int] = []
        replies: list[Any] = [None] * len(commands)
        try:
            for name, (node, indexes) in groups.items():
                try:
                    pool = client.get_redis_connection(node).connection_pool
                    mine = kept.get(name)
                    if mine is None or mine[0] is not pool:  # new, or the map was read afresh
                        if mine is not None:
                            _give_back(kept.pop(name))
                        mine = kept[name] = (pool, pool.get_connection())
                    connection = mine[1]
                    connection.send_packed_command(
                        connection.pack_commands([commands[i] for i in indexes]))
                    sent.append(name)
                except (redis.RedisError, RedisClusterException, OSError):
                    self._drop(name)
                    again.extend(indexes)
            for name in sent:
                connection = kept[name][1]
                indexes = groups[name][1]
                for n, i in enumerate(indexes):
                    try:
                        replies[i] = connection.read_response()
                    except redis.ResponseError as exc:  # the reply was read: the rest follow
                        replies[i] = exc
                        if isinstance(exc, _NOT_RUN):
                            again.append(i)
                    except (redis.RedisError, OSError):
                        self._drop(name)
                        again.extend(indexes[n:])
                        break
        except BaseException:  # interrupted (a signal's exception): nothing kept is safe to use
            for name in list(kept):
                self._drop(name)
            raise
        return replies, sorted(again)

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
        return self._after_held([command])[0]

    def _script(self, body: str, name: str, *args: str) -> Any:
        return self._command("EVAL", body, 1, name, *args)

    def _fields(self, names: list[str], fields: list[str]) -> list[list[bytes | None]]:
        """The fields of every name in one round trip, each primary's share in one script: a
        person's fifty families at the grant cap are three replies to route and parse, not
        fifty. A row the script could not read goes again as an ``HMGET``, which follows the
        cluster's redirections."""
        if len(names) < 2:
            return self._after_held([("HMGET", name, *fields) for name in names]) if names else []

        shares = [share for _, share in self._call(lambda c: _by_primary(c, names)).values()]
        replies = self._after_held([
            ("HMGET", names[share[0]], *fields) if len(share) == 1
            else ("EVAL", _FIELDS_HERE, 0, *(names[i] for i in share), *fields, str(len(fields)))
            for share in shares])
        rows: list[list[bytes | None]] = [[] for _ in names]
        unread: list[int] = []
        for share, reply in zip(shares, replies, strict=True):
            for index, row in zip(share, [reply] if len(share) == 1 else reply, strict=True):
                if isinstance(row, list):
                    rows[index] = row
                else:
                    unread.append(index)
        if unread:
            again = self._after_held([("HMGET", names[i], *fields) for i in unread])
            for index, row in zip(unread, again, strict=True):
                rows[index] = row
        return rows

    def _names(self, head: str) -> list[bytes]:
        def names_on_every_primary(client: Any) -> list[bytes]:
            # SCAN names no key, so no MOVED reply would correct a stale map of the primaries
            # (a replica answers it with whatever it holds): read the map afresh first.
            client.nodes_manager.initialize()
            return list(client.scan_iter(match=_glob_escape(head) + "*", count=1000))

        self._flush()  # a listing sees this thread's held writes
        return self._call(names_on_every_primary)

    def _put(self, name: str, argv: list[str], grant_id: str | None, ttl_ms: str) -> bool:
        # The index and the record in one round trip (both primaries written, then both
        # replies read); if either fails, the save raises. Inside a batch a save (not an
        # ``add``, which answers) is held back, both commands together.
        now = argv[4]  # the save's clock (``_write``'s argv): the member's score
        commands = [("EVAL", _SAVE, 1, name, *argv)]
        if grant_id:
            commands.insert(0, ("EVAL", _INDEX, 1, self._grant_key(grant_id), name, ttl_ms, now))
        if argv[-1] == "save" and self._held.hold(commands[0]):
            for command in commands[1:]:
                self._held.hold(command)
            return True
        return all(bool(reply) for reply in self._after_held(commands))

    def prefetch_grant(self, grant_id: str) -> None:
        """Read the grant's index with the next command that answers (the records themselves
        take a round trip of their own after it: they live on other primaries)."""
        self._held.expect(listing(grant_id), ("EVAL", _MEMBERS, 1, self._grant_key(grant_id)))

    def _members(self, grant_id: str) -> list[tuple[bytes, bytes]]:
        """The index's members with when each was last added (as Redis wrote it), by name."""
        ready, scored = self._held.answer(listing(grant_id))
        if not ready:
            scored = self._script(_MEMBERS, self._grant_key(grant_id))
        return sorted(zip(scored[::2], scored[1::2], strict=True))

    def _forget(self, grant_id: str, members: list[tuple[bytes, bytes]]) -> tuple[Any, ...]:
        """The command that drops ``members`` from the index unless added again since."""
        return ("EVAL", _FORGET, 1, self._grant_key(grant_id),
                *(part for member in members for part in member))

    def delete(self, kind: Kind, key: str) -> None:
        self._held.forget((kind, key))
        command = ("EVAL", _DELETE, 1, self._key(kind, key), str(int(SETTLED * 1000)),
                   repr(self._clock()))
        if not self._held.hold(command):
            self._after_held([command])

    def _grant_deletes(self, grant_id: str) -> list[tuple[Any, ...]]:
        """Every record's delete and the index's removal of the members read now (the records
        live on other primaries, so their names are read first); a record saved under the grant
        meanwhile keeps its member (and the grant's revocation marker, written first by the
        caller, refuses its token)."""
        self._held.forget()  # it deletes records by their grant, whatever their names
        members = self._members(grant_id)
        if not members:
            return []
        return [*(("EVAL", _DELETE_IF_GRANT, 1, name, grant_id) for name, _ in members),
                self._forget(grant_id, members)]

    def revoke_grant(self, grant_id: str) -> int:
        commands = self._grant_deletes(grant_id)
        if not commands:
            return 0
        replies = self._after_held(commands)  # in one round trip
        return sum(int(n) for n in replies[:-1])

    def drop_grant(self, grant_id: str) -> None:
        commands = self._grant_deletes(grant_id)
        for command in commands:
            if not self._held.hold(command):  # outside a batch: all of them now
                self._after_held(commands)
                return

    def grant_records(self, grant_id: str) -> list[tuple[Kind, str, Record]]:
        found = []
        for name, value in self._live(grant_id, self._members(grant_id)):
            kind, key = self._split(name)
            found.append((kind, key, listed.decode(value)))
        return found

    def all_but_newest(self, grant_id: str, kind: Kind, prefix: str, newest: int
                       ) -> list[tuple[str, Record]]:
        """Only the index's names that begin with ``prefix`` are read, and only the records
        beyond ``newest`` decoded: the others are counted, not used."""
        head = (self._head(kind) + prefix).encode("utf-8")
        live = self._live(grant_id, [member for member in self._members(grant_id)
                                     if member[0].startswith(head)])
        live.sort(key=lambda found: found[0][:-1])  # by key: the names less their closing brace
        return [(self._split(name)[1], listed.decode(value))
                for name, value in keyorder.oldest(live, newest)]

    def _live(self, grant_id: str, members: list[tuple[bytes, bytes]]
              ) -> list[tuple[bytes, bytes]]:
        """The names among ``members`` whose records are live under the grant, with their
        stored values. Names whose records are gone for good leave the index as they are met,
        once they are a quarter of those read (or at once, if a record moved to another grant)."""
        rows = self._fields([name.decode("utf-8") for name, _ in members], ["v", "e", "g", "d"])
        live: list[tuple[bytes, bytes]] = []
        stale: list[bytes] = []
        moved = False
        now = self._clock()
        settled = now - SETTLED
        owner = grant_id.encode("utf-8")
        for (name, added), (value, expires, grant, deleted) in zip(members, rows, strict=True):
            if value is not None and grant != owner:
                stale.append(name)  # saved again under another grant: never this one's again
                moved = True
            elif value is not None and not (expires and float(expires) <= now):
                live.append((name, value))
            elif float(added) < (float(deleted) if deleted is not None else settled):
                stale.append(name)  # deleted or expired, and no save of it is in flight
        if moved or (stale and len(stale) * 4 >= len(members)):
            scores = dict(members)
            forget = self._forget(grant_id, [(name, scores[name]) for name in stale])
            if not self._held.hold(forget):  # in a batch, it goes with the batch's next wait
                self._after_held([forget])
        return live

    def ping(self) -> None:
        """Every primary answers (redis-py sends PING to all of them)."""
        self._flush()
        self._call(lambda c: c.ping())

    def close(self) -> None:
        self._reset()

"""Redis storage: how a deployment grows past one machine.

Each record is a hash ``{prefix}r:{kind}:{key}`` with fields ``v`` (JSON), ``e`` (expiry as Unix
seconds, empty for never), ``c`` (times consumed) and ``g`` (grant id); Redis TTLs purge it, and
``e`` is checked on every read so an injected clock and Redis agree on what is expired. A set
``{prefix}g:{grant}`` indexes the records of one grant. Every multi-step operation is one Lua
script, so it is atomic across workers and hosts and costs one round trip.

High availability: ``redis+sentinel://host:26379,host2:26379/<service>/<db>`` asks the Sentinels
for the current master and follows a failover (redis-py's Sentinel support; redis-py has no URL
form for it, so uauth parses this one). Redis Cluster is :mod:`.redis_cluster`, which shares
this module's record code (:class:`RedisRecordStore`) and puts a record and its grant index in one
hash slot.
"""

from __future__ import annotations

import json
import math
import threading
from abc import ABC
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import keyorder
from .base import Clock
from .base import Consumed
from .base import Entry
from .base import Kind
from .base import Mark
from .base import Record
from .base import StorageError
from .base import StorageUnavailable
from .base import system_clock
from .held import HeldWrites
from .held import Name
from .held import listing
from .listed import listed
from .process import current_pid
from .redis_urls import SENTINEL_SCHEME
from .redis_urls import parse_sentinel_url

# KEYS: record. ARGV: value, expires_at|'', ttl_ms|'', grant|'', now, mode ('save' replaces,
# 'add' only creates when no live record exists). The first part of a save, the record alone;
# Redis Cluster's save is this and ``return 1``, so ``add`` means the same on both.
_SAVE_RECORD = """
if ARGV[6] == 'add' then
  local e = redis.call('HGET', KEYS[1], 'e')
  if e and (e == '' or tonumber(e) > tonumber(ARGV[5])) then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', ARGV[2], 'c', 0, 'g', ARGV[4])
if ARGV[3] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
"""

# KEYS: record, grant index (or a dummy). ARGV: as _SAVE_RECORD. Writes the record, then adds
# it to its grant's index, which lives as long as its longest record.
_SAVE = _SAVE_RECORD + """
if ARGV[4] ~= '' then
  local existed = redis.call('EXISTS', KEYS[2])
  redis.call('SADD', KEYS[2], KEYS[1])
  if ARGV[3] == '' then
    redis.call('PERSIST', KEYS[2])
  else
    local left = redis.call('PTTL', KEYS[2])
    if existed == 0 or (left >= 0 and left < tonumber(ARGV[3])) then
      redis.call('PEXPIRE', KEYS[2], ARGV[3])
    end
  end
end
return 1
"""

# KEYS[1]: record. ARGV[1]: now. Spends a live record: ``r[1]`` its value, ``times`` how often
# it has been consumed, this time included; nil for a missing or expired one.
_SPEND = """
local r = redis.call('HMGET', KEYS[1], 'v', 'e')
if not r[1] then return nil end
if r[2] ~= '' and tonumber(r[2]) <= tonumber(ARGV[1]) then return nil end
local times = redis.call('HINCRBY', KEYS[1], 'c', 1)
"""

# KEYS: record. ARGV: now. Returns nil, or {value, times consumed including this one}.
_CONSUME = _SPEND + "return {r[1], times}\n"

# KEYS: record, its mark, the mark's grant index (or a dummy). ARGV: now, then the mark's as
# _SAVE's. _CONSUME, and the first consume also saves the mark (Store.consume's ``mark``).
_CONSUME_MARKING = "local function save(KEYS, ARGV)\n" + _SAVE + "end\n" + _SPEND + """
if times == 1 then save({KEYS[2], KEYS[3]}, {unpack(ARGV, 2)}) end
return {r[1], times}
"""

# KEYS: record. ARGV: ttl_ms, expires_at of a new counter, now. Returns the new count; a new
# (or expired) counter starts at 1 with the TTL, later increments keep its expiry.
_INCR = """
local r = redis.call('HMGET', KEYS[1], 'v', 'e')
local n = 1
if r[1] and (r[2] == '' or tonumber(r[2]) > tonumber(ARGV[3])) then
  n = (cjson.decode(r[1])['count'] or 0) + 1
  redis.call('HSET', KEYS[1], 'v', cjson.encode({count = n}))
  return n
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', '{"count": 1}', 'e', ARGV[2], 'c', 0, 'g', '')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
"""

# KEYS: grant index. ARGV: grant id. Deletes only records still saved under that grant.
_REVOKE = """
local n = 0
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('HGET', k, 'g') == ARGV[1] then n = n + redis.call('DEL', k) end
end
redis.call('DEL', KEYS[1])
return n
"""

# KEYS: grant index. ARGV: grant id, now, a head: only the names that begin with it are read
# (``all_but_newest``; empty for the whole grant). Returns {key, value, key, value, ...} of the live
# records still saved under that grant, and drops from the index the members that are not: a
# record deleted one by one (an evicted family's note), expired, or saved again under another
# grant. Without this a long-lived group index (a person's apps) would grow with every record
# ever saved under it, and so would the cost of reading it. A save of such a record adds it to
# the index again, and the script is atomic, so nothing live can be dropped.
_GRANT_RECORDS = """
local out = {}
local stale = {}
local head = ARGV[3]
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if string.sub(k, 1, #head) == head then
    local r = redis.call('HMGET', k, 'v', 'e', 'g')
    if r[1] and r[3] == ARGV[1] and (r[2] == '' or tonumber(r[2]) > tonumber(ARGV[2])) then
      out[#out + 1] = k
      out[#out + 1] = r[1]
    else
      stale[#stale + 1] = k
    end
  end
end
for i = 1, #stale, 500 do
  redis.call('SREM', KEYS[1], unpack(stale, i, math.min(i + 499, #stale)))
end
return out
"""


class RedisRecordStore(ABC):
    """What the single-Redis and the Redis Cluster stores share: the record hash (``v e c g``),
    the expiry checked on every read, and the protocol methods that read and write it alike on
    both. A backend says only how it names keys (the cluster adds hash tags) and how it sends
    commands (registered scripts to one server; each key's primary in a cluster)."""

    prefix: str
    _clock: Clock
    _held: HeldWrites[tuple[Any, ...]]

    @abstractmethod
    def _key(self, kind: Kind, key: str) -> str:
        """The name of a record."""

    @abstractmethod
    def _head(self, kind: Kind | None) -> str:
        """How the names of the records of ``kind`` start (of every record, for None)."""

    @abstractmethod
    def _split(self, name: bytes) -> tuple[Kind, str]:
        """A record's kind and key, from its name."""

    @abstractmethod
    def _command(self, *command: Any) -> Any:
        """The raw reply to one command on one key (named second: ``HMGET key …``)."""

    @abstractmethod
    def _script(self, body: str, name: str, *args: str) -> Any:
        """The reply of a script that touches only the record ``name`` (its ``KEYS[1]``)."""

    @abstractmethod
    def _fields(self, names: list[str], fields: list[str]) -> list[list[bytes | None]]:
        """HMGET ``fields`` of every name, in one round trip."""

    @abstractmethod
    def _names(self, head: str) -> list[bytes]:
        """The names of every record that start with ``head``, found by SCAN."""

    @abstractmethod
    def _put(self, name: str, argv: list[str], grant_id: str | None, ttl_ms: str) -> bool:
        """Write the record ``name`` with the save script's ``argv`` and, under a grant, add
        it to the grant's index; False when ``add`` found a live record."""

    @abstractmethod
    def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """``commands`` at once, one round trip's wait; their raw replies, in order. A command on
        a record is sent after every command before it on that record."""

    def batch(self) -> AbstractContextManager[None]:
        """Hold this thread's saves and deletes back and send them in one pipeline with the
        next command that answers, or at the end of the block: a token response's writes cost
        one round trip instead of one each. Order is kept, so a read sees every write before
        it; a write that fails raises where it is sent."""
        return self._held.batch(self._send)

    def prefetch(self, kind: Kind, key: str) -> None:
        """Read the record with the next command that answers, in its pipeline."""
        self._held.expect((kind, key), ("HMGET", self._key(kind, key), "v", "e"))

    def _with_reads(self, held: list[tuple[Any, ...]], reads: list[tuple[Name, tuple[Any, ...]]],
                    commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send the held writes, the expected reads and ``commands`` in one pipeline; keep the
        reads' replies for :meth:`find` and return the replies to ``commands``."""
        replies = self._send([*held, *(read for _, read in reads), *commands])
        for (name, _), reply in zip(reads, replies[len(held):], strict=False):
            self._held.answered(name, reply)
        return replies[len(held) + len(reads):]

    def _after_held(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The replies to ``commands``, sent after what this thread holds and reads ahead."""
        return self._with_reads(self._held.take(), self._held.take_reads(), commands)

    def _flush(self) -> None:
        held = self._held.take()
        if held:
            self._send(held)

    def _save_argv(self, mode: str, record: Record, ttl: int | None,
                   grant_id: str | None) -> list[str]:
        """The save script's ARGV: value, expires_at, ttl_ms, grant, now, mode."""
        now = self._clock()
        expires = "" if ttl is None else repr(now + ttl)
        ttl_ms = "" if ttl is None else str(math.ceil(ttl * 1000))
        return [json.dumps(record), expires, ttl_ms, grant_id or "", repr(now), mode]

    def _write(self, mode: str, kind: Kind, key: str, record: Record, ttl: int | None,
               grant_id: str | None) -> bool:
        self._held.forget((kind, key))
        argv = self._save_argv(mode, record, ttl, grant_id)
        return self._put(self._key(kind, key), argv, grant_id, argv[2])

    def save(
        self, kind: Kind, key: str, record: Record, ttl: int | None, *, grant_id: str | None = None
    ) -> None:
        self._write("save", kind, key, record, ttl, grant_id)

    def add(
        self, kind: Kind, key: str, record: Record, ttl: int | None, *, grant_id: str | None = None
    ) -> bool:
        return self._write("add", kind, key, record, ttl, grant_id)

    def _decode_live(self, value: bytes | None, expires: bytes | None) -> Record | None:
        """The record, unless it is gone or expired."""
        if value is None:
            return None
        if expires and float(expires) <= self._clock():
            return None
        return dict(json.loads(value))

    def find(self, kind: Kind, key: str) -> Record | None:
        ready, reply = self._held.answer((kind, key))
        value, expires = reply if ready else self._command("HMGET", self._key(kind, key), "v", "e")
        return self._decode_live(value, expires)

    def find_many(self, kind: Kind, keys: list[str]) -> list[Record | None]:
        rows = self._fields([self._key(kind, key) for key in keys], ["v", "e"])
        return [self._decode_live(value, expires) for value, expires in rows]

    def consume(self, kind: Kind, key: str, *, mark: Mark | None = None) -> Consumed | None:
        self._held.forget((kind, key))
        if mark is None:
            result = self._script(_CONSUME, self._key(kind, key), repr(self._clock()))
        else:
            self._held.forget((mark.kind, mark.key))
            result = self._consume_marking(self._key(kind, key), mark)
        if result is None:
            return None
        value, times = result
        return Consumed(dict(json.loads(value)), first=int(times) == 1)

    def _consume_marking(self, name: str, mark: Mark) -> Any:
        """The consume script's reply, ``mark`` saved by the first: after it, as its own write
        (a cluster's mark lives on another primary; single Redis does both in one script)."""
        result = self._script(_CONSUME, name, repr(self._clock()))
        if result is not None and int(result[1]) == 1:
            self.save(mark.kind, mark.key, mark.record, mark.ttl, grant_id=mark.grant_id)
        return result

    def incr(self, kind: Kind, key: str, ttl: int) -> int:
        self._held.forget((kind, key))
        now = self._clock()
        return int(self._script(_INCR, self._key(kind, key),
                                str(math.ceil(ttl * 1000)), repr(now + ttl), repr(now)))

    def delete(self, kind: Kind, key: str) -> None:
        self._command("DEL", self._key(kind, key))

    def _bulk(self, head: str) -> Iterator[tuple[bytes, list[bytes | None]]]:
        """Every record whose name starts with ``head``, in name order, with its ``v e g c``
        fields read in pipelined batches of 500."""
        names = sorted(self._names(head))
        for start in range(0, len(names), 500):
            batch = names[start:start + 500]
            rows = self._fields([name.decode("utf-8") for name in batch], ["v", "e", "g", "c"])
            yield from zip(batch, rows, strict=True)

    def scan(self, kind: Kind) -> Iterator[tuple[str, Record]]:
        for name, (value, expires, _, _) in self._bulk(self._head(kind)):
            record = self._decode_live(value, expires)
            if record is not None:
                yield self._split(name)[1], record

    def dump(self) -> Iterator[Entry]:
        for name, (value, expires, grant, consumed) in self._bulk(self._head(None)):
            record = self._decode_live(value, expires)
            if record is None:
                continue
            kind, key = self._split(name)
            yield Entry(kind, key, record, float(expires) if expires else None,
                        grant.decode("utf-8") if grant else None, int(consumed or 0))


class RedisStore(RedisRecordStore):
    def __init__(self, url: str, *, prefix: str = "uauth:", clock: Clock = system_clock,
                 timeout: float = 2.0) -> None:
        self.url = url
        self.prefix = prefix
        self._clock = clock
        # One pool per store; redis-py resets it in a forked child, so workers never share
        # sockets. A single immediate retry survives a server restart without stalling on
        # an outage, which must answer 503 quickly.
        options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                                   "retry": Retry(NoBackoff(), 1), "health_check_interval": 30}
        sentinel = url.startswith(SENTINEL_SCHEME + "://")
        base = sentinel_client(url, options) if sentinel else redis.Redis.from_url(url, **options)
        self._pool = base.connection_pool
        self._local = threading.local()
        self._held: HeldWrites[tuple[Any, ...]] = HeldWrites()
        # Behind Sentinels a connection asks them for the master when the pool hands it out,
        # not when it reconnects by itself: there every command takes one from the pool.
        self._shared = base if sentinel else None
        self._save = base.register_script(_SAVE)
        self._scripts = {body: base.register_script(body) for body in (_CONSUME, _INCR)}
        self._consume_mark = base.register_script(_CONSUME_MARKING)
        self._revoke = base.register_script(_REVOKE)
        self._grant_records = base.register_script(_GRANT_RECORDS)

    @property
    def _client(self) -> redis.Redis:
        """This thread's client, which keeps one connection of the pool.

        Taken from the pool for every command, a connection is first checked for unread data
        (blocking off, a read, blocking on: three system calls beside the command's own four),
        which made a command cost 70 µs of CPU where it costs 43 µs kept. A pipeline (several
        reads at once: :meth:`_fields`) still takes a connection from the pool, as redis-py's
        pipelines always do: one of a flow's 17 round trips. A thread that ends gives its
        connection back to the pool (the client's finaliser); a forked process starts its own,
        as redis-py's pool does.
        """
        if self._shared is not None:
            return self._shared
        mine: tuple[int, redis.Redis] | None = getattr(self._local, "client", None)
        if mine is None or mine[0] != current_pid():
            # It connects at once: an outage here is a StorageUnavailable like any other.
            mine = (current_pid(), self._call(redis.Redis, connection_pool=self._pool,
                                            single_connection_client=True))
            self._local.client = mine
        return mine[1]

    def _key(self, kind: Kind, key: str) -> str:
        return f"{self.prefix}r:{kind}:{key}"

    def _head(self, kind: Kind | None) -> str:
        return f"{self.prefix}r:" if kind is None else self._key(kind, "")

    def _split(self, name: bytes) -> tuple[Kind, str]:
        kind, _, key = name.decode("utf-8")[len(self.prefix) + 2:].partition(":")
        return kind, key

    def _grant_key(self, grant_id: str) -> str:
        return f"{self.prefix}g:{grant_id}"

    def _grant_index(self, grant_id: str | None) -> str:
        """The save script's second key: the grant's index, or a dummy it never touches."""
        return self._grant_key(grant_id or "-")

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StorageUnavailable(f"redis unavailable at {self._where()}") from exc
        except redis.ResponseError as exc:
            if "DB index is out of range" in str(exc):
                db = self._pool.connection_kwargs.get("db", "?")
                raise StorageError(
                    f"redis at {self._where()} has no database {db}; use a number below its "
                    "`databases` setting (16 by default) in UAUTH_STORAGE") from exc
            raise StorageError(f"redis at {self._where()} failed: ResponseError: {exc}") from exc
        except redis.RedisError as exc:
            raise StorageError(f"redis at {self._where()} failed: {type(exc).__name__}") from exc
        except BaseException:
            # Interrupted between a command and its reply (a signal's exception): the reply may
            # still be on its way to the connection this thread keeps, so no later command may
            # read from it. The pool's check for unread data can run before the reply arrives,
            # so the connection is closed, not just given back.
            self._let_go(closing=True)
            raise

    def _let_go(self, *, closing: bool = False) -> None:
        mine: tuple[int, redis.Redis] | None = getattr(self._local, "client", None)
        self._local.client = None
        if mine is not None:
            if closing and mine[1].connection is not None:
                mine[1].connection.disconnect()  # type: ignore[no-untyped-call]
            mine[1].close()

    def _where(self) -> str:
        kwargs = self._pool.connection_kwargs
        return f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"

    def _answer(self, command: tuple[Any, ...], alone: Any) -> Any:
        """The reply to ``command``: sent after the held writes and the reads expected ahead
        (:meth:`prefetch`) in their pipeline, or by ``alone`` (a registered script's EVALSHA
        on the kept connection) when there are none. In a pipeline a script is sent whole
        (EVAL): a server that lost its scripts (a restart, SCRIPT FLUSH) must not skip a
        write and run the commands after it."""
        held, reads = self._held.take(), self._held.take_reads()
        if not held and not reads:
            return self._call(alone)
        return self._with_reads(held, reads, [command])[-1]

    def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """``commands`` in one round trip, as redis-py's pipelines send them (a ``ResponseError``
        raised once every reply is read, the whole retried once on a dropped connection), but on
        the thread's kept connection: redis-py's pipelines take one from the pool, three system
        calls more. Behind Sentinels, through the pool (see :attr:`_client`)."""
        client: Any = self._client  # redis-py's connection methods are untyped
        conn: Any = client.connection
        if conn is None:
            def pooled() -> Any:
                pipe = client.pipeline(transaction=False)
                for command in commands:
                    pipe.execute_command(*command)
                return pipe.execute()

            return list(self._call(pooled))

        def run() -> list[Any]:
            conn.send_packed_command(conn.pack_commands(commands))
            replies = []
            for command in commands:
                try:
                    replies.append(client.parse_response(conn, command[0]))
                except redis.ResponseError as exc:
                    replies.append(exc)
            for reply in replies:
                if isinstance(reply, redis.ResponseError):
                    raise reply
            return replies

        return list(self._call(conn.retry.call_with_retry, run, lambda _: conn.disconnect()))

    def _command(self, *command: Any) -> Any:
        return self._answer(command, lambda: self._client.execute_command(  # type: ignore[no-untyped-call]
            *command))

    def _script(self, body: str, name: str, *args: str) -> Any:
        return self._answer(("EVAL", body, 1, name, *args), lambda: self._scripts[body](
            keys=[name], args=list(args), client=self._client))

    def _fields(self, names: list[str], fields: list[str]) -> list[list[bytes | None]]:
        return self._after_held([("HMGET", name, *fields) for name in names])

    def _names(self, head: str) -> list[bytes]:
        self._flush()
        return list(self._call(
            lambda: list(self._client.scan_iter(match=_glob_escape(head) + "*"))))

    def _put(self, name: str, argv: list[str], grant_id: str | None, ttl_ms: str) -> bool:
        grant_key = self._grant_index(grant_id)
        command = ("EVAL", _SAVE, 2, name, grant_key, *argv)
        if argv[-1] == "save" and self._held.hold(command):
            return True
        return bool(self._answer(command, lambda: self._save(
            keys=[name, grant_key], args=argv, client=self._client)))

    def _consume_marking(self, name: str, mark: Mark) -> Any:
        """One script: the consume, and the first's mark with its grant index."""
        grant_key = self._grant_index(mark.grant_id)
        args = [repr(self._clock()), *self._save_argv("save", mark.record, mark.ttl,
                                                      mark.grant_id)]
        keys = [name, self._key(mark.kind, mark.key), grant_key]
        return self._answer(("EVAL", _CONSUME_MARKING, 3, *keys, *args),
                            lambda: self._consume_mark(keys=keys, args=args, client=self._client))

    def delete(self, kind: Kind, key: str) -> None:
        self._held.forget((kind, key))
        if not self._held.hold(("DEL", self._key(kind, key))):
            super().delete(kind, key)

    def revoke_grant(self, grant_id: str) -> int:
        self._held.forget()  # it deletes records by their grant, whatever their names
        grant_key = self._grant_key(grant_id)
        return int(self._answer(("EVAL", _REVOKE, 1, grant_key, grant_id), lambda: self._revoke(
            keys=[grant_key], args=[grant_id], client=self._client)))

    def drop_grant(self, grant_id: str) -> None:
        self._held.forget()
        if not self._held.hold(("EVAL", _REVOKE, 1, self._grant_key(grant_id), grant_id)):
            self.revoke_grant(grant_id)

    def prefetch_grant(self, grant_id: str) -> None:
        """List the grant with the next command that answers, in its pipeline."""
        self._held.expect(listing(grant_id), self._listing(grant_id, repr(self._clock())))

    def all_but_newest(self, grant_id: str, kind: Kind, prefix: str, newest: int
                       ) -> list[tuple[str, Record]]:
        """The listing's script, given the names' head: only the records that begin with it
        come back, and only those beyond ``newest`` are decoded."""
        flat = self._listed(grant_id, self._key(kind, prefix))
        found = sorted(zip(flat[::2], flat[1::2], strict=True))  # by name: names are unique
        return [(self._split(name)[1], listed.decode(value))
                for name, value in keyorder.oldest(found, newest)]

    def _listing(self, grant_id: str, now: str, head: str = "") -> tuple[Any, ...]:
        return ("EVAL", _GRANT_RECORDS, 1, self._grant_key(grant_id), grant_id, now, head)

    def _listed(self, grant_id: str, head: str = "") -> Any:
        """The listing's flat reply (names that begin with ``head`` only), read now."""
        now = repr(self._clock())
        return self._answer(self._listing(grant_id, now, head), lambda: self._grant_records(
            keys=[self._grant_key(grant_id)], args=[grant_id, now, head], client=self._client))

    def grant_records(self, grant_id: str) -> list[tuple[Kind, str, Record]]:
        ready, flat = self._held.answer(listing(grant_id))
        if not ready:
            flat = self._listed(grant_id)
        found = []
        for name, value in zip(flat[::2], flat[1::2], strict=True):
            kind, key = self._split(name)
            found.append((kind, key, listed.decode(value)))
        return found

    def ping(self) -> None:
        self._flush()
        self._call(self._client.ping)

    def close(self) -> None:
        self._let_go()
        self._pool.disconnect()


def sentinel_client(url: str, options: dict[str, Any]) -> redis.Redis:
    """A client for the master a set of Sentinels names; it re-asks them after a failover."""
    from redis.sentinel import Sentinel

    addresses, service, db, auth = parse_sentinel_url(url)
    sentinel_password = auth.pop("sentinel_password", None)
    sentinel_kwargs = {"socket_timeout": options["socket_timeout"],
                       "socket_connect_timeout": options["socket_connect_timeout"]}
    if sentinel_password:
        sentinel_kwargs["password"] = sentinel_password
    sentinel = Sentinel(addresses, sentinel_kwargs=sentinel_kwargs, **options)  # type: ignore[no-untyped-call]
    client: redis.Redis = sentinel.master_for(service, db=db, **auth)  # type: ignore[no-untyped-call]
    return client


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)

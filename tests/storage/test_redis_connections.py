"""The Redis store's connections: one kept per thread, given back when the thread ends.

A pool hands a connection out per command only after three system calls that check it for
unread data; a thread that keeps its connection skips them (``RedisStore._client``).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis

from tests.conftest import threads_one_after_another
from tests.conftest import unique_prefix
from tests.redis_server import free_port
from uauth.core.records import CODE
from uauth.storage import StorageUnavailable
from uauth.storage.redis import RedisStore
from uauth.storage.redis_urls import SENTINEL_SCHEME


def counting(pool: Any) -> list[int]:
    """Count the connections ``pool`` hands out from now on."""
    handed: list[int] = [0]
    original = pool.get_connection

    def get_connection(*args: Any, **kwargs: Any) -> Any:
        handed[0] += 1
        return original(*args, **kwargs)

    pool.get_connection = get_connection
    return handed


def test_a_thread_keeps_one_connection_for_all_its_commands(redis_store: RedisStore) -> None:
    handed = counting(redis_store._pool)
    for n in range(20):
        redis_store.save(CODE, f"k{n}", {"n": n}, ttl=60)
        assert redis_store.find(CODE, f"k{n}") == {"n": n}
    redis_store.revoke_grant("nothing")
    assert handed[0] <= 1, f"the pool handed out {handed[0]} connections for 42 commands"


def test_a_thread_that_ends_gives_its_connection_back(redis_store: RedisStore) -> None:
    redis_store.ping()  # this thread's connection
    threads_one_after_another(lambda n: redis_store.save(CODE, f"t{n}", {"n": n}, ttl=60), 15)
    assert all(redis_store.find(CODE, f"t{n}") == {"n": n} for n in range(15))
    created = redis_store._pool._created_connections
    assert created <= 3, f"{created} connections for two threads alive at a time"


def test_threads_at_once_each_get_their_own_connection(redis_store: RedisStore) -> None:
    start = threading.Barrier(4)
    seen: list[int] = []

    def work(n: int) -> None:
        start.wait(timeout=10)
        for i in range(25):
            redis_store.save(CODE, f"p{n}-{i}", {"i": i}, ttl=60)
            assert redis_store.find(CODE, f"p{n}-{i}") == {"i": i}
        seen.append(id(redis_store._client.connection))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(set(seen)) == 4, "no two threads share a connection"


def test_no_server_is_a_storage_outage_on_a_threads_first_command() -> None:
    down = RedisStore(f"redis://127.0.0.1:{free_port()}/0", prefix=unique_prefix(), timeout=0.5)
    raised: list[BaseException] = []

    def first() -> None:
        try:
            down.find(CODE, "x")
        except BaseException as exc:  # noqa: BLE001 - asserted below
            raised.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    thread.join(timeout=30)
    assert len(raised) == 1 and isinstance(raised[0], StorageUnavailable), raised
    assert not isinstance(raised[0], redis.RedisError)


def test_behind_sentinels_every_command_takes_a_connection_from_the_pool() -> None:
    """There a connection asks the Sentinels for the master only when the pool hands it out
    (tests/test_sentinel.py fails over with it)."""
    url = f"{SENTINEL_SCHEME}://127.0.0.1:{free_port()}/mymaster/0"
    behind = RedisStore(url, prefix=unique_prefix(), timeout=0.5)
    assert behind._client is behind._client and behind._client.connection is None


class Interrupted(BaseException):
    """What a signal handler may raise between a command and its reply."""


def test_a_reply_left_unread_by_an_interruption_is_never_read_by_the_next_command(
        redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> None:
    redis_store.save(CODE, "a", {"who": "a"}, ttl=60)
    redis_store.ping()
    read = redis.connection.Connection.read_response

    def interrupted(self: Any, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(redis.connection.Connection, "read_response", read)
        raise Interrupted

    monkeypatch.setattr(redis.connection.Connection, "read_response", interrupted)
    with pytest.raises(Interrupted):
        redis_store.find(CODE, "a")  # sent; its reply stays on the connection
    assert redis_store.find(CODE, "b") is None, "the next command got the last one's reply"
    assert redis_store.find(CODE, "a") == {"who": "a"}

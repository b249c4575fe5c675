"""High availability through Redis Sentinel: a real master, replica and Sentinel on loopback.

uauth follows the master the Sentinel names (``redis+sentinel://`` URLs) and keeps working after
a failover, with what was written before it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import cast

import pytest
import redis

from tests.app_driver import Driver
from tests.app_driver import make_app
from tests.conftest import unique_prefix
from tests.redis_server import RedisServer
from tests.redis_server import free_port
from tests.redis_server import replicas_caught_up
from uauth.storage import StorageUnavailable
from uauth.storage import open_store
from uauth.storage.redis import RedisStore

pytestmark = pytest.mark.slow
SERVICE = "uauthmaster"


class Sentinel:
    """``redis-server --sentinel`` watching one master, failing over after half a second."""

    def __init__(self, directory: Path, master_port: int) -> None:
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "sentinel.conf"
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 500\n"
            f"sentinel failover-timeout {SERVICE} 3000\n")
        self.process = subprocess.Popen(
            [str(shutil.which("redis-server")), str(self.config), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.master_port() == master_port:
                    return
            except redis.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError("sentinel did not start")

    def master_port(self) -> int:
        _, port = self.client.execute_command(  # type: ignore[no-untyped-call]
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(port)

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def sentinel(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[Sentinel, RedisServer,
                                                                          RedisServer]]:
    master = RedisServer(tmp_path / "master")
    master.start()
    replica = RedisServer(tmp_path / "replica")
    replica.start()
    with redis.Redis(port=master.port) as primary:
        primary.config_set("repl-diskless-sync-delay", 0)  # sync now, not in 5 s
    link = redis.Redis(port=replica.port)
    link.execute_command(  # type: ignore[no-untyped-call]
        "REPLICAOF", "127.0.0.1", str(master.port))
    deadline = time.monotonic() + 10
    while cast(dict[str, Any], link.info("replication")).get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica did not sync"
        time.sleep(0.05)
    link.close()
    watcher = Sentinel(tmp_path / "sentinel", master.port)
    yield watcher, master, replica
    watcher.stop()
    replica.stop()
    master.stop()


def test_uauth_follows_a_sentinel_failover(sentinel: tuple[Sentinel, RedisServer, RedisServer],
                                           tmp_path: Path) -> None:
    watcher, master, replica = sentinel
    url = f"redis+sentinel://127.0.0.1:{watcher.port}/{SERVICE}/0"
    store = open_store(url, redis_prefix=unique_prefix())
    assert isinstance(store, RedisStore)
    driver = Driver.of(make_app(tmp_path, store, time.time, UAUTH_STORAGE=url))
    user = driver.user()
    client, secret = driver.client()
    assert driver.http.get("/readyz").status_code == 200
    assert replicas_caught_up(master.port) == 1, "the replica has everything"

    master.stop()
    deadline = time.monotonic() + 20
    while True:  # requests answer 503 during the failover, then uauth recovers by itself
        try:
            store.ping()
            break
        except StorageUnavailable:
            assert time.monotonic() < deadline, "uauth did not find the new master"
            time.sleep(0.1)
    assert watcher.master_port() == replica.port, "the replica was promoted"
    assert driver.http.get("/readyz").status_code == 200

    driver.login()
    code = driver.code(client.client_id)
    token = driver.token(client.client_id, secret, code=code)
    assert token.status_code == 200, "writes go to the promoted replica"
    with driver.app.app_context():
        from uauth.extension import get_state

        assert get_state().users.get(user.id) is not None, "data from before the failover"
    store.close()

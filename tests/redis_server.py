"""A real redis-server owned by the test session, on a free port, that tests may stop and start.

Never a mock: the contract and end-to-end suites must meet the same Redis a deployment does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from typing import cast

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """``redis-server`` in a temporary folder; ``stop()``/``start()`` simulate an outage."""

    def __init__(self, directory: Path, port: int | None = None, *, persist: bool = False
                 ) -> None:
        self.directory = directory
        self.port = port or free_port()
        #: Keep data across stop()/start() (an append-only file, fsynced per write), as a
        #: production Redis does; the session's shared server keeps nothing on disk.
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.persist else "no", "--appendfsync", "always",
             "--dir", str(self.directory), "--daemonize", "no",
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        while time.monotonic() < deadline:
            try:
                client.ping()
                client.close()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.02)
        self.stop()
        log = (self.directory / "redis.log").read_text() if (self.directory / "redis.log").exists() else ""
        raise RuntimeError(f"redis-server did not start on port {self.port}: {log[-500:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def replicas_caught_up(port: int, replicas: int = 1, timeout: float = 5) -> int:
    """How many replicas of the primary on ``port`` have acknowledged everything it had written
    when called, waiting up to ``timeout`` for ``replicas`` of them. ``WAIT`` would not do here:
    it waits for the writes of the connection that sends it, so on a new connection it answers
    at once with every replica connected, whatever they have received. Replicas acknowledge
    their offset about once a second."""
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + timeout
    written: int | None = None
    try:
        while True:
            info = cast(dict[str, Any], client.info("replication"))
            if written is None:
                written = int(info["master_repl_offset"])
            caught_up = sum(1 for name, value in info.items()
                            if name.startswith("slave") and isinstance(value, dict)
                            and int(value.get("offset", -1)) >= written)
            if caught_up >= replicas or time.monotonic() > deadline:
                return caught_up
            time.sleep(0.05)
    finally:
        client.close()


def redis_required() -> bool:
    return os.environ.get("UAUTH_REQUIRE_REDIS") == "1"

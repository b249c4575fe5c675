"""Real PostgreSQL for the tests: a database of the session's own on the machine's server
(127.0.0.1:5432, trust auth), a schema per test inside it, and, for outage tests, a private
server on a free port that a test may stop and start (never the shared one).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg

from tests.redis_server import free_port

ADMIN_URL = os.environ.get("UAUTH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_required() -> bool:
    return os.environ.get("UAUTH_REQUIRE_POSTGRES") == "1"


def with_database(url: str, database: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{database}"


def with_options(url: str, options: str) -> str:
    """``url`` with libpq's ``options`` (server settings for its connections)."""
    return f"{url}?options={quote(options)}"


def with_schema(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema``: the tables uauth creates land there, so tests
    sharing a database never see each other's records."""
    return with_options(url, f"-csearch_path={schema}")


class SessionDatabase:
    """``CREATE DATABASE`` with a unique name; ``drop()`` removes it and its connections."""

    def __init__(self, admin_url: str = ADMIN_URL) -> None:
        self.admin_url = admin_url
        self.name = f"uauth_test_{uuid.uuid4().hex[:10]}"
        self.url = with_database(admin_url, self.name)

    def create(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"'.encode())

    def schema_url(self) -> str:
        """A new, empty schema in this database, as a storage URL."""
        schema = f"t{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
        return with_schema(self.url, schema)

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'.encode())


def _binaries() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise FileNotFoundError("PostgreSQL server binaries (initdb) are not installed")
    return found[-1].parent


class PostgresServer:
    """A private ``postgres`` on a free port in a temporary folder, for outage tests:
    ``stop()`` (fast shutdown) and ``start()`` keep the data, as a restart does."""

    def __init__(self) -> None:
        self.bin = _binaries()
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="uauth-pg-"))
        self.data = self.directory / "data"
        self.as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        if self.as_postgres:
            shutil.chown(self.directory, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "log"), "-w",
                  "-o", f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off -c shared_buffers=16MB", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

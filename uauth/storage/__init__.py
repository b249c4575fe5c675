"""Storage: one protocol (:class:`Store`), five backends (memory, SQLite, Redis, Redis Cluster,
PostgreSQL), chosen by a URL."""

from __future__ import annotations

from .base import Clock
from .base import Consumed
from .base import Entry
from .base import Kind
from .base import Mark
from .base import Record
from .base import StorageError
from .base import StorageUnavailable
from .base import Store
from .base import VersionedSchema
from .base import hash_key
from .base import system_clock

__all__ = [
    "Clock",
    "Consumed",
    "Entry",
    "Kind",
    "Mark",
    "Record",
    "StorageError",
    "StorageUnavailable",
    "Store",
    "VersionedSchema",
    "hash_key",
    "open_store",
    "sqlite_path",
    "system_clock",
]


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` (SQLAlchemy's convention)."""
    return url[len("sqlite:///"):]


def open_store(url: str, *, redis_prefix: str = "uauth:", clock: Clock = system_clock) -> Store:
    """The backend for a ``UAUTH_STORAGE`` URL (already validated by :mod:`uauth.core.settings`).

    Opening never connects: connections are made on first use, after gunicorn forks.
    """
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore(clock=clock)
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url), clock=clock)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(url, clock=clock)
    if scheme in ("redis+cluster", "rediss+cluster"):
        from .redis_cluster import RedisClusterStore

        return RedisClusterStore(url, prefix=redis_prefix, clock=clock)
    from .redis import RedisStore

    return RedisStore(url, prefix=redis_prefix, clock=clock)

"""Moving data: an online SQLite backup (``uauth backup``) and copying every live record from one
storage backend to another (``uauth migrate``), with TTLs, grants and consumed state intact.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections import Counter
from pathlib import Path

from uauth.storage import Entry
from uauth.storage import Store
from uauth.storage.sqlite import SQLiteStore


class TransferError(Exception):
    """The copy cannot be made as asked; the message says why."""


def backup_sqlite(store: SQLiteStore, dest: Path, *, overwrite: bool = False) -> Counter[str]:
    """Write a consistent copy of the live database to ``dest`` (mode 0600, one file, no WAL),
    check its integrity, and return its record counts per kind.

    The copy is made beside ``dest`` and renamed into place, so ``dest`` is never half-written.
    """
    if dest.exists() and not overwrite:
        raise TransferError(f"{dest} exists; choose another file or pass --force")
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    target = sqlite3.connect(partial)
    try:
        store.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
        verdict = target.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise TransferError(f"the copy failed its integrity check: {verdict}")
        counts: Counter[str] = Counter(dict(target.execute(
            "SELECT kind, count(*) FROM records GROUP BY kind").fetchall()))
    except BaseException:
        target.close()
        partial.unlink(missing_ok=True)
        raise
    target.close()
    os.replace(partial, dest)
    return counts


def copy_entry(target: Store, entry: Entry, now: float) -> bool:
    """Write one entry to ``target`` as it was: remaining TTL, grant, consumed. False if it
    expired meanwhile."""
    ttl = None
    if entry.expires_at is not None:
        remaining = entry.expires_at - now
        if remaining <= 0:
            return False
        ttl = max(1, math.ceil(remaining))
    target.save(entry.kind, entry.key, entry.record, ttl, grant_id=entry.grant_id)
    for _ in range(min(entry.consumed, 2)):  # consumed once, or "replayed" already
        target.consume(entry.kind, entry.key)
    return True


def migrate(source: Store, target: Store, *, now: float, overwrite: bool = False
            ) -> Counter[str]:
    """Copy every live record of ``source`` into ``target``; returns counts per kind.

    Refuses a target that holds records unless ``overwrite`` (records with the same key are
    replaced, others are kept).
    """
    target.ping()
    if not overwrite:
        held = sum(1 for _ in target.dump())
        if held:
            raise TransferError(f"the target already holds {held} records; pass --overwrite to "
                                "copy over them")
    copied: Counter[str] = Counter()
    for entry in source.dump():
        if copy_entry(target, entry, now):
            copied[entry.kind] += 1
    return copied


def compare(source: Store, target: Store) -> list[str]:
    """Records of ``source`` that ``target`` lacks or holds differently (after a migration)."""
    held = {(e.kind, e.key): e for e in target.dump()}
    problems = []
    for entry in source.dump():
        copy = held.get((entry.kind, entry.key))
        if copy is None:
            problems.append(f"{entry.kind} {entry.key[:12]}: missing")
        elif copy.record != entry.record or copy.grant_id != entry.grant_id:
            problems.append(f"{entry.kind} {entry.key[:12]}: differs")
        elif bool(copy.consumed) != bool(entry.consumed):
            problems.append(f"{entry.kind} {entry.key[:12]}: consumed state differs")
    return problems

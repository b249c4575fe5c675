"""Which of SQLite's tables and indexes an operation's commits write, page by page.

Every page a SQLite commit changes goes to the write-ahead log as one frame: a 24-byte header
and the page, two ``pwrite64`` calls (``python -m bench.syscalls`` counts them served). So the
pages an operation writes are its share of the kernel's work that instruction counts do not
see. ``python -m bench.wal_pages --op flow`` builds the app on SQLite as ``python -m
bench.profile`` does, runs the operation past the grant cap (every flow then evicts a family,
as at the bench's steady state), then counts the frames ``--count`` more operations add to the
log, and charges each to the table or index that holds its page (SQLite's ``dbstat``).

The log is emptied first (a checkpoint that truncates it), then a reader keeps a transaction
open on a connection of its own while the operations run: it reads the database file as it was,
so no checkpoint may copy frames into it, and the log is never started again from the
beginning. Every frame written stays in the file to be counted.
"""

from __future__ import annotations

import argparse
import sqlite3
import struct
import tempfile
from collections import Counter
from contextlib import closing
from pathlib import Path

from uauth.core.opaque import JWT
from uauth.core.settings import ACCESS_TOKEN_FORMATS

from .driver import OPERATIONS
from .driver import prepare
from .instructions import WARM
from .profile import InProcess
from .profile import build

#: The log's own header, then each frame's (page number, size after commit, salts, checksums).
WAL_HEADER = 32
FRAME_HEADER = 24


def frames(wal: bytes) -> list[tuple[int, bool]]:
    """Each frame of a log: its page number, and whether it ends a commit (its "size after
    commit" field is set only on a transaction's last frame)."""
    if len(wal) < WAL_HEADER:
        return []
    page_size = struct.unpack(">I", wal[8:12])[0]
    found = []
    offset = WAL_HEADER
    while offset + FRAME_HEADER + page_size <= len(wal):
        page, size_after_commit = struct.unpack(">II", wal[offset:offset + 8])
        found.append((page, size_after_commit != 0))
        offset += FRAME_HEADER + page_size
    return found


def owners(database: Path) -> dict[int, str]:
    """The table or index each page of ``database`` belongs to."""
    with closing(sqlite3.connect(database)) as conn:
        try:
            return dict(conn.execute("SELECT pageno, name FROM dbstat"))
        except sqlite3.OperationalError as exc:  # a SQLite built without the dbstat table
            raise SystemExit(f"this SQLite has no dbstat table ({exc}); the pages cannot be "
                             "charged to tables and indexes") from None


def count(op: str, operations: int, access_token_format: str) -> tuple[Counter[str], int]:
    """The frames ``operations`` runs of ``op`` write, by owner, and how many commits."""
    with tempfile.TemporaryDirectory(prefix="uauth-wal-") as tmp:
        app, target = build("sqlite", Path(tmp), None, access_token_format=access_token_format)
        _, run = prepare(target, op, lambda _: InProcess(app))
        for _ in range(WARM):
            run()
        database = Path(tmp) / "uauth.db"
        log = database.with_name(database.name + "-wal")
        reader = sqlite3.connect(database, isolation_level=None)
        try:
            busy, _, _ = reader.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                raise SystemExit("the log could not be emptied: another connection is busy")
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM records").fetchone()  # the file as it is now
            for _ in range(operations):
                run()
            written = frames(log.read_bytes())
        finally:
            reader.close()
        pages = owners(database)
    by_owner = Counter(pages.get(page, "(a page freed since)") for page, _ in written)
    return by_owner, sum(1 for _, commit in written if commit)


def table(op: str, operations: int, by_owner: Counter[str], commits: int) -> str:
    total = sum(by_owner.values())
    lines = [f"{op} on SQLite: {total / operations:.1f} pages written a {op} "
             f"({2 * total / operations:.1f} pwrite64 calls), {commits / operations:.2f} "
             f"commits, over {operations} operations",
             "", "| table or index | pages an operation |", "| --- | --- |"]
    lines += [f"| {owner} | {n / operations:.2f} |" for owner, n in by_owner.most_common()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.wal_pages", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--op", choices=[op for op in OPERATIONS if op != "bare"], default="flow")
    ap.add_argument("--count", type=int, default=200, help="operations counted")
    ap.add_argument("--access-token-format", choices=ACCESS_TOKEN_FORMATS, default=JWT,
                    help="the bench clients' access tokens (make bench's targets use opaque)")
    args = ap.parse_args(argv)
    by_owner, commits = count(args.op, args.count, args.access_token_format)
    print(table(args.op, args.count, by_owner, commits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A ``uauth serve`` worker keeps no memory from its password checks (uauth/ops/malloc.py)."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from tests.browser import Browser
from tests.live_server import LiveServer
from uauth.core.users import StoreUsers
from uauth.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="glibc's mmap threshold, read from /proc")


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS")) / 1024


def test_password_logins_leave_a_worker_as_big_as_the_first_did(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    live = LiveServer(instance, storage=f"sqlite:///{instance}/uauth.db", workers=1)
    assert live.cli("init").returncode == 0
    store = SQLiteStore(instance / "uauth.db")
    StoreUsers(store, lambda: 0.0).create("alice", "password123", {"email": "a@example.com"})
    store.close()
    live.start()
    try:
        assert live.process is not None
        master = live.process.pid
        worker = int(Path(f"/proc/{master}/task/{master}/children").read_text().split()[0])

        def login() -> None:
            browser = Browser(live.url)
            page = browser.http.get(live.url + "/login", timeout=10)
            done = browser.submit(page, {"username": "alice", "password": "password123"})
            assert done.status_code == 302, done.text[:300]

        login()
        after_one = _rss_mb(worker)
        for _ in range(4):
            login()
        # argon2id borrows 19 MiB per check; kept resident it would show here as +19 MB
        assert _rss_mb(worker) - after_one < 8, (after_one, _rss_mb(worker))
    finally:
        live.stop()

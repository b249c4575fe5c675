"""Issue 17 item 8: every file uauth writes is 0600 and every folder it creates 0700, whatever
the mode of an existing instance folder; start-up warns when others can read what is there."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app_driver import Driver
from tests.conftest import FakeClock
from uauth import create_app


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_files_are_owner_only_in_an_existing_open_folder(tmp_path: Path, clock: FakeClock,
                                                         loose_umask: None,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)  # as checkouts before 2026-12-05 shipped it
    os.chmod(instance, 0o755)
    (instance / "config.example.py").write_text("# shipped\n")
    with caplog.at_level(logging.WARNING, logger="uauth.instance"):
        app = create_app({"UAUTH_ISSUER": "http://localhost", "TESTING": True}, clock=clock,
                         instance_path=instance)
    d = Driver.of(app)
    d.user()  # a write: the database and its WAL files exist now
    for name in ("uauth.db", "uauth.db-wal", "uauth.db-shm", "secret_key", "config.py",
                 ".init.lock"):
        assert mode(instance / name) == 0o600, name
    assert mode(instance) == 0o755, "an existing folder is the operator's: warned, not changed"
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert str(instance) in warned and "readable by other local accounts" in warned
    assert "config.example.py" not in warned


def test_created_folders_are_0700_and_a_tight_instance_is_quiet(
        tmp_path: Path, clock: FakeClock, loose_umask: None,
        caplog: pytest.LogCaptureFixture) -> None:
    instance = tmp_path / "a" / "b" / "instance"
    with caplog.at_level(logging.WARNING, logger="uauth.instance"):
        app = create_app({"UAUTH_ISSUER": "http://localhost", "TESTING": True}, clock=clock,
                         instance_path=instance)
    Driver.of(app).user()
    for folder in (tmp_path / "a", tmp_path / "a" / "b", instance):
        assert mode(folder) == 0o700, folder
    assert mode(instance / "uauth.db") == 0o600
    assert not [r for r in caplog.records if r.name == "uauth.instance"]


def test_an_existing_readable_database_is_reported(tmp_path: Path, clock: FakeClock,
                                                   loose_umask: None,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    instance = tmp_path / "instance"
    create_app({"UAUTH_ISSUER": "http://localhost"}, clock=clock, instance_path=instance)
    os.chmod(instance / "uauth.db", 0o644)
    with caplog.at_level(logging.WARNING, logger="uauth.instance"):
        create_app({"UAUTH_ISSUER": "http://localhost"}, clock=clock, instance_path=instance)
    assert any("uauth.db" in r.getMessage() for r in caplog.records)

"""`uauth backup` (SQLite online backup) and `uauth migrate` (SQLite → Redis, every live record
with its TTL, grant and consumed state)."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import cast

import pytest
import redis
from click.testing import CliRunner
from click.testing import Result
from werkzeug.test import TestResponse

from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from tests.conftest import unique_prefix
from uauth.app import create_app
from uauth.core.consents import remember_consent
from uauth.ops.cli import cli
from uauth.ops.transfer import TransferError
from uauth.ops.transfer import backup_sqlite
from uauth.ops.transfer import compare
from uauth.ops.transfer import migrate
from uauth.storage import Store
from uauth.storage.redis import RedisStore
from uauth.storage.sqlite import SQLiteStore

SECRET = "transfer-test-secret-key-0123456789"


def populated(tmp_path: Path, clock: FakeClock) -> tuple[Driver, SQLiteStore, dict[str, str]]:
    """A provider on SQLite after real use: a user, a client, consent, tokens, a replayed code."""
    store = SQLiteStore(tmp_path / "source.sqlite3", clock=clock)
    driver = Driver.of(make_app(tmp_path / "a", store, clock, SECRET_KEY=SECRET))
    user = driver.user()
    client, secret = driver.client(allowed_origins=["https://app.example.com"])
    driver.login()
    code = driver.code(client.client_id, scope="openid offline_access")
    tokens = json_of(driver.token(client.client_id, secret, code=code))
    with driver.app.app_context():
        remember_consent(store, user.id, client.client_id, ["openid", "email"], ttl=3600,
                         now=int(clock()))
        # A rotated refresh token: consumed, kept for replay detection (issue 4's grant).
        store.save("refresh_token", "rotated-digest", {"client_id": client.client_id},
                   ttl=600, grant_id="g-rotated")
        store.consume("refresh_token", "rotated-digest")
    assert secret is not None
    return driver, store, {"access_token": tokens["access_token"], "secret": secret,
                           "refresh_token": tokens["refresh_token"], "client_id": client.client_id}


def use_old_tokens(tmp_path: Path, store: Store, clock: FakeClock, tokens: dict[str, str]
                   ) -> tuple[TestResponse, TestResponse]:
    """A provider on the store the records moved to, given ``populated``'s tokens: the access
    token must still validate and the refresh token refresh (users and signing keys moved).
    Returns that refresh and a replay of the same refresh token, for the caller to judge."""
    moved = Driver.of(make_app(tmp_path / "b", store, clock, SECRET_KEY=SECRET))
    info = moved.http.get("/userinfo",
                          headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 200, "users and signing keys moved: old tokens still validate"
    refreshed = moved.token(tokens["client_id"], tokens["secret"], grant_type="refresh_token",
                            refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    again = moved.token(tokens["client_id"], tokens["secret"], grant_type="refresh_token",
                        refresh_token=tokens["refresh_token"])
    return refreshed, again


def test_migrate_to_redis_keeps_every_record_ttl_and_consumed_state(
        tmp_path: Path, clock: FakeClock, redis_url: str) -> None:
    driver, source, tokens = populated(tmp_path, clock)
    prefix = unique_prefix()
    target = RedisStore(redis_url, prefix=prefix, clock=clock)
    counts = migrate(source, target, now=clock())
    assert {"client", "client_origin", "user", "username", "consent", "refresh_token",
            "authorization_code", "keyset"} <= set(counts)
    assert compare(source, target) == []
    assert sum(counts.values()) == sum(1 for _ in source.dump())
    raw = redis.Redis.from_url(redis_url)
    for entry in source.dump():
        left = cast(int, raw.pttl(f"{prefix}r:{entry.kind}:{entry.key}")) / 1000
        if entry.expires_at is None:
            assert left == -0.001, f"{entry.kind} never expires"
        else:
            assert abs(left - (entry.expires_at - clock())) < 2, f"{entry.kind} keeps its TTL"
    raw.close()

    replayed = target.consume("refresh_token", "rotated-digest")
    assert replayed is not None and not replayed.first, "a rotated one is still a replay"
    assert target.revoke_grant("g-rotated") == 1, "grant families survive the move"
    with pytest.raises(TransferError, match="already holds"):
        migrate(source, target, now=clock())

    refreshed, again = use_old_tokens(tmp_path, target, clock, tokens)
    assert json_of(refreshed)["refresh_token"] != tokens["refresh_token"], "rotated on the new store"
    assert again.status_code == 400 and json_of(again)["error"] == "invalid_grant"
    target.close()
    source.close()


def test_online_backup_is_consistent_and_private(tmp_path: Path, clock: FakeClock) -> None:
    driver, store, _ = populated(tmp_path, clock)
    writer = SQLiteStore(store.path, clock=clock)
    stop = threading.Event()

    def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            writer.save("busy", str(n), {"n": n}, ttl=60)
            n += 1

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        dest = tmp_path / "backups" / "uauth-backup.db"
        dest.parent.mkdir()
        counts = backup_sqlite(store, dest)
    finally:
        stop.set()
        thread.join()
    assert dest.stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(dest.parent)) == ["uauth-backup.db"], "one file, nothing beside it"
    with sqlite3.connect(dest) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    copy = SQLiteStore(dest, clock=clock)
    for kind in ("user", "client", "keyset", "consent", "refresh_token"):
        assert counts[kind] >= 1
        assert dict(copy.scan(kind)) == dict(store.scan(kind)), kind
    with pytest.raises(TransferError, match="exists"):
        backup_sqlite(store, dest)
    copy.close()
    writer.close()
    store.close()


def uauth(instance: Path, *args: str, env: dict[str, str] | None = None,
          stdin: str | None = None) -> Result:
    """The CLI in-process (click's runner): the operator's commands without an interpreter each."""
    return CliRunner().invoke(cli, ["--instance", str(instance), *args], obj=create_app,
                              env=env, input=stdin)


def test_cli_backup_and_migrate_then_serve_from_redis(tmp_path: Path, redis_url: str) -> None:
    instance = tmp_path / "instance"
    assert uauth(instance, "init").exit_code == 0
    added = uauth(instance, "user", "add", "dora", "--password-stdin", stdin="password123\n")
    assert added.exit_code == 0, added.output
    backup = uauth(instance, "backup", str(tmp_path / "b.db"))
    assert backup.exit_code == 0 and "1 user" in backup.stdout and "secret_key" in backup.stdout

    prefix = unique_prefix()
    moved = uauth(instance, "migrate", "--to", redis_url, "--prefix", prefix)
    assert moved.exit_code == 0, moved.output
    assert "verified" in moved.stdout and f"UAUTH_REDIS_PREFIX={prefix}" in moved.stdout
    again = uauth(instance, "migrate", "--to", redis_url, "--prefix", prefix)
    assert again.exit_code == 1 and "--overwrite" in again.stderr

    on_redis = {"UAUTH_STORAGE": redis_url, "UAUTH_REDIS_PREFIX": prefix}
    assert "dora" in uauth(instance, "user", "list", env=on_redis).stdout
    refused = uauth(instance, "backup", str(tmp_path / "c.db"), env=on_redis)
    assert refused.exit_code == 1 and "SQLite" in refused.stderr
    checked = uauth(instance, "check", env={
        **on_redis, "UAUTH_REQUIRED_ATTRIBUTES": '["birthdate", "phone_number", "zoneinfo", "address"]'})
    assert checked.exit_code == 0, checked.output


def test_the_target_must_differ_from_the_source(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    assert uauth(instance, "init").exit_code == 0
    same = uauth(instance, "migrate", "--to", f"sqlite:///{instance}/uauth.db")
    assert same.exit_code == 1 and "already uses" in same.stderr
    bad = uauth(instance, "migrate", "--to", "mysql://db/uauth")
    assert bad.exit_code == 1 and "unknown storage scheme" in bad.stderr
    nameless = uauth(instance, "migrate", "--to", "postgres://db")
    assert nameless.exit_code == 1 and "must name a database" in nameless.stderr

"""Signing keys in storage: sealed, shared by every worker, rotated and retired on schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner
from click.testing import Result
from flask import Flask

from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from tests.conftest import run_in_processes
from uauth.app import create_app
from uauth.core.keyring import KeyRing
from uauth.core.keyring import Policy
from uauth.core.keyring import plan
from uauth.core.keys import new_signing_key
from uauth.core.keys import pem_of
from uauth.core.keys import sealer
from uauth.core.settings import ConfigError
from uauth.extension import get_state
from uauth.ops.cli import cli
from uauth.storage import Store
from uauth.storage.sqlite import SQLiteStore

DAY = 86400
SECRET = "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
ROTATING = {"SECRET_KEY": SECRET, "UAUTH_KEY_ROTATION_DAYS": 30, "UAUTH_KEY_PREPUBLISH": DAY,
            "UAUTH_ACCESS_TOKEN_TTL": 7200, "UAUTH_ID_TOKEN_TTL": 3600,
            "UAUTH_KEY_CHECK_INTERVAL": 5}


def sign_in(driver: Driver, client_id: str, secret: str | None) -> dict[str, Any]:
    """A full code flow; logs in again because a month may have passed."""
    driver.http.delete_cookie("uauth_session")
    driver.login()
    response = driver.token(client_id, secret, code=driver.code(client_id))
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = json_of(response)
    return tokens


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def published(driver: Driver) -> list[str]:
    return [k["kid"] for k in json_of(driver.http.get("/jwks.json"))["keys"]]


def userinfo(driver: Driver, access_token: str) -> int:
    response = driver.http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    return response.status_code


def test_rotation_prepublishes_switches_and_retires(store: Store, tmp_path: Path,
                                                     clock: FakeClock) -> None:
    driver = Driver.of(make_app(tmp_path, store, clock, **ROTATING))
    driver.user()
    client, secret = driver.client()
    first = sign_in(driver, client.client_id, secret)
    old = kid(first["id_token"])
    assert published(driver) == [old] and kid(first["access_token"]) == old

    clock.advance(29 * DAY + 10)  # rotation due, minus the pre-publication day
    before = sign_in(driver, client.client_id, secret)
    keys = published(driver)
    assert len(keys) == 2 and old in keys, "the next key is published before it signs"
    new = next(k for k in keys if k != old)
    assert kid(before["id_token"]) == old and kid(before["access_token"]) == old

    clock.advance(DAY - 70)  # one minute before the new key takes over
    last_old = sign_in(driver, client.client_id, secret)
    clock.advance(120)
    after = sign_in(driver, client.client_id, secret)
    assert kid(last_old["access_token"]) == old and kid(after["access_token"]) == new
    assert kid(after["id_token"]) == new
    assert userinfo(driver, last_old["access_token"]) == 200, "old key still verifies"
    assert userinfo(driver, after["access_token"]) == 200
    jwks = jwt.PyJWKSet.from_dict(json_of(driver.http.get("/jwks.json")))
    for token, expected in ((last_old["id_token"], old), (after["id_token"], new)):
        key = jwks[kid(token)]
        assert key.key_id == expected
        jwt.decode(token, key.key, algorithms=["RS256"], audience=client.client_id,
                   issuer="http://localhost", options={"verify_exp": False, "verify_iat": False})

    clock.advance(7200)  # every token the old key signed has now expired
    assert published(driver) == [new], "the old key is retired"
    with driver.app.app_context():
        assert get_state().keys.verification_key(old) is None


def test_rotation_off_still_retires_superseded_keys(clock: FakeClock) -> None:
    policy = Policy(algs=("RS256",), rotation=0, prepublish=DAY, max_token_ttl=3600)
    now = int(clock())
    old = new_signing_key("RS256", now - 10 * DAY)
    assert plan([old], policy, now) == ([], []), "no automatic rotation when it is off"
    newer = new_signing_key("RS256", now - 3599)
    assert plan([old, newer], policy, now) == ([], [])
    assert plan([old, newer], policy, now + 2) == ([], [old.kid])
    assert plan([], policy, now) == ([("RS256", now)], [])


def test_a_rotation_elsewhere_reaches_every_worker(tmp_path: Path, clock: FakeClock) -> None:
    """Two apps on one store play two workers (or hosts): one rotates, the other notices within
    the check interval, and verifies the new key's tokens at once."""
    path = tmp_path / "shared.sqlite3"
    one = make_app(tmp_path / "a", SQLiteStore(path, clock=clock), clock, **ROTATING)
    two = make_app(tmp_path / "b", SQLiteStore(path, clock=clock), clock, **ROTATING)
    with one.app_context():
        ring_one = get_state().keys
        before = [k["kid"] for k in ring_one.jwks()["keys"]]
    with two.app_context():
        assert [k["kid"] for k in get_state().keys.jwks()["keys"]] == before, "one key set"
        fresh = get_state().keys.rotate(["RS256"], immediately=True)[0]
        assert fresh.created == int(clock()) + 1, "a second after the key it replaces"
        clock.advance(1)
        from uauth.core.tokens import sign

        token = sign(get_state(), {"iss": "http://localhost", "sub": "x", "iat": 0,
                                   "exp": int(clock()) + 60}, typ="at+jwt")
    assert kid(token) == fresh.kid
    with one.app_context():
        assert fresh.kid not in [k["kid"] for k in ring_one.jwks()["keys"]], "until the check"
        assert ring_one.verification_key(fresh.kid) is not None, "an unknown kid forces a check"
    clock.advance(4)
    with one.app_context():
        assert {k["kid"] for k in ring_one.jwks()["keys"]} == set(before) | {fresh.kid}
        assert ring_one.signing_key("RS256").kid == fresh.kid


def _start_ring(path: str) -> None:
    store = SQLiteStore(path)
    policy = Policy(algs=("RS256", "ES256"), rotation=0, prepublish=0, max_token_ttl=60)
    ring = KeyRing(store, sealer([SECRET]), policy, __import__("time").time, check_interval=5)
    ring.start()
    assert ring.ready()


def test_workers_starting_together_create_one_key_per_algorithm(tmp_path: Path) -> None:
    path = str(tmp_path / "race.sqlite3")
    run_in_processes(_start_ring, path)
    record = SQLiteStore(path).find("keyset", "current")
    assert record is not None
    assert sorted(k["alg"] for k in record["keys"]) == ["ES256", "RS256"]


def test_keys_are_sealed_with_the_secret_key(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "k.sqlite3"
    app = make_app(tmp_path / "a", SQLiteStore(path, clock=clock), clock, SECRET_KEY=SECRET)
    with app.app_context():
        kids = [k["kid"] for k in get_state().keys.jwks()["keys"]]
    data = path.read_bytes() + (path.parent / "k.sqlite3-wal").read_bytes()
    assert b"PRIVATE KEY" not in data and b"keyset" in data
    with pytest.raises(ConfigError, match="cannot be opened with this SECRET_KEY"):
        make_app(tmp_path / "b", SQLiteStore(path, clock=clock), clock, SECRET_KEY="other")
    renewed = make_app(tmp_path / "c", SQLiteStore(path, clock=clock), clock,
                       SECRET_KEY="new-secret", SECRET_KEY_FALLBACKS=[SECRET])
    with renewed.app_context():
        assert [k["kid"] for k in get_state().keys.jwks()["keys"]] == kids


def test_key_files_from_before_are_imported(tmp_path: Path, clock: FakeClock) -> None:
    legacy = new_signing_key("RS256", int(clock()) - 100)
    keys_dir = tmp_path / "instance" / "keys"
    keys_dir.mkdir(parents=True)
    (keys_dir / f"RS256-{legacy.created}.pem").write_bytes(pem_of(legacy))
    app: Flask = make_app(tmp_path, SQLiteStore(tmp_path / "db", clock=clock), clock)
    with app.app_context():
        assert [k["kid"] for k in get_state().keys.jwks()["keys"]] == [legacy.kid]


def test_prepublication_must_be_shorter_than_the_rotation(tmp_path: Path,
                                                          clock: FakeClock) -> None:
    from uauth.storage.memory import MemoryStore

    with pytest.raises(ConfigError, match="UAUTH_KEY_PREPUBLISH"):
        make_app(tmp_path, MemoryStore(clock=clock), clock, UAUTH_KEY_ROTATION_DAYS=1,
                 UAUTH_KEY_PREPUBLISH=DAY)


def uauth(instance: Path, *args: str) -> Result:
    """The CLI in-process (click's runner): the same commands, without an interpreter each."""
    return CliRunner().invoke(cli, ["--instance", str(instance), *args], obj=create_app)


def test_cli_lists_rotates_and_retires(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    assert uauth(instance, "init").exit_code == 0
    first = uauth(instance, "keys", "list").stdout.splitlines()[1].split("\t")
    assert first[1:3] == ["RS256", "active"]
    rotated = uauth(instance, "keys", "rotate")
    assert rotated.exit_code == 0 and "published now, signs from" in rotated.stdout
    retired = uauth(instance, "keys", "retire", first[0])
    assert retired.exit_code == 0 and "signs from now on" in retired.stdout
    rows = [line.split("\t") for line in uauth(instance, "keys", "list").stdout.splitlines()[1:]]
    assert first[0] not in [row[0] for row in rows]
    assert sorted(row[2] for row in rows) == ["active", "next"]
    unknown = uauth(instance, "keys", "retire", "nope")
    assert unknown.exit_code == 1
    assert unknown.stderr == "error: no signing key 'nope'; see `uauth keys list`\n"
    dashed = uauth(instance, "keys", "retire", "-Xq_3")  # thumbprints may start with "-"
    assert dashed.exit_code == 1
    assert dashed.stderr == "error: no signing key '-Xq_3'; see `uauth keys list`\n"
    disabled = uauth(instance, "keys", "rotate", "--alg", "ES256")
    assert disabled.exit_code == 1 and "add it to UAUTH_SIGNING_ALGS" in disabled.stderr

"""Issue 17 item 3: only the code's own client can trigger the replay revocation."""

from __future__ import annotations

from pathlib import Path

from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.storage.memory import MemoryStore


def test_a_foreign_client_presenting_a_used_code_revokes_nothing(tmp_path: Path,
                                                                 clock: FakeClock) -> None:
    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    d.user()
    client, secret = d.client(always_issue_refresh_token=True)
    attacker, _ = d.client(name="Attacker", public=True)
    d.login()
    code = d.code(client.client_id)
    tokens = json_of(d.token(client.client_id, secret, code=code))
    assert "refresh_token" in tokens
    stolen = d.token(attacker.client_id, None, code=code, code_verifier="x" * 43)
    assert stolen.status_code == 400 and json_of(stolen)["error"] == "invalid_grant"
    refreshed = d.http.post("/token", data={"grant_type": "refresh_token",
                                            "refresh_token": tokens["refresh_token"]},
                            auth=(client.client_id, secret))
    assert refreshed.status_code == 200, "the legitimate grant must survive a foreign replay"


def test_a_foreign_client_presenting_an_unused_code_does_not_burn_it(tmp_path: Path,
                                                                     clock: FakeClock) -> None:
    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    d.user()
    client, secret = d.client()
    attacker, _ = d.client(name="Attacker", public=True)
    d.login()
    code = d.code(client.client_id)
    stolen = d.token(attacker.client_id, None, code=code, code_verifier="x" * 43)
    assert stolen.status_code == 400 and json_of(stolen)["error"] == "invalid_grant"
    assert d.token(client.client_id, secret, code=code).status_code == 200


def test_the_own_clients_replay_still_revokes(tmp_path: Path, clock: FakeClock) -> None:
    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    d.user()
    client, secret = d.client(always_issue_refresh_token=True)
    d.login()
    code = d.code(client.client_id)
    tokens = json_of(d.token(client.client_id, secret, code=code))
    assert d.token(client.client_id, secret, code=code).status_code == 400
    refreshed = d.http.post("/token", data={"grant_type": "refresh_token",
                                            "refresh_token": tokens["refresh_token"]},
                            auth=(client.client_id, secret))
    assert refreshed.status_code == 400

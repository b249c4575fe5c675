"""The audit trail: a JSON event per security-relevant action, never a secret in it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from tests.app_driver import PASSWORD
from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.storage.memory import MemoryStore


def events(buffer: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "uauth.audit"]


def test_a_flow_leaves_a_trail_without_a_single_secret(tmp_path: Path, clock: FakeClock,
                                                       log_lines: io.StringIO) -> None:
    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    alice = d.user()
    client, secret = d.client(always_issue_refresh_token=True)
    assert secret
    d.login(password="wrong-password-1")
    d.login()
    code = d.code(client.client_id, state="st")
    tokens = json_of(d.token(client.client_id, secret, code=code))
    replay = d.token(client.client_id, secret, code=code)
    assert json_of(replay)["error"] == "invalid_grant"
    code2 = d.code(client.client_id)
    second = json_of(d.token(client.client_id, secret, code=code2))
    refreshed = d.http.post("/token", data={"grant_type": "refresh_token",
                                            "refresh_token": second["refresh_token"]},
                            headers=basic_auth(client.client_id, secret))
    assert refreshed.status_code == 200
    revoked = d.http.post("/revoke", data={"token": json_of(refreshed)["refresh_token"],
                                           "client_id": client.client_id,
                                           "client_secret": secret})
    assert revoked.status_code == 200
    d.http.post("/token", data={"grant_type": "client_credentials", "client_id": client.client_id,
                                "client_secret": "not-the-secret"})
    trail = events(log_lines)
    names = [e["event"] for e in trail]
    for expected in ("login.failed", "login.succeeded", "consent.given", "token.issued",
                     "replay.detected", "family.revoked", "token.refreshed", "token.revoked",
                     "client_auth.failed"):
        assert expected in names, (expected, names)
    given = next(e for e in trail if e["event"] == "consent.given")
    assert given["client_id"] == client.client_id and given["user_id"] == alice.id
    assert given["ip"] == "127.0.0.1" and given["request_id"] not in ("-", None)
    issued = next(e for e in trail if e["event"] == "token.issued")
    assert issued["grant_type"] == "authorization_code" and issued["user_id"] == alice.id
    text = log_lines.getvalue()
    secrets = [PASSWORD, "wrong-password-1", secret, code, code2, tokens["access_token"],
               tokens["refresh_token"], tokens["id_token"], second["refresh_token"],
               second["access_token"], json_of(refreshed)["refresh_token"],
               json_of(refreshed)["access_token"], "not-the-secret"]
    for value in secrets:
        assert value not in text
    assert all(parse_qs(urlsplit(str(e.get("msg"))).query) == {} for e in trail)


def test_cli_changes_are_audited(tmp_path: Path) -> None:
    """In the instance's audit.log; on stderr too only with --verbose (issue 18 item 11)."""
    env = {"UAUTH_INSTANCE": str(tmp_path / "instance"), "PATH": "/usr/bin:/bin"}
    uauth = [sys.executable, "-m", "uauth"]
    assert subprocess.run([*uauth, "init"], env=env, timeout=60).returncode == 0
    run = subprocess.run([*uauth, "user", "add", "carol", "--password-stdin"],
                         input="a-long-password\n", capture_output=True, text=True, env=env,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stderr == "", "no audit line on stderr without --verbose"
    log = (tmp_path / "instance" / "audit.log").read_text()
    event = json.loads(log.strip().splitlines()[-1])
    assert event["event"] == "admin" and event["action"] == "user.add"
    assert event["user_id"] in run.stdout and event["actor"]
    assert "a-long-password" not in log
    verbose = subprocess.run([*uauth, "--verbose", "user", "add", "dan", "--password-stdin"],
                             input="a-long-password\n", capture_output=True, text=True, env=env,
                             timeout=60)
    assert json.loads(verbose.stderr.strip().splitlines()[-1])["action"] == "user.add"
    assert len((tmp_path / "instance" / "audit.log").read_text().splitlines()) == 2


def test_a_callers_text_cannot_forge_fields_in_the_text_line(tmp_path: Path, clock: FakeClock,
                                                             log_lines: io.StringIO) -> None:
    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    d.http.post("/token", data={"grant_type": "client_credentials",
                                "client_id": "evil user_id=alice", "client_secret": "x"})
    failed = next(e for e in events(log_lines) if e["event"] == "client_auth.failed")
    assert failed["client_id"] == "evil user_id=alice" and "user_id" not in failed
    assert 'client_id="evil user_id=alice"' in str(failed["msg"]), failed["msg"]


def test_a_callers_unprintable_or_long_text_is_cut_down(log_lines: io.StringIO) -> None:
    from uauth.core.audit import audit

    audit("client_auth.failed", client_id="evil\n{\"user_id\": \"alice\"}\x1b[31m",
          reason="x" * 300, grant="plain")
    event = next(e for e in events(log_lines) if e["event"] == "client_auth.failed")
    assert event["client_id"] == 'evil{"user_id": "alice"}[31m', "no line break, no escape"
    assert event["reason"] == "x" * 128 and event["grant"] == "plain"
    assert "\n" not in str(event["msg"]) and "\x1b" not in str(event["msg"])


def test_revoking_an_app_is_audited(tmp_path: Path, clock: FakeClock,
                                    log_lines: io.StringIO) -> None:
    from tests.test_account import form_post

    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    alice = d.user(given_name="Ada")
    client, _ = d.client(name="Photo App")
    d.login()
    d.code(client.client_id)
    page = d.http.get("/account")
    assert form_post(d, page, "/account/apps", "app", client_id=client.client_id).status_code == 302
    revoked = next(e for e in events(log_lines) if e["event"] == "consent.revoked")
    assert revoked["client_id"] == client.client_id and revoked["user_id"] == alice.id
    assert revoked["grants"] == 1

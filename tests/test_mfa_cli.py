"""Operators' second-factor commands, run as an operator runs them (a subprocess), against a
real SQLite instance that an in-process app then serves."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyotp
import pytest

from tests.browser import csrf_token
from tests.test_cli import uauth
from uauth import create_app
from uauth.core.clients import get_client
from uauth.extension import get_state


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    path = tmp_path / "instance"
    assert uauth(path, "init").returncode == 0
    added = uauth(path, "user", "add", "dora", "--password-stdin", stdin="password123\n")
    assert added.returncode == 0, added.stderr
    return path


def sign_in(instance: Path, code: str | None) -> int:
    """Password, then (if asked) the code: the status of the last answer."""
    app = create_app({"UAUTH_ISSUER": "http://localhost", "TESTING": True},
                     instance_path=instance)
    http = app.test_client()
    page = http.get("/login")
    response = http.post("/login", data={"csrf_token": csrf_token(page.text), "username": "dora",
                                         "password": "password123"})
    if not response.headers["Location"].startswith("/login/second-factor"):
        return 0  # no second factor asked for
    page = http.get(response.headers["Location"])
    answer = http.post(page.request.full_path, data={"csrf_token": csrf_token(page.text),
                                                     "otp": code or ""})
    return answer.status_code


def test_totp_enroll_list_and_reset(instance: Path) -> None:
    enrolled = uauth(instance, "user", "totp", "enroll", "dora", "--json")
    assert enrolled.returncode == 0, enrolled.stderr
    data = json.loads(enrolled.stdout)
    assert data["otpauth_uri"].startswith("otpauth://totp/") and data["secret"] in \
        data["otpauth_uri"]
    assert sign_in(instance, pyotp.TOTP(data["secret"]).at(int(time.time()))) == 302, \
        "active at once"

    listed = uauth(instance, "user", "mfa", "list", "dora")
    assert listed.returncode == 0 and "\ttotp\tAuthenticator app\t" in listed.stdout
    assert "1 factor(s)" in listed.stdout and "last used 20" in listed.stdout

    reset = uauth(instance, "user", "mfa", "reset", "dora")
    assert reset.returncode == 0 and "removed the second factors of dora" in reset.stdout
    audit_log = (instance / "audit.log").read_text()
    assert "user.mfa.reset" in audit_log, "the reset is audited (to the instance's audit log)"
    assert "0 factor(s)" in uauth(instance, "user", "mfa", "list", "dora").stdout
    assert sign_in(instance, None) == 0, "no second factor after the reset"
    missing = uauth(instance, "user", "mfa", "reset", "nobody")
    assert missing.returncode == 1 and "no user 'nobody'" in missing.stderr


def test_client_require_mfa_flags(instance: Path) -> None:
    added = uauth(instance, "client", "add", "--name", "Payroll", "--redirect-uri",
                  "https://payroll.example.com/cb", "--require-mfa", "--json")
    assert added.returncode == 0, added.stderr
    client_id = json.loads(added.stdout)["client_id"]
    app = create_app({"UAUTH_ISSUER": "http://localhost"}, instance_path=instance)

    def required() -> bool:
        with app.app_context():
            found = get_client(get_state().store, client_id)
            assert found is not None
            return found.require_mfa

    assert required()
    updated = uauth(instance, "client", "update", client_id, "--no-require-mfa")
    assert updated.returncode == 0 and "require_mfa" in updated.stdout, updated.stderr
    assert not required()
    assert uauth(instance, "client", "update", "nope", "--require-mfa").returncode == 1


def test_check_passes_when_every_sign_in_needs_a_second_factor(instance: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "UAUTH_MFA": "required", "UAUTH_ISSUER": "http://localhost:5000"}
    checked = subprocess.run([sys.executable, "-m", "uauth", "--instance", str(instance),
                              "check"], capture_output=True, text=True, timeout=120, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "POST second factor (TOTP) -> 302" in checked.stdout
    assert "deployment works" in checked.stdout
    app = create_app({"UAUTH_ISSUER": "http://localhost"}, instance_path=instance)
    with app.app_context():
        assert [e.kind for e in get_state().store.dump() if e.kind == "factor"] == []

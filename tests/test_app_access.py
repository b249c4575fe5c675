"""Issue 17, "also decide": offline_access refresh tokens outlive a login (OIDC Core §11), but
the owner can end every app's access at once when changing the password or signing out
everywhere, and an operator's disable or password reset always ends it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.app_driver import PASSWORD
from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.browser import csrf_token
from tests.conftest import FakeClock
from uauth import create_app
from uauth.core.records import REFRESH
from uauth.extension import get_state
from uauth.storage import hash_key

OFFLINE = "openid offline_access"


def offline_token(d: Driver) -> tuple[Any, str | None, dict[str, Any]]:
    client, secret = d.client(name="Photo App")
    token = json_of(d.token(client.client_id, secret, code=d.code(client.client_id, scope=OFFLINE)))
    assert "refresh_token" in token
    return client, secret, token


def refresh(d: Driver, client: Any, secret: str | None, token: dict[str, Any]) -> int:
    return int(d.http.post("/token", data={"grant_type": "refresh_token",
                                           "refresh_token": token["refresh_token"]},
                           auth=(client.client_id, secret)).status_code)


def change_password(d: Driver, *, end_apps: bool) -> Any:
    page = d.http.get("/account")
    data = {"pw-csrf_token": csrf_token(page.text, "pw"), "pw-current_password": PASSWORD,
            "pw-new_password": "a new secret", "pw-confirm": "a new secret"}
    if end_apps:
        data["pw-end_app_access"] = "y"
    return d.http.post("/account/password", data=data)


@pytest.fixture
def driver(tmp_path: Path, clock: FakeClock) -> Driver:
    app = create_app({"UAUTH_ISSUER": "http://localhost", "TESTING": True}, clock=clock,
                     instance_path=tmp_path / "instance")
    d = Driver.of(app)
    d.user()
    d.login()
    return d


def test_offline_access_survives_a_plain_password_change(driver: Driver) -> None:
    client, secret, token = offline_token(driver)
    assert change_password(driver, end_apps=False).status_code == 302
    assert refresh(driver, client, secret, token) == 200, "the documented default"


def test_the_owner_can_end_app_access_with_the_password_change(driver: Driver) -> None:
    client, secret, token = offline_token(driver)
    page = driver.http.get("/account")
    assert "Also end app access" in page.text
    assert change_password(driver, end_apps=True).status_code == 302
    assert "no app has access to your account any more" in driver.http.get("/account").text
    assert refresh(driver, client, secret, token) == 400


def test_the_owner_can_end_app_access_when_signing_out_everywhere(driver: Driver) -> None:
    client, secret, token = offline_token(driver)
    page = driver.http.get("/account/sessions")
    assert "Also end app access" in page.text
    done = driver.http.post("/account/sessions", data={
        "csrf_token": csrf_token(page.text), "everywhere": "yes", "end_app_access": "y"})
    assert done.status_code == 200
    assert refresh(driver, client, secret, token) == 400


def cli(instance: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uauth", "--instance", str(instance), *args],
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_an_operator_disable_or_set_password_ends_app_access(tmp_path: Path,
                                                               driver: Driver) -> None:
    client, secret, token = offline_token(driver)
    reset = cli(tmp_path / "instance", "user", "set-password", "alice", "--password-stdin",
                stdin="an operator's reset\n")
    assert reset.returncode == 0, reset.stderr
    assert "access of 1 app(s)" in reset.stdout
    assert refresh(driver, client, secret, token) == 400
    driver.login(password="an operator's reset")
    client2, secret2, token2 = offline_token(driver)
    disabled = cli(tmp_path / "instance", "user", "disable", "alice")
    assert disabled.returncode == 0, disabled.stderr
    with driver.app.app_context():
        assert get_state().store.find(REFRESH, hash_key(token2["refresh_token"])) is None, (
            "re-enabling the user must not revive the app's refresh tokens")

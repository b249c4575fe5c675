"""How UAuth wires itself into host apps set up in other orders and shapes than Notes."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from flask import Flask
from flask import request
from flask_login import LoginManager
from flask_login import UserMixin
from flask_login import login_user
from flask_wtf import CSRFProtect

from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.conftest import FakeClock
from uauth import UAuth
from uauth.core.models import User


class DictUsers:
    """A host's user directory in a dict: the protocol, and nothing of uauth's storage."""

    def __init__(self, *users: tuple[User, str]) -> None:
        self.users = {user.id: (user, password) for user, password in users}

    def get(self, user_id: str) -> User | None:
        found = self.users.get(user_id)
        return found[0] if found else None

    def find_by_username(self, username: str) -> User | None:
        return next((u for u, _ in self.users.values() if u.username == username), None)

    def authenticate(self, username: str, password: str) -> User | None:
        user = self.find_by_username(username)
        if user is None or not hmac.compare_digest(self.users[user.id][1], password):
            return None
        return user


CAROL = User(id="u-carol", username="carol", profile={"name": "Carol", "email": "c@example.com"})


def host_app(tmp_path: Path, **config: Any) -> Flask:
    app = Flask("host", instance_path=str(tmp_path / "host"))
    app.config.update(SECRET_KEY="host-secret", UAUTH_ISSUER="http://localhost",
                      UAUTH_STORAGE="memory://", **config)
    return app


def authorize_query(client_id: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
            "scope": "openid profile email"}


def test_without_a_host_login_manager_uauth_brings_its_own(tmp_path: Path) -> None:
    app = host_app(tmp_path)
    UAuth(app, users=DictUsers((CAROL, "carol-password")))
    assert app.login_manager.login_view == "uauth.ui.login"  # type: ignore[attr-defined]
    driver = Driver.of(app)
    client, secret = driver.client()
    assert driver.login("carol", "wrong").status_code == 401
    assert driver.login("carol", "carol-password").status_code == 302
    token = driver.token(client.client_id, secret, code=driver.code(
        client.client_id, scope="openid profile email"))
    assert token.status_code == 200
    info = driver.http.get("/userinfo",
                           headers={"Authorization": f"Bearer {json_of(token)['access_token']}"})
    sub = jwt.decode(json_of(token)["id_token"], options={"verify_signature": False})["sub"]
    assert sub != "u-carol", "pairwise by default, with a host's directory too"
    assert info.json == {"sub": sub, "name": "Carol", "email": "c@example.com",
                         "email_verified": False, "preferred_username": "carol"}


def _host_with_login(tmp_path: Path, users: DictUsers, clock: Any = None, **config: Any
                     ) -> Flask:
    app = host_app(tmp_path, **config)
    manager = LoginManager(app)
    manager.login_view = "host_login"
    manager.user_loader(lambda user_id: users.get(user_id) or Ghost(user_id))

    @app.route("/host-login", methods=["GET", "POST"])
    def host_login() -> str:
        if request.method == "POST":
            user_id = request.form["user_id"]
            login_user(users.get(user_id) or Ghost(user_id), remember=True)
        return "the host's login page"

    UAuth(app, users=users, clock=clock)
    return app


class Ghost(UserMixin):  # type: ignore[misc]
    """A user the host knows and the directory does not."""

    def __init__(self, user_id: str) -> None:
        self.id = user_id


def test_the_host_login_page_is_used_unless_configured_otherwise(tmp_path: Path) -> None:
    users = DictUsers((CAROL, "pw"))
    driver = Driver.of(_host_with_login(tmp_path / "a", users))
    client, _ = driver.client()
    response = driver.http.get("/authorize", query_string=authorize_query(client.client_id))
    assert urlsplit(response.headers["Location"]).path == "/host-login"
    assert driver.http.get("/login").headers["Location"].startswith("/host-login?next=")

    ours = Driver.of(_host_with_login(tmp_path / "b", users, UAUTH_LOGIN_VIEW="uauth.ui.login"))
    client, _ = ours.client()
    response = ours.http.get("/authorize", query_string=authorize_query(client.client_id))
    assert urlsplit(response.headers["Location"]).path == "/login"


def test_a_host_login_and_its_remember_cookie_count_as_authentication(tmp_path: Path) -> None:
    driver = Driver.of(_host_with_login(tmp_path, DictUsers((CAROL, "pw"))))
    client, secret = driver.client()
    driver.http.post("/host-login", data={"user_id": "u-carol"})
    code = driver.code(client.client_id, scope="openid profile email")
    assert driver.token(client.client_id, secret, code=code).status_code == 200
    driver.http.delete_cookie("session")  # the browser restarts; only remember_token is left
    response = driver.http.get("/authorize", query_string=authorize_query(client.client_id))
    assert response.status_code == 302 and "code=" in response.headers["Location"]


def test_an_expired_login_is_made_again_and_the_host_session_data_stays(
        tmp_path: Path, clock: FakeClock) -> None:
    driver = Driver.of(_host_with_login(tmp_path, DictUsers((CAROL, "pw")), clock))
    client, _ = driver.client()
    driver.http.post("/host-login", data={"user_id": "u-carol"})
    with driver.http.session_transaction() as session:
        session["cart"] = ["apples"]
    clock.advance(14 * 24 * 3600 + 1)  # UAUTH_SESSION_TTL
    driver.http.delete_cookie("remember_token")
    response = driver.http.get("/authorize", query_string=authorize_query(client.client_id))
    assert urlsplit(response.headers["Location"]).path == "/host-login"
    with driver.http.session_transaction() as session:
        assert session["cart"] == ["apples"] and "_user_id" not in session
        assert not [key for key in session if key.startswith("uauth_")]


def test_a_host_user_unknown_to_the_directory_gets_a_page_not_a_loop(tmp_path: Path) -> None:
    driver = Driver.of(_host_with_login(tmp_path, DictUsers((CAROL, "pw"))))
    client, _ = driver.client()
    driver.http.post("/host-login", data={"user_id": "ghost"})
    response = driver.http.get("/authorize", query_string=authorize_query(client.client_id))
    assert response.status_code == 403
    assert "cannot sign in to applications" in response.text


@pytest.mark.parametrize("csrf_first", [True, False])
def test_host_csrf_protect_never_blocks_relying_parties_or_the_back_channel(
        tmp_path: Path, csrf_first: bool) -> None:
    app = host_app(tmp_path)
    if csrf_first:
        CSRFProtect(app)
    UAuth(app, users=DictUsers((CAROL, "pw")))
    if not csrf_first:
        CSRFProtect(app)
    driver = Driver.of(app)
    client, _ = driver.client()
    token = driver.http.post("/token", data={"grant_type": "authorization_code", "code": "x",
                                             "client_id": client.client_id})
    assert token.status_code == 401 and json_of(token)["error"] == "invalid_client"
    posted = driver.http.post("/authorize", data=authorize_query(client.client_id))
    assert posted.status_code == 302  # an RP's POST authorization request: on to the login
    assert urlsplit(posted.headers["Location"]).path == "/login"
    expired = driver.http.post("/login", data={"username": "carol", "password": "pw"})
    assert expired.status_code == 400 and "This page expired" in expired.text


def test_a_host_login_is_a_uauth_session_and_ending_it_logs_the_browser_out(
        tmp_path: Path) -> None:
    import jwt

    from uauth.core.sessions import end_all
    from uauth.extension import get_state

    app = _host_with_login(tmp_path, DictUsers((CAROL, "pw")))
    driver = Driver.of(app)
    client, secret = driver.client()
    driver.http.post("/host-login", data={"user_id": "u-carol"})
    code = driver.code(client.client_id, scope="openid")
    id_token = json_of(driver.token(client.client_id, secret, code=code))["id_token"]
    claims = jwt.decode(id_token, options={"verify_signature": False})
    assert claims["sid"], "the host's login became a session with a public sid"
    assert "amr" not in claims, "uauth cannot know how the host authenticated the user"
    with app.app_context():
        assert end_all(get_state(), "u-carol") == 1  # e.g. `uauth user logout` on another host
    driver.http.delete_cookie("remember_token")
    response = driver.http.get("/authorize", query_string=authorize_query(client.client_id))
    assert urlsplit(response.headers["Location"]).path == "/host-login", "no loop: logged out"
    with driver.http.session_transaction() as session:
        assert "_user_id" not in session

"""Issue 17 item 1: a re-login through the host's login page (``prompt=login``, ``max_age``)
continues the same stored session instead of orphaning it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest

from tests.browser import csrf_token
from tests.host_driver import REDIRECT
from tests.host_driver import Host
from tests.host_driver import make_notes
from uauth.core.claims import user_for_subject
from uauth.core.sessions import of_user
from uauth.extension import get_state


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host.of(make_notes(tmp_path / "notes"))


def authorize(host: Host, client_id: str, **extra: str) -> object:
    return host.get("/auth/authorize", query_string={
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
        "scope": "openid notes", **extra})


def test_a_host_relogin_continues_the_session_and_retires_old_cookies(host: Host) -> None:
    host.add_user()
    client, secret = host.add_client()
    first = host.tokens(client, secret, "openid notes")
    sub = jwt.decode(first["id_token"], options={"verify_signature": False})["sub"]
    with host.app.app_context():
        user = user_for_subject(get_state(), sub)
        assert user is not None
        [before] = of_user(get_state(), user.id)
    old_cookie = host.http.get_cookie("session")
    assert old_cookie is not None

    again = authorize(host, client.client_id, prompt="login")
    back = host.login(again.headers["Location"])  # type: ignore[attr-defined]
    done = host.get(back.headers["Location"])
    assert done.status_code == 302 and "code=" in done.headers["Location"]
    with host.app.app_context():
        sessions = of_user(get_state(), user.id)
    assert [s.sid for s in sessions] == [before.sid], "one session, the same sid"

    # A copy of the cookie from before the re-login is worth nothing now.
    thief = host.app.test_client()
    thief.set_cookie("session", old_cookie.value, domain="localhost")
    silent = thief.get("/auth/authorize", base_url=host.base_url, query_string={
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
        "scope": "openid notes", "prompt": "none"})
    assert silent.status_code == 302
    assert parse_qs(urlsplit(silent.headers["Location"]).query).get("error") == [
        "login_required"]

    # Logging out ends everything, including tokens issued before the re-login.
    page = host.get("/")
    assert host.post("/logout", data={"csrf_token": csrf_token(page.text)}).status_code == 302
    with host.app.app_context():
        assert of_user(get_state(), user.id) == []
    assert host.get("/auth/userinfo", headers={
        "Authorization": f"Bearer {first['access_token']}"}).status_code == 401


def test_someone_else_signing_in_after_the_prompt_ends_the_suspended_session(host: Host
                                                                           ) -> None:
    host.add_user()
    host.add_user("bob@example.com", "Bob")
    client, secret = host.add_client()
    first = host.tokens(client, secret, "openid notes")
    sub = jwt.decode(first["id_token"], options={"verify_signature": False})["sub"]
    again = authorize(host, client.client_id, prompt="login")
    back = host.login(again.headers["Location"], "bob@example.com")  # type: ignore[attr-defined]
    assert back.status_code == 302
    with host.app.app_context():
        alice = user_for_subject(get_state(), sub)
        assert alice is not None
        assert of_user(get_state(), alice.id) == [], "Alice's session ended, not orphaned"
    assert host.get("/auth/userinfo", headers={
        "Authorization": f"Bearer {first['access_token']}"}).status_code == 401

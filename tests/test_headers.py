"""Browser security headers on every page uauth shows, and HSTS when the issuer is https."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from uauth.storage.memory import MemoryStore


def pages(tmp_path: Path, clock: FakeClock, issuer: str) -> dict[str, Any]:
    """Every page, reached the way a person reaches it."""
    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock, UAUTH_ISSUER=issuer,
                           UAUTH_REQUIRED_ATTRIBUTES=["given_name"]))
    d.user()
    client, _ = d.client()
    seen: dict[str, Any] = {"login": d.http.get("/login"),
                            "error": d.http.get("/authorize?client_id=nobody")}
    seen["login failed"] = d.login(password="wrong")
    d.login()
    request = {"client_id": client.client_id, "redirect_uri": REDIRECT, "response_type": "code",
               "scope": "openid profile", "state": "s"}
    seen["attributes"] = d.http.get("/authorize", query_string=request)
    with d.app.app_context():
        from uauth.extension import get_state

        users = get_state().users
        alice = users.find_by_username("alice")
        assert alice is not None
        users.update_profile(alice, {"given_name": "Alice"})  # type: ignore[attr-defined]
    seen["consent"] = d.http.get("/authorize", query_string=request)
    d.authorize(**request)
    seen["form_post"] = d.http.get("/authorize", query_string={**request,
                                                               "response_mode": "form_post"})
    seen["home"] = d.http.get("/")
    seen["account"] = d.http.get("/account")
    seen["sessions"] = d.http.get("/account/sessions")
    seen["logout confirmation"] = d.http.get("/logout")
    token = csrf_token(seen["logout confirmation"].text)
    seen["signed out"] = d.http.post("/logout", data={"csrf_token": token})
    return seen


@pytest.mark.parametrize("issuer", ["http://localhost", "https://id.example.com"])
def test_every_page_carries_the_security_headers(tmp_path: Path, clock: FakeClock,
                                                 issuer: str) -> None:
    seen = pages(tmp_path, clock, issuer)
    assert "Complete your profile" in seen["attributes"].text
    assert 'name="consent"' in seen["consent"].text
    assert "Sign out" in seen["logout confirmation"].text
    for name, response in seen.items():
        assert response.mimetype == "text/html", name
        assert response.status_code < 500, name
        headers = response.headers
        csp = headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["frame-ancestors"] == "'none'", name
        assert directives["default-src"] == "'none'", name
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, name
        if name == "form_post":
            assert re.fullmatch(r"'nonce-[\w-]+'", directives["script-src"]), "a nonce'd script"
            nonce = directives["script-src"][7:-1]
            assert f'<script nonce="{nonce}">' in response.text
        elif "passkeys.js" in response.text:
            # the passkey button's script: uauth's own file, never inline (views/passkeys.py)
            assert directives["script-src"] == "'self'", name
            assert directives["connect-src"] == "'self'", name
            scripts = re.findall(r"<script[^>]*>", response.text)
            assert scripts == ['<script src="/static/uauth/passkeys.js" defer>'], name
        else:
            assert "script-src" not in directives and "<script" not in response.text, name
        if name != "form_post":
            assert "form-action" not in directives, f"{name}: would block redirects in Chrome"
        assert headers["X-Frame-Options"] == "DENY", name
        assert headers["Referrer-Policy"] == "no-referrer", name
        assert headers["X-Content-Type-Options"] == "nosniff", name
        if issuer.startswith("https"):
            assert headers["Strict-Transport-Security"] == "max-age=31536000", name
        else:
            assert "Strict-Transport-Security" not in headers, name


def test_back_channel_answers_are_nosniff_and_hsts_over_https(tmp_path: Path,
                                                               clock: FakeClock) -> None:
    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock,
                           UAUTH_ISSUER="https://id.example.com"))
    for response in (d.http.post("/token", data={}), d.http.get("/jwks.json"),
                     d.http.get("/userinfo")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_back_channel_answers_neither_set_nor_vary_on_the_session_cookie(
        tmp_path: Path, clock: FakeClock) -> None:
    """A machine's request has no browser session; a page's answer still varies on it."""
    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    d.user()
    client, secret = d.client()
    d.login()  # the test client now sends the session cookie with every request
    token = d.token(client.client_id, secret, code=d.code(client.client_id))
    assert token.status_code == 200
    access = token.get_json()["access_token"]
    answers = {"token": token, "jwks": d.http.get("/jwks.json"),
               "userinfo": d.http.get("/userinfo", headers={"Authorization": f"Bearer {access}"})}
    assert answers["userinfo"].status_code == 200
    for name, response in answers.items():
        assert "Cookie" not in response.headers.get("Vary", ""), name
        assert "Set-Cookie" not in response.headers, name
    assert "Cookie" in d.http.get("/account").headers.get("Vary", ""), "pages read the session"


def test_a_back_channel_request_that_changed_the_session_still_saves_it(
        tmp_path: Path, clock: FakeClock) -> None:
    from flask import Response
    from flask import request
    from flask import session

    app = make_app(tmp_path, MemoryStore(clock=clock), clock)
    with app.test_request_context("/token", method="POST"):
        assert request.blueprint == "uauth.token"
        session["changed"] = True
        response = Response()
        app.session_interface.save_session(app, session, response)
        assert "uauth_session=" in response.headers["Set-Cookie"]


def test_cors_adds_origin_to_a_vary_header_the_view_already_set(
        tmp_path: Path, clock: FakeClock) -> None:
    """``Vary: Origin`` is set directly when nothing varies yet, and merged into what does."""
    from flask import Response
    from flask import request

    from uauth.web.views import _cors

    app = make_app(tmp_path, MemoryStore(clock=clock), clock)
    with app.test_request_context("/jwks.json", headers={"Origin": "https://spa.example"}):
        fresh, varied = Response(), Response(headers={"Vary": "Accept-Encoding"})
        _cors(request, fresh)
        _cors(request, varied)
        _cors(request, varied)  # twice: still one Origin
    assert fresh.headers.getlist("Vary") == ["Origin"]
    assert varied.headers.getlist("Vary") == ["Accept-Encoding, Origin"]
    assert "Access-Control-Allow-Origin" not in fresh.headers, "an unregistered origin"

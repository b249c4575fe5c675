"""uauth embedded in a host Flask app (Notes, examples/embedded): the host's login page, CSRF,
session and templates keep working, and the host's own API accepts uauth's access tokens."""

from __future__ import annotations

import inspect
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from flask import Flask

from tests.app_driver import basic_auth
from tests.browser import csrf_token
from tests.host_driver import ISSUER
from tests.host_driver import PASSWORD
from tests.host_driver import REDIRECT
from tests.host_driver import Host
from tests.host_driver import make_notes
from uauth import current_token
from uauth.core.claims import user_for_subject
from uauth.core.clients import Registration
from uauth.core.clients import register_client
from uauth.core.tokens import revoke_access_token
from uauth.extension import get_state


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host.of(make_notes(tmp_path / "notes"))


def challenge(response: object) -> str:
    return str(response.headers["WWW-Authenticate"])  # type: ignore[attr-defined]


def test_code_flow_through_the_host_login_reaches_the_host_api(host: Host) -> None:
    host.add_user()
    client, secret = host.add_client()
    start = host.get("/auth/authorize", query_string={
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": "http://127.0.0.1:8399/cb", "scope": "openid profile notes"})
    assert start.status_code == 302
    assert start.headers["Location"].startswith("/login?next=%2Fauth%2Fauthorize%3F")
    token = host.tokens(client, secret, "openid profile notes")
    response = host.api(token["access_token"])
    assert response.status_code == 200, response.text
    assert response.json == {"user": "alice@example.com", "client_id": client.client_id,
                             "notes": []}
    created = host.api(token["access_token"], "POST", json={"text": "buy milk"})
    assert created.status_code == 201  # the host exempted its bearer API from CSRFProtect
    assert host.api(token["access_token"]).json["notes"] == [{"id": 1, "text": "buy milk"}]


def test_api_refuses_a_request_without_a_token(host: Host) -> None:
    response = host.api(None)
    assert response.status_code == 401
    assert challenge(response) == 'Bearer realm="uauth"'  # RFC 6750 §3.1: no error code


def test_api_refuses_an_id_token(host: Host) -> None:
    token = host.alice_tokens()
    response = host.api(token["id_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in challenge(response)
    assert response.json["error_description"] == "the token is not an access token"


def test_api_refuses_a_token_without_its_scope(host: Host) -> None:
    token = host.alice_tokens("openid profile")
    response = host.api(token["access_token"])
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in challenge(response)
    assert 'scope="notes"' in challenge(response)


def test_api_refuses_a_revoked_token(host: Host) -> None:
    token = host.alice_tokens()["access_token"]
    assert host.api(token).status_code == 200
    with host.app.app_context():
        revoke_access_token(get_state(), jwt.decode(token, options={"verify_signature": False}))
    response = host.api(token)
    assert response.status_code == 401 and 'error="invalid_token"' in challenge(response)


def test_a_disabled_users_tokens_stop_working(host: Host) -> None:
    alice = host.add_user()
    client, secret = host.add_client()
    token = host.tokens(client, secret, "openid profile notes")["access_token"]
    with sqlite3.connect(host.app.config["NOTES_DB"]) as db:
        db.execute("UPDATE users SET active = 0 WHERE id = ?", (int(alice),))
    response = host.api(token)
    assert response.status_code == 401
    assert response.json["error_description"] == "the token's user no longer exists"


def test_userinfo_answers_from_the_host_directory(host: Host) -> None:
    host.add_user()
    client, secret = host.add_client("openid profile email")
    token = host.tokens(client, secret, "openid profile email")
    response = host.post("/auth/userinfo", data={"access_token": token["access_token"]})
    assert response.status_code == 200  # a form POST that CSRFProtect must not block
    assert response.json["name"] == "Alice" and response.json["email"] == "alice@example.com"
    assert response.json["sub"] == jwt.decode(token["id_token"],
                                              options={"verify_signature": False})["sub"]


def test_host_csrf_still_guards_host_forms_and_uauth_forms(host: Host) -> None:
    host.add_user()
    client, _ = host.add_client()
    assert "csrf" in host.app.extensions
    refused = host.post("/login", data={"email": "alice@example.com", "password": PASSWORD})
    assert refused.status_code == 400  # CSRFProtect on the host's own form
    consent = host.authorize(client.client_id, "openid notes")
    assert consent.status_code == 302  # first time: consent given with its CSRF token
    other, _ = host.add_client()
    forged = host.post("/auth/authorize", data={
        "response_type": "code", "client_id": other.client_id, "scope": "openid notes",
        "redirect_uri": "http://127.0.0.1:8399/cb", "consent": "allow"})
    assert forged.status_code == 400 and "This page has expired" in forged.text


def test_host_session_settings_and_keys_are_left_alone(host: Host) -> None:
    host.add_user()
    client, secret = host.add_client()
    with host.http.session_transaction() as session:
        session["cart"] = ["apples"]
    host.tokens(client, secret, "openid notes")
    assert host.app.config["SESSION_COOKIE_NAME"] == "session"
    assert host.app.config["PERMANENT_SESSION_LIFETIME"] == timedelta(days=31)
    assert host.app.config["SESSION_COOKIE_SAMESITE"] is None
    with host.http.session_transaction() as session:
        assert session["cart"] == ["apples"]
        ours = {k for k in session if k.startswith("uauth_")}
        assert ours and set(session) - ours <= {"cart", "csrf_token", "_user_id", "_fresh", "_id"}


def test_uauth_pages_use_the_host_templates_and_login_page(host: Host) -> None:
    host.add_user()
    client, _ = host.add_client()
    login = host.get("/auth/login?next=/auth/")
    assert login.status_code == 302 and login.headers["Location"].startswith("/login?next=")
    response = host.get("/auth/authorize", query_string={
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": "http://127.0.0.1:8399/cb", "scope": "openid notes"})
    response = host.login(response.headers["Location"])
    page = host.get(response.headers["Location"])
    assert 'name="consent"' in page.text and "Notes</a> account" in page.text


def test_uauth_error_handlers_stay_on_its_blueprints(host: Host) -> None:
    missing = host.get("/no-such-page")
    assert missing.status_code == 404 and "uauth" not in missing.text
    assert "Content-Security-Policy" not in host.get("/login").headers
    assert "Content-Security-Policy" in host.get("/auth/").headers


def test_discovery_for_a_path_issuer(host: Host) -> None:
    documents = [host.get(path) for path in (
        "/auth/.well-known/openid-configuration",          # OIDC Discovery §4
        "/.well-known/oauth-authorization-server/auth",     # RFC 8414 §3
        "/.well-known/openid-configuration/auth")]          # RFC 8414 §3 form, OpenID suffix
    assert [d.status_code for d in documents] == [200, 200, 200]
    metadata = documents[0].json
    assert all(d.json == metadata for d in documents)
    assert metadata["issuer"] == ISSUER
    assert metadata["authorization_endpoint"] == ISSUER + "/authorize"
    assert metadata["token_endpoint"] == ISSUER + "/token"
    assert metadata["jwks_uri"] == ISSUER + "/jwks.json"
    assert host.get(metadata["jwks_uri"]).json["keys"]
    assert host.get("/.well-known/openid-configuration").status_code == 404
    assert host.get("/auth/.well-known/oauth-authorization-server").status_code == 404


def test_two_apps_in_one_process_share_nothing(tmp_path: Path) -> None:
    """Both come from one factory, so they share its extension objects, and nothing else."""
    a = Host.of(make_notes(tmp_path / "a"))
    b = Host.of(make_notes(tmp_path / "b", UAUTH_ISSUER="http://127.0.0.1/auth"),
                base_url="http://127.0.0.1")
    state_a, state_b = a.app.extensions["uauth"], b.app.extensions["uauth"]
    assert state_a is not state_b and state_a.store is not state_b.store
    assert {k["kid"] for k in state_a.keys.jwks()["keys"]}.isdisjoint(
        k["kid"] for k in state_b.keys.jwks()["keys"])
    a.add_user()
    b.add_user("bob@example.com", "Bob")
    client_a, secret_a = a.add_client()
    token = a.tokens(client_a, secret_a, "openid notes")["access_token"]
    assert a.api(token).status_code == 200
    refused = b.api(token)
    assert refused.status_code == 401 and 'error="invalid_token"' in challenge(refused)
    with b.app.app_context():
        assert get_state().users.find_by_username("alice@example.com") is None
        assert get_state().store.find("client", client_a.client_id) is None
    assert b.get("/auth/.well-known/openid-configuration").json["issuer"] == \
        "http://127.0.0.1/auth"
    assert a.get("/auth/.well-known/openid-configuration").json["issuer"] == ISSUER
    b_login = b.login("/login", "alice@example.com")  # alice exists only in a
    assert b_login.status_code == 401


def test_embedding_needs_a_secret_key(tmp_path: Path) -> None:
    from uauth import UAuth
    from uauth.core.settings import ConfigError

    app = Flask("bare", instance_path=str(tmp_path / "bare"))
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        UAuth(app)


def test_prompt_login_sends_a_logged_in_person_through_the_host_login_once(host: Host) -> None:
    host.add_user()
    client, secret = host.add_client()
    host.tokens(client, secret, "openid notes")  # logged in at Notes, consent remembered
    again = host.get("/auth/authorize", query_string={
        "response_type": "code", "client_id": client.client_id, "prompt": "login",
        "redirect_uri": "http://127.0.0.1:8399/cb", "scope": "openid notes"})
    assert urlsplit(again.headers["Location"]).path == "/login"
    back = host.login(again.headers["Location"])  # Notes shows its form: the visitor logged out
    assert back.status_code == 302
    done = host.get(back.headers["Location"])
    assert done.status_code == 302 and "code=" in done.headers["Location"]


def test_require_token_can_name_a_resource_audience(host: Host) -> None:
    """A client's own token for a registered resource (RFC 8707): its ``aud`` is the resource."""
    from examples.embedded.notes.views import uauth

    resource = "https://notes.example/reports"

    @uauth.require_token(scope="notes", audience=resource)
    def reports() -> dict[str, object]:
        return {"client_id": current_token.client_id, "user": current_token.user}

    host.app.add_url_rule("/api/reports", view_func=reports)
    with host.app.app_context():
        client, secret = register_client(get_state().store, Registration(
            name="Reports", redirect_uris=[], scope="notes",
            grant_types=["client_credentials"], audiences=[resource]))
    token = host.post("/auth/token", headers=basic_auth(client.client_id, secret), data={
        "grant_type": "client_credentials", "scope": "notes", "resource": resource})
    assert token.status_code == 200, token.text
    bearer = {"Authorization": f"Bearer {token.json['access_token']}"}
    answer = host.app.test_client().get("/api/reports", headers=bearer)
    assert answer.status_code == 200
    assert answer.json == {"client_id": client.client_id, "user": None}
    elsewhere = host.api(token.json["access_token"])  # /api/notes wants the issuer as audience
    assert elsewhere.status_code == 401 and 'error="invalid_token"' in challenge(elsewhere)


def test_require_token_hands_an_async_view_to_the_app(host: Host,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain view is called directly; an ``async def`` one goes through the app's
    ``ensure_sync``, as Flask runs async views (with its ``async`` extra installed)."""
    from examples.embedded.notes.views import uauth

    def run_async(view: Any) -> Any:
        """Flask's ``ensure_sync`` with its async extra, without an event loop (another test's
        may be running in this thread): a coroutine that awaits nothing ends at its first step."""
        if not inspect.iscoroutinefunction(view):
            return view

        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                view(*args, **kwargs).send(None)
            except StopIteration as done:
                return done.value
            raise AssertionError("the view awaited something")

        return run

    monkeypatch.setattr(host.app, "ensure_sync", run_async)

    @uauth.require_token(scope="notes")
    async def awaited() -> dict[str, object]:
        return {"client_id": current_token.client_id}

    host.app.add_url_rule("/api/awaited", view_func=awaited)
    with host.app.app_context():
        client, secret = register_client(get_state().store, Registration(
            name="Awaited", redirect_uris=[], scope="notes", grant_types=["client_credentials"]))
    token = host.post("/auth/token", headers=basic_auth(client.client_id, secret), data={
        "grant_type": "client_credentials", "scope": "notes"})
    assert token.status_code == 200, token.text
    answer = host.app.test_client().get(
        "/api/awaited", headers={"Authorization": f"Bearer {token.json['access_token']}"})
    assert answer.status_code == 200 and answer.json == {"client_id": client.client_id}


def test_form_post_submits_itself_under_a_host_layout(host: Host) -> None:
    """Notes overrides uauth/base.html; the form_post page must not depend on that layout."""
    host.add_user()
    client, _ = host.add_client()
    host.authorize(client.client_id, "openid")  # signs in and consents once
    page = host.get("/auth/authorize", query_string={
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
        "scope": "openid", "state": "s-2", "response_mode": "form_post"})
    assert page.status_code == 200 and f'action="{REDIRECT}"' in page.text
    nonce = page.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">document.forms[0].submit();</script>' in page.text


def test_account_and_sessions_pages_serve_a_host_login(host: Host) -> None:
    host.alice_tokens()  # signed in through Notes' own login page
    account = host.get("/auth/account")
    assert account.status_code == 200 and "Alice" in account.text
    sessions = host.get("/auth/account/sessions")
    assert sessions.status_code == 200 and "Signed in as ." not in sessions.text


def test_logout_with_a_hint_from_another_browser_keeps_subjects_working(host: Host) -> None:
    host.add_user()
    client, secret = host.add_client("openid profile notes")
    first = host.tokens(client, secret, "openid profile notes")
    other = Host.of(host.app)  # the same person in a second browser
    other.tokens(client, secret, "openid profile notes")
    page = other.get("/auth/logout", query_string={"id_token_hint": first["id_token"],
                                                    "client_id": client.client_id})
    assert page.status_code == 200, page.text
    # the first browser's session and tokens live on; its subject must still resolve
    info = host.get("/auth/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert info.status_code == 200 and info.json["sub"] == jwt.decode(
        first["id_token"], options={"verify_signature": False})["sub"]
    assert host.api(first["access_token"]).status_code == 200


def test_signing_out_of_the_host_ends_the_uauth_session(host: Host) -> None:
    from uauth.core.sessions import of_user

    token = host.alice_tokens()
    user_id = jwt.decode(token["id_token"], options={"verify_signature": False})["sub"]
    with host.app.app_context():
        user = user_for_subject(get_state(), user_id)
        assert user is not None and len(of_user(get_state(), user.id)) == 1
    page = host.get("/")
    assert host.post("/logout", data={"csrf_token": csrf_token(page.text)}).status_code == 302
    with host.app.app_context():
        assert of_user(get_state(), user.id) == [], "the host's logout ended uauth's session"
    assert host.get("/auth/userinfo", headers={
        "Authorization": f"Bearer {token['access_token']}"}).status_code == 401, (
        "and revoked the grant issued in it (no offline_access)")

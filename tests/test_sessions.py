"""Login sessions in process, per storage backend: lifetimes on the injected clock, the cookie,
and the races a shared store must survive."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest
from flask import Flask
from flask import session
from flask_login import current_user

from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from tests.logout_receiver import receiver
from uauth.core.models import LoginSession
from uauth.core.records import ENDED
from uauth.core.records import SESSION
from uauth.core.sessions import end
from uauth.extension import get_state
from uauth.storage import Store
from uauth.storage import hash_key
from uauth.storage.memory import MemoryStore
from uauth.storage.sqlite import SQLiteStore
from uauth.web.login import HANDLE
from uauth.web.login import SUSPENDED
from uauth.web.login import login_batch

AFTER_LOGOUT = "http://127.0.0.1:8399/bye"
HOUR = 3600
DAY = 24 * HOUR


def whoami_app(tmp_path: Path, store: Store, clock: FakeClock, **config: Any) -> Flask:
    """A provider with one host-app view that only asks flask-login who is there."""
    app = make_app(tmp_path, store, clock, **config)

    @app.get("/whoami")
    def whoami() -> str:
        return current_user.username if current_user.is_authenticated else "anonymous"

    return app


@pytest.fixture
def driver(tmp_path: Path, store: Store, clock: FakeClock) -> Driver:
    return Driver.of(whoami_app(tmp_path, store, clock))


def handle(driver: Driver) -> str:
    """The session handle inside the browser's signed cookie."""
    cookie = driver.http.get_cookie(driver.app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    data = driver.app.session_interface.get_signing_serializer(driver.app).loads(  # type: ignore[attr-defined]
        cookie.value)
    value: str = data[HANDLE]
    return value


def stored(driver: Driver, session_handle: str) -> LoginSession | None:
    with driver.app.app_context():
        record = get_state().store.find(SESSION, hash_key(session_handle))
    return None if record is None else LoginSession.from_record(record)


def sign_in(driver: Driver, username: str = "alice") -> tuple[str, LoginSession]:
    """Create the user, sign in; the cookie's handle and the stored session."""
    driver.user(username)
    driver.login(username)
    raw = handle(driver)
    login = stored(driver, raw)
    assert login is not None
    return raw, login


def id_token(driver: Driver, client_id: str, secret: str | None) -> str:
    token = json_of(driver.token(client_id, secret, code=driver.code(client_id)))
    value: str = token["id_token"]
    return value


def whoami(driver: Driver) -> str:
    return driver.http.get("/whoami").text


def test_session_cookie_is_httponly_lax_and_secure_for_https(tmp_path: Path,
                                                            clock: FakeClock) -> None:
    for issuer, secure in (("https://id.example.com", True), ("http://localhost", False)):
        driver = Driver.of(make_app(tmp_path / issuer[:5], MemoryStore(clock=clock), clock,
                                    UAUTH_ISSUER=issuer))
        driver.user(f"u-{secure}")
        response = driver.login(f"u-{secure}")
        name = driver.app.config["SESSION_COOKIE_NAME"]
        cookie = next(c for c in response.headers.getlist("Set-Cookie")
                      if c.startswith(name + "="))
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure, issuer


def test_storage_keeps_a_digest_and_the_sid_is_not_the_handle(driver: Driver) -> None:
    driver.user()
    client, secret = driver.client(first_party=True)
    driver.login()
    raw = handle(driver)
    login = stored(driver, raw)
    assert login is not None and login.key == hash_key(raw)
    with driver.app.app_context():
        assert get_state().store.find(SESSION, raw) is None
    claims = jwt.decode(id_token(driver, client.client_id, secret),
                        options={"verify_signature": False})
    assert claims["sid"] == login.sid != raw
    assert claims["auth_time"] == login.auth_time


def test_an_ended_session_logs_the_browser_out_of_every_view(driver: Driver) -> None:
    _, login = sign_in(driver)
    assert whoami(driver) == "alice"
    with driver.app.app_context():
        end(get_state(), login)  # as another worker or the CLI would
    assert whoami(driver) == "anonymous", "the signed cookie alone is not enough"


def test_idle_sessions_end_revoke_their_grants_and_tell_clients(tmp_path: Path, store: Store,
                                                               clock: FakeClock) -> None:
    driver = Driver.of(whoami_app(tmp_path, store, clock, UAUTH_SESSION_IDLE_TTL=HOUR,
                                  UAUTH_FETCH_ALLOWED_HOSTS=["127.0.0.1"]))  # the test receiver
    driver.user()
    with receiver() as rp:
        client, secret = driver.client(first_party=True, always_issue_refresh_token=True,
                                       backchannel_logout_uri=rp.url + "/ok")
        driver.login()
        tokens = json_of(driver.token(client.client_id, secret, code=driver.code(client.client_id)))
        clock.advance(HOUR - 1)
        assert whoami(driver) == "alice"
        clock.advance(HOUR - 1)
        assert whoami(driver) == "alice", "the visit before kept it alive"
        clock.advance(HOUR)
        assert whoami(driver) == "anonymous"
        logout_token = rp.wait_for("/ok")[0].logout_token
    claims = jwt.decode(logout_token, options={"verify_signature": False})
    signed_in = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert (claims["sid"], claims["sub"]) == (signed_in["sid"], signed_in["sub"]), (
        "the user read for the logout token")
    with driver.app.app_context():
        assert get_state().store.find("refresh_token", hash_key(tokens["refresh_token"])) is None


def test_a_logout_token_names_the_sessions_user_when_the_request_holds_it(
        tmp_path: Path, store: Store, clock: FakeClock) -> None:
    """A /logout and the sessions page's button hold the session's user and hand it to the
    logout tokens instead of reading it again: the ``sub`` is still the pairwise one."""
    driver = Driver.of(whoami_app(tmp_path, store, clock, UAUTH_FETCH_ALLOWED_HOSTS=["127.0.0.1"]))
    alice = driver.user()
    with receiver() as rp:
        client, secret = driver.client(first_party=True, subject_type="pairwise",
                                       backchannel_logout_uri=rp.url + "/ok")
        hints = []
        for _ in range(2):  # two browsers, each signed in and holding an ID token
            driver.http = driver.app.test_client()
            driver.login()
            hints.append(jwt.decode(id_token(driver, client.client_id, secret),
                                    options={"verify_signature": False}))
        first, second = hints
        assert first["sub"] == second["sub"] != alice.id, "pairwise"
        page = driver.http.get("/account/sessions")
        ended = driver.http.post("/account/sessions", data={"csrf_token": csrf_token(page.text),
                                                            "sid": first["sid"]})
        assert ended.status_code == 302, "the other browser's session ended from this one"
        rp.wait_for("/ok")
        out = driver.http.get("/logout", query_string={"id_token_hint": id_token(
            driver, client.client_id, secret)})
        assert "You are signed out" in out.text
        received = rp.wait_for("/ok", count=2)
    claims = [jwt.decode(r.logout_token, options={"verify_signature": False}) for r in received]
    assert [(c["sid"], c["sub"]) for c in claims] == [(first["sid"], first["sub"]),
                                                      (second["sid"], second["sub"])]


def test_activity_never_extends_the_absolute_lifetime(tmp_path: Path, store: Store,
                                                      clock: FakeClock) -> None:
    driver = Driver.of(whoami_app(tmp_path, store, clock, UAUTH_SESSION_IDLE_TTL=1000,
                                  UAUTH_SESSION_TTL=5000))
    driver.user()
    driver.login()
    for _ in range(5):
        clock.advance(900)
        assert whoami(driver) == "alice"
    clock.advance(501)
    assert whoami(driver) == "anonymous"


def test_last_seen_is_written_at_most_every_five_minutes(driver: Driver,
                                                         clock: FakeClock) -> None:
    raw, first = sign_in(driver)
    clock.advance(299)
    whoami(driver)
    assert stored(driver, raw) == first, "no write for a visit inside the interval"
    clock.advance(1)
    whoami(driver)
    later = stored(driver, raw)
    assert later is not None and later.last_seen == first.last_seen + 300


def test_a_late_idle_write_cannot_bring_an_ended_session_back(driver: Driver,
                                                              clock: FakeClock) -> None:
    raw, login = sign_in(driver)
    with driver.app.app_context():
        state = get_state()
        end(state, login)
        assert state.store.find(ENDED, login.key) is not None
        # A worker that read the session just before it ended writes its last_seen back:
        state.store.save(SESSION, login.key, login.to_record(), ttl=DAY)
    clock.advance(300)
    assert whoami(driver) == "anonymous"
    assert stored(driver, raw) is None, "the tombstone made the writer delete it again"


def test_signing_in_again_keeps_the_sid_but_not_the_cookie(driver: Driver,
                                                           clock: FakeClock) -> None:
    driver.user()
    driver.user("bob")
    driver.login()
    first_handle = handle(driver)
    first = stored(driver, first_handle)
    stolen = driver.http.get_cookie(driver.app.config["SESSION_COOKIE_NAME"])
    assert first is not None and stolen is not None
    clock.advance(60)
    driver.login()
    second = stored(driver, handle(driver))
    assert second is not None and second.sid == first.sid and second.auth_time == first.auth_time + 60
    assert stored(driver, first_handle) is None
    thief = driver.app.test_client()
    thief.set_cookie(driver.app.config["SESSION_COOKIE_NAME"], stolen.value)
    assert thief.get("/whoami").text == "anonymous", "the pre-login cookie is worthless"
    driver.login("bob")
    bobs = stored(driver, handle(driver))
    assert bobs is not None and bobs.sid != first.sid and whoami(driver) == "bob"
    assert stored(driver, handle(driver)) is not None
    with driver.app.app_context():
        from uauth.core.sessions import of_user

        assert of_user(get_state(), first.user_id) == [], "alice's session ended"


def test_an_expired_id_token_is_still_a_good_hint(driver: Driver, clock: FakeClock) -> None:
    driver.user()
    client, secret = driver.client(first_party=True, post_logout_redirect_uris=[AFTER_LOGOUT])
    driver.login()
    hint = id_token(driver, client.client_id, secret)
    clock.advance(2 * HOUR)
    response = driver.http.get("/logout", query_string={
        "id_token_hint": hint, "post_logout_redirect_uri": AFTER_LOGOUT, "state": "xyz"})
    assert response.status_code == 302
    assert response.headers["Location"] == AFTER_LOGOUT + "?state=xyz"
    assert whoami(driver) == "anonymous"


def test_a_hint_from_an_earlier_session_of_the_same_user_needs_no_confirmation(
        driver: Driver) -> None:
    driver.user()
    client, secret = driver.client(first_party=True)
    driver.login()
    old_hint = id_token(driver, client.client_id, secret)
    driver.http.post("/logout", data={"csrf_token": csrf_token(driver.http.get("/logout").text)})
    driver.login()
    new_sid = jwt.decode(id_token(driver, client.client_id, secret),
                         options={"verify_signature": False})["sid"]
    assert new_sid != jwt.decode(old_hint, options={"verify_signature": False})["sid"]
    response = driver.http.get("/logout", query_string={"id_token_hint": old_hint})
    assert "You are signed out" in response.text and whoami(driver) == "anonymous"


def test_clients_are_recorded_once_per_authorization(driver: Driver) -> None:
    driver.user()
    client, _ = driver.client(first_party=True)
    driver.login()
    codes = [driver.code(client.client_id) for _ in range(2)]
    login = stored(driver, handle(driver))
    assert login is not None and len(set(codes)) == 2
    with driver.app.app_context():
        from uauth.core.sessions import clients_by_session
        from uauth.core.sessions import grants_in

        records = grants_in(get_state(), login)
        assert clients_by_session(get_state(), login.user_id) == {login.sid: [client.client_id]}
    # One grant per client and session, reused (issue 17: storage must not grow per request).
    assert len(records) == 1 and all(r["revoke_at_logout"] for r in records)
    assert {r["sid"] for r in records} == {login.sid}
    location = driver.authorize(response_type="code", client_id=client.client_id,
                                redirect_uri=REDIRECT, scope="openid").headers["Location"]
    assert parse_qs(urlsplit(location).query)["code"]



def test_a_login_over_another_persons_session_is_not_batched(tmp_path: Path,
                                                             clock: FakeClock) -> None:
    """``login_batch``: ending another person's session revokes their grants and signs logout
    tokens, which must not wait inside a batch's transaction (SQLite's write lock); the same
    person signing in again, and a fresh browser, get one batch."""
    store = SQLiteStore(tmp_path / "sessions.sqlite3")
    driver = Driver.of(make_app(tmp_path, store, clock))
    alice = driver.user()
    bob = driver.user("bob")
    with driver.http:
        driver.http.get("/whoami")
        assert not isinstance(login_batch(alice.id), nullcontext), "a fresh browser"
    driver.login()
    with driver.http:
        driver.http.get("/whoami")
        assert isinstance(login_batch(bob.id), nullcontext), "alice's session would end"
        assert not isinstance(login_batch(alice.id), nullcontext), "alice again: retired"
        session[SUSPENDED] = session[HANDLE]  # a re-authentication's, as forget_login leaves it
        assert isinstance(login_batch(alice.id), nullcontext), "a suspended session"
    store.close()

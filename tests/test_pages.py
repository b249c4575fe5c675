"""Issue 18 item 13: 404/405 in uauth's format, a bare /authorize, metrics off, the sessions
page's browser names, the login page's focus, and signing in with an email address."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.app_driver import PASSWORD
from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.app_driver import own_users
from tests.conftest import FakeClock
from tests.conftest import make_store
from uauth.core.records import EMAIL
from uauth.storage.memory import MemoryStore
from uauth.web.useragent import describe


@pytest.fixture
def driver(tmp_path: Path, clock: FakeClock) -> Driver:
    return Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/token", "POST"), ("PUT", "/token", "POST"), ("GET", "/revoke", "POST"),
    ("DELETE", "/introspect", "POST"), ("PUT", "/userinfo", "GET, HEAD, OPTIONS, POST"),
    ("POST", "/jwks.json", "GET, HEAD, OPTIONS"),
])
def test_a_wrong_method_on_the_back_channel_is_json_with_allow(
        driver: Driver, method: str, path: str, allow: str) -> None:
    response = driver.http.open(path, method=method)
    assert response.status_code == 405 and response.mimetype == "application/json"
    assert response.json == {"error": "invalid_request", "error_description": "method not allowed"}
    assert set(response.headers["Allow"].split(", ")) >= set(allow.split(", ")) - {"OPTIONS"}
    assert response.headers["Cache-Control"] == "no-store"


def test_a_wrong_method_on_a_page_is_a_styled_page(driver: Driver) -> None:
    response = driver.http.put("/login")
    assert response.status_code == 405 and response.mimetype == "text/html"
    assert "This address does not take that request" in response.text
    assert '<link rel="stylesheet"' in response.text, "the uauth layout, not Flask's bare page"
    assert "GET" in response.headers["Allow"] and "POST" in response.headers["Allow"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_an_unknown_address_is_a_styled_page_or_json_for_json_clients(driver: Driver) -> None:
    page = driver.http.get("/no-such-page", headers={"Accept": "text/html,*/*;q=0.8"})
    assert page.status_code == 404 and "Page not found" in page.text
    assert '<link rel="stylesheet"' in page.text
    api = driver.http.get("/no-such-page", headers={"Accept": "application/json"})
    assert api.status_code == 404 and json_of(api)["error"] == "invalid_request"


def test_metrics_when_off_is_a_plain_404(driver: Driver) -> None:
    response = driver.http.get("/metrics")
    assert response.status_code == 404 and response.mimetype == "text/plain"
    assert "invalid_request" not in response.text


def test_a_bare_authorize_names_the_missing_client_id(driver: Driver) -> None:
    response = driver.http.get("/authorize")
    assert response.status_code == 400 and "client_id is missing" in response.text
    assert "unsupported_response_type" not in response.text
    assert "<code>invalid_request</code>" in response.text


@pytest.mark.parametrize(("agent", "shown"), [
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36", "Chrome on macOS"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
     "Firefox on Windows"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.1 Mobile/15E148 Safari/604.1", "Safari on iOS"),
    ("curl/8.5.0", "curl"),
    ("", "Unknown browser"),
])
def test_user_agents_read_as_browser_on_system(agent: str, shown: str) -> None:
    assert describe(agent) == shown


def test_the_sessions_page_shows_browser_and_system(driver: Driver) -> None:
    driver.user()
    chrome = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
    driver.http.environ_base["HTTP_USER_AGENT"] = chrome
    assert driver.login().status_code == 302
    page = driver.http.get("/account/sessions")
    assert page.status_code == 200, page.text
    assert f'<strong title="{chrome}">Chrome on Linux</strong>' in page.text


def test_after_a_wrong_password_the_password_field_has_the_focus(driver: Driver) -> None:
    driver.user()
    first = driver.http.get("/login")
    assert re.search(r'<input[^>]*autofocus[^>]*name="username"|<input[^>]*name="username"'
                     r'[^>]*autofocus', first.text)
    wrong = driver.login(password="not-the-password")
    assert wrong.status_code == 401
    username = re.search(r'<input[^>]*name="username"[^>]*>', wrong.text)
    password = re.search(r'<input[^>]*name="password"[^>]*>', wrong.text)
    assert username and password
    assert "autofocus" in password.group(0) and "autofocus" not in username.group(0)
    assert 'value="alice"' in username.group(0)


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
def test_people_sign_in_with_an_email_address_that_is_theirs_alone(
        tmp_path: Path, clock: FakeClock, backend: str, request: pytest.FixtureRequest) -> None:
    store = make_store(backend, request, tmp_path, clock)
    driver = Driver.of(make_app(tmp_path, store, clock))
    driver.user("alice", email="Alice@Example.com")
    assert driver.login("alice@example.COM").status_code == 302, "case does not matter"
    driver.http.post("/logout")
    driver.http.delete_cookie("uauth_session")
    assert driver.login("alice@example.com", "wrong-password").status_code == 401
    bob = driver.user("bob", email="shared@example.com")
    driver.user("carol", email="shared@example.com")
    assert driver.login("shared@example.com").status_code == 401, "two accounts: not by email"
    with driver.app.app_context():

        users = own_users()
        found = users.get(bob.id)
        assert found is not None
        users.update_profile(found, {"email": "bob@example.com"})
        by_email = users.authenticate("shared@example.com", PASSWORD)
        assert by_email is not None and by_email.username == "carol"
        bob_again = users.authenticate("bob@example.com", PASSWORD)
        assert bob_again is not None and bob_again.username == "bob"
        users.delete(by_email)
        assert users.authenticate("shared@example.com", PASSWORD) is None


def test_users_from_before_the_email_index_can_sign_in_by_email(
        tmp_path: Path, clock: FakeClock) -> None:
    """The index is built once from the stored users on the first lookup."""

    store = MemoryStore(clock=clock)
    driver = Driver.of(make_app(tmp_path, store, clock))
    alice = driver.user("alice", email="alice@example.com")
    store.delete(EMAIL, f"alice@example.com {alice.id}")  # as stored before the index existed
    store.delete("setting", "email_index")
    assert driver.login("alice@example.com").status_code == 302

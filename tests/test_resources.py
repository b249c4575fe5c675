"""Resource indicators (RFC 8707) at /authorize, for codes and refresh tokens; default scopes
(RFC 6749 §3.3); loopback redirect URIs on any port (RFC 8252 §7.3). Every backend."""

from __future__ import annotations

import dataclasses
import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge as s256
from werkzeug.datastructures import MultiDict

from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from uauth.core.clients import save_client
from uauth.core.loopback import redirect_uri_matches
from uauth.core.models import DYNAMIC
from uauth.core.models import Client
from uauth.extension import get_state
from uauth.storage import Store

NOTES = "https://notes.example.com/mcp"
CALENDAR = "https://calendar.example.com/api"
RESOURCES = {NOTES: {"name": "Notes MCP", "scopes": ["notes"]},
             CALENDAR: {"name": "Calendar", "scopes": ["calendar"]}}
VERIFIER = "v" * 50


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resources")


@pytest.fixture
def driver(shared: Path, store: Store, clock: FakeClock) -> Driver:
    driver = Driver.of(make_app(shared, store, clock, UAUTH_RESOURCES=RESOURCES))
    driver.user()
    driver.login()
    return driver


def dynamic(driver: Driver, **kwargs: Any) -> Client:
    kwargs.setdefault("public", True)
    kwargs.setdefault("scope", "openid notes calendar offline_access")
    client, _ = driver.client(**kwargs)
    client = dataclasses.replace(client, registration=DYNAMIC)
    with driver.app.app_context():
        save_client(get_state().store, client)
    return client


def authorize(driver: Driver, client: Client, redirect_uri: str = "http://127.0.0.1:8399/cb",
              **params: Any) -> Any:
    return driver.authorize(response_type="code", client_id=client.client_id,
                            redirect_uri=redirect_uri, code_challenge=s256(VERIFIER),
                            code_challenge_method="S256", **params)


def code_of(response: Any) -> str:
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert "code" in query, query
    return str(query["code"][0])


def allow(driver: Driver, page: str) -> Any:
    """Answer a consent page with allow, keeping repeated parameters."""
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    data = [(k, html.unescape(v)) for k, v in hidden]
    return driver.http.post("/authorize", data=MultiDict(
        [*data, ("csrf_token", csrf_token(page)), ("consent", "allow")]))


def redeem(driver: Driver, client: Client, code: str, **data: Any) -> Any:
    return driver.http.post("/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": client.client_id,
        "redirect_uri": "http://127.0.0.1:8399/cb", "code_verifier": VERIFIER, **data})


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def error_of(response: Any) -> str:
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    return str(query["error"][0])


def test_access_token_audience_is_the_resource(driver: Driver) -> None:
    client = dynamic(driver)
    page = driver.http.get("/authorize", query_string={
        "response_type": "code", "client_id": client.client_id, "scope": "notes",
        "redirect_uri": "http://127.0.0.1:8399/cb", "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256", "resource": NOTES})
    assert page.status_code == 200 and "Notes MCP" in page.text and NOTES in page.text
    assert "only redirects to your own computer" in page.text
    code = code_of(authorize(driver, client, scope="notes", resource=NOTES))
    token = json_of(redeem(driver, client, code, resource=NOTES))
    assert claims(token["access_token"])["aud"] == NOTES
    assert token["scope"] == "notes"


def test_without_scope_the_resource_scopes_are_granted(driver: Driver) -> None:
    client = dynamic(driver)
    code = code_of(authorize(driver, client, resource=CALENDAR))
    token = json_of(redeem(driver, client, code))
    assert token["scope"] == "calendar"
    assert claims(token["access_token"])["aud"] == CALENDAR


def test_without_scope_or_resource_the_registered_scope_is_granted(driver: Driver) -> None:
    client = dynamic(driver, scope="notes")
    code = code_of(authorize(driver, client))
    assert json_of(redeem(driver, client, code))["scope"] == "notes"


def test_operator_clients_only_name_their_audiences(driver: Driver) -> None:
    registered, _ = driver.client(public=True, scope="openid notes", audiences=[CALENDAR])
    assert error_of(authorize(driver, registered, scope="notes", resource=NOTES)) == \
        "invalid_target"
    code = code_of(authorize(driver, registered, scope="notes", resource=CALENDAR))
    assert claims(json_of(redeem(driver, registered, code))["access_token"])["aud"] == CALENDAR


@pytest.mark.parametrize("bad", ["https://notes.example.com/mcp#x", "notes.example.com/mcp",
                                 "https://unknown.example.com/"])
def test_bad_or_unknown_resource_is_invalid_target(driver: Driver, bad: str,
                                                   log_lines: Any) -> None:
    client = dynamic(driver)
    response = authorize(driver, client, scope="notes", resource=bad)
    assert error_of(response) == "invalid_target"
    assert "resource.refused" in log_lines.getvalue()
    assert "error_description" in parse_qs(urlsplit(response.headers["Location"]).query)


def test_token_request_may_not_widen_the_resources(driver: Driver) -> None:
    client = dynamic(driver)
    code = code_of(authorize(driver, client, scope="notes", resource=NOTES))
    response = redeem(driver, client, code, resource=CALENDAR)
    assert response.status_code == 400 and json_of(response)["error"] == "invalid_target"


def test_refresh_narrows_and_never_widens(driver: Driver) -> None:
    client = dynamic(driver)
    response = driver.http.get("/authorize", query_string=[
        ("response_type", "code"), ("client_id", client.client_id),
        ("redirect_uri", "http://127.0.0.1:8399/cb"), ("scope", "notes calendar offline_access"),
        ("code_challenge", s256(VERIFIER)), ("code_challenge_method", "S256"),
        ("resource", NOTES), ("resource", CALENDAR)])
    assert "Notes MCP" in response.text and "Calendar" in response.text
    code = code_of(allow(driver, response.text))
    token = json_of(redeem(driver, client, code))
    assert sorted(claims(token["access_token"])["aud"]) == sorted([NOTES, CALENDAR])
    refreshed = json_of(driver.http.post("/token", data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"],
        "client_id": client.client_id, "resource": NOTES}))
    assert claims(refreshed["access_token"])["aud"] == NOTES
    wider = driver.http.post("/token", data={
        "grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"],
        "client_id": client.client_id, "resource": "https://other.example.com/"})
    assert wider.status_code == 400 and json_of(wider)["error"] == "invalid_target"
    # the refused request spent nothing; the successor still holds both resources
    again = json_of(driver.http.post("/token", data={
        "grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"],
        "client_id": client.client_id}))
    assert sorted(claims(again["access_token"])["aud"]) == sorted([NOTES, CALENDAR])


def test_consent_to_one_resource_is_not_consent_to_another(driver: Driver) -> None:
    client = dynamic(driver)
    code_of(authorize(driver, client, scope="notes", resource=NOTES))
    again = driver.http.get("/authorize", query_string={
        "response_type": "code", "client_id": client.client_id, "scope": "notes",
        "redirect_uri": "http://127.0.0.1:8399/cb", "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256", "resource": NOTES})
    assert again.status_code == 302  # remembered
    other = driver.http.get("/authorize", query_string={
        "response_type": "code", "client_id": client.client_id, "scope": "notes",
        "redirect_uri": "http://127.0.0.1:8399/cb", "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256", "resource": CALENDAR})
    assert other.status_code == 200 and 'name="consent"' in other.text


def test_loopback_redirect_uri_on_any_port(driver: Driver) -> None:
    client = dynamic(driver, subject_type="public", redirect_uris=["http://127.0.0.1/cb", "http://localhost/cb",
                                            "https://app.example.com/cb"])
    code = code_of(authorize(driver, client, redirect_uri="http://127.0.0.1:53411/cb",
                             scope="notes"))
    token = driver.http.post("/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": client.client_id,
        "redirect_uri": "http://127.0.0.1:53411/cb", "code_verifier": VERIFIER})
    assert token.status_code == 200, json_of(token)
    refused = authorize(driver, client, redirect_uri="https://app.example.com:8443/cb",
                        scope="notes")
    assert refused.status_code == 400  # a page, never a redirect


@pytest.mark.parametrize(("uri", "ok"), [
    ("http://127.0.0.1:1234/cb", True), ("http://[::1]:9/cb", True), ("http://localhost:80/cb", True),
    ("http://127.0.0.1:1234/other", False), ("http://127.0.0.1:1234/cb?x=1", False),
    ("http://127.0.0.2:1234/cb", False), ("https://127.0.0.1:1234/cb", False),
    ("http://evil@127.0.0.1:1234/cb", False), ("http://127.0.0.1:bad/cb", False),
])
def test_loopback_rule(uri: str, ok: bool) -> None:
    registered = ["http://127.0.0.1/cb", "http://[::1]/cb", "http://localhost/cb"]
    assert redirect_uri_matches(uri, registered) is ok

"""Dynamic client registration (RFC 7591) and management (RFC 7592): off, token and open
modes, the open policy, bad metadata, pruning. Every backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge as s256
from click.testing import CliRunner

from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.app import create_app
from uauth.core.registration import create_initial_token
from uauth.core.registration import prune
from uauth.extension import get_state
from uauth.ops.cli import cli
from uauth.storage import Store

NOTES = "https://notes.example.com/mcp"
RESOURCES = {NOTES: {"name": "Notes MCP", "scopes": ["notes"]}}
MCP_CLIENT = {"client_name": "Claude Code", "redirect_uris": ["http://localhost/callback"],
              "grant_types": ["authorization_code", "refresh_token"],
              "response_types": ["code"], "token_endpoint_auth_method": "none"}
VERIFIER = "w" * 50


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registration")


def app(shared: Path, store: Store, clock: FakeClock, mode: str = "open", **config: Any
        ) -> Driver:
    return Driver.of(make_app(shared, store, clock, UAUTH_REGISTRATION=mode,
                              UAUTH_RESOURCES=RESOURCES, **config))


@pytest.fixture
def driver(shared: Path, store: Store, clock: FakeClock) -> Driver:
    return app(shared, store, clock)


def register(driver: Driver, metadata: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return driver.http.post("/register", json=metadata, headers=headers)


def test_off_by_default(shared: Path, store: Store, clock: FakeClock) -> None:
    driver = Driver.of(make_app(shared, store, clock))
    assert driver.http.post("/register", json=MCP_CLIENT).status_code == 404
    assert "registration_endpoint" not in json_of(driver.http.get(
        "/.well-known/oauth-authorization-server"))


def test_open_registration_then_a_code_flow_with_consent(driver: Driver) -> None:
    meta = json_of(driver.http.get("/.well-known/oauth-authorization-server"))
    assert meta["registration_endpoint"] == "http://localhost/register"
    response = register(driver, MCP_CLIENT)
    assert response.status_code == 201, json_of(response)
    body = json_of(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert "client_secret" not in body and body["token_endpoint_auth_method"] == "none"
    assert body["registration_access_token"] and body["registration_client_uri"].endswith(
        "/register/" + body["client_id"])
    assert set(body["scope"].split()) == {"openid", "profile", "email", "offline_access",
                                          "notes"}
    driver.user()
    driver.login()
    query = {"response_type": "code", "client_id": body["client_id"], "resource": NOTES,
             "redirect_uri": "http://localhost:61234/callback", "code_challenge": s256(VERIFIER),
             "code_challenge_method": "S256"}
    page = driver.http.get("/authorize", query_string=query)
    assert page.status_code == 200 and 'name="consent"' in page.text  # never first-party
    assert "Claude Code" in page.text and "Notes MCP" in page.text
    assert "registered itself" in page.text and "localhost" in page.text
    location = driver.authorize(**query).headers["Location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    token = driver.http.post("/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": body["client_id"],
        "redirect_uri": "http://localhost:61234/callback", "code_verifier": VERIFIER,
        "resource": NOTES})
    assert token.status_code == 200, json_of(token)
    assert json_of(token)["scope"] == "notes"


def test_secret_methods_get_a_secret(driver: Driver) -> None:
    body = json_of(register(driver, {**MCP_CLIENT, "token_endpoint_auth_method":
                             "client_secret_post"}))
    assert len(body["client_secret"]) >= 32 and body["client_secret_expires_at"] == 0


@pytest.mark.parametrize(("metadata", "error"), [
    ({"redirect_uris": ["https://app.example.com/cb#frag"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["http://app.example.com/cb"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
    ({"application_type": "native", "redirect_uris": ["https://app.example.com/cb"]},
     "invalid_redirect_uri"),
    ({"scope": "openid admin"}, "invalid_client_metadata"),
    ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
    ({"grant_types": ["implicit"], "response_types": ["id_token"]}, "invalid_client_metadata"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
    ({"token_endpoint_auth_method": "private_key_jwt",
      "jwks": {"keys": [{"kty": "oct", "k": "A" * 43}]}}, "invalid_client_metadata"),
    ({"application_type": "desktop"}, "invalid_client_metadata"),
])
def test_bad_metadata(driver: Driver, metadata: dict[str, Any], error: str,
                      log_lines: Any) -> None:
    response = register(driver, {**MCP_CLIENT, **metadata})
    assert response.status_code == 400, json_of(response)
    assert json_of(response)["error"] == error and json_of(response)["error_description"]
    assert "client.registration_refused" in log_lines.getvalue()


def test_not_json_is_invalid_client_metadata(driver: Driver) -> None:
    response = driver.http.post("/register", data="redirect_uris=x",
                                content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and json_of(response)["error"] == "invalid_client_metadata"
    response = driver.http.post("/register", data="[1]", content_type="application/json")
    assert response.status_code == 400 and json_of(response)["error"] == "invalid_client_metadata"
    deep = '{"client_name": ' + "[" * 5000 + "]" * 5000 + "}"
    response = driver.http.post("/register", data=deep, content_type="application/json")
    assert response.status_code == 400 and json_of(response)["error"] == "invalid_client_metadata"


def test_open_registration_is_throttled_per_address(shared: Path, store: Store,
                                                    clock: FakeClock) -> None:
    driver = app(shared, store, clock, UAUTH_REGISTRATION_RATE=2)
    assert register(driver, MCP_CLIENT).status_code == 201
    assert register(driver, MCP_CLIENT).status_code == 201
    third = register(driver, MCP_CLIENT)
    assert third.status_code == 429 and third.headers["Retry-After"]
    clock.advance(3601)
    assert register(driver, MCP_CLIENT).status_code == 201


def test_token_mode_needs_an_initial_access_token(shared: Path, store: Store,
                                                  clock: FakeClock) -> None:
    driver = app(shared, store, clock, mode="token")
    refused = register(driver, MCP_CLIENT)
    assert refused.status_code == 401 and json_of(refused)["error"] == "invalid_token"
    assert "Bearer" in refused.headers["WWW-Authenticate"]
    assert register(driver, MCP_CLIENT, "made-up").status_code == 401
    with driver.app.app_context():
        token = create_initial_token(get_state().store, expires=600, uses=2, now=int(clock()))
    assert register(driver, MCP_CLIENT, token).status_code == 201
    # token mode may register client credentials clients and any known scope
    assert register(driver, {"client_name": "svc", "grant_types": ["client_credentials"],
                             "token_endpoint_auth_method": "client_secret_basic",
                             "scope": "phone"}, token).status_code == 201
    assert register(driver, MCP_CLIENT, token).status_code == 401  # used up
    with driver.app.app_context():
        late = create_initial_token(get_state().store, expires=600, uses=5, now=int(clock()))
    clock.advance(601)
    assert register(driver, MCP_CLIENT, late).status_code == 401  # expired


def test_a_registered_private_key_jwt_client_authenticates(shared: Path, store: Store,
                                                           clock: FakeClock) -> None:
    import uuid

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    driver = app(shared, store, clock, mode="token")
    key = ec.generate_private_key(ec.SECP256R1())
    public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    with driver.app.app_context():
        initial = create_initial_token(get_state().store, expires=600, uses=1, now=int(clock()))
    body = register(driver, {"client_name": "svc", "grant_types": ["client_credentials"],
                             "token_endpoint_auth_method": "private_key_jwt",
                             "jwks": {"keys": [public]}, "scope": "profile"}, initial)
    assert body.status_code == 201, json_of(body)
    client_id = json_of(body)["client_id"]
    assert "client_secret" not in json_of(body)
    now = int(clock())
    signed = jwt.encode({"iss": client_id, "sub": client_id, "aud": "http://localhost",
                         "exp": now + 60, "jti": uuid.uuid4().hex}, key, algorithm="ES256")
    answer = driver.http.post("/token", data={
        "grant_type": "client_credentials", "client_assertion": signed,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
    assert answer.status_code == 200, json_of(answer)


def test_client_reads_updates_and_deletes_itself(driver: Driver) -> None:
    body = json_of(register(driver, MCP_CLIENT))
    uri = urlsplit(body["registration_client_uri"]).path
    auth = {"Authorization": f"Bearer {body['registration_access_token']}"}
    read = driver.http.get(uri, headers=auth)
    assert read.status_code == 200 and json_of(read)["client_name"] == "Claude Code"
    assert "registration_access_token" not in json_of(read)
    assert driver.http.get(uri, headers={"Authorization": "Bearer wrong"}).status_code == 401
    updated = driver.http.put(uri, headers=auth, json={**MCP_CLIENT, "client_id":
                                                       body["client_id"], "client_name": "CC"})
    assert updated.status_code == 200, json_of(updated)
    assert json_of(updated)["client_name"] == "CC"
    bad = driver.http.put(uri, headers=auth, json={**MCP_CLIENT, "client_id": body["client_id"],
                                                   "redirect_uris": ["http://evil.example/"]})
    assert bad.status_code == 400 and json_of(bad)["error"] == "invalid_redirect_uri"
    assert driver.http.delete(uri, headers=auth).status_code == 204
    assert driver.http.get(uri, headers=auth).status_code == 401


def test_operator_clients_are_not_managed_through_registration(driver: Driver) -> None:
    client, _ = driver.client()
    response = driver.http.get(f"/register/{client.client_id}",
                               headers={"Authorization": "Bearer x"})
    assert response.status_code == 401


def test_unused_dynamic_clients_are_pruned(driver: Driver, clock: FakeClock) -> None:
    idle = json_of(register(driver, MCP_CLIENT))["client_id"]
    busy = json_of(register(driver, {**MCP_CLIENT, "token_endpoint_auth_method": "client_secret_basic",
                             "grant_types": ["authorization_code"]}))
    operator, _ = driver.client()
    clock.advance(20 * 86400)
    driver.user()
    driver.login()
    location = driver.authorize(response_type="code", client_id=busy["client_id"],
                                redirect_uri="http://localhost/callback", scope="notes",
                                resource=NOTES).headers["Location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    assert driver.http.post("/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": busy["client_id"],
        "client_secret": busy["client_secret"], "redirect_uri": "http://localhost/callback",
    }).status_code == 200
    clock.advance(11 * 86400)
    with driver.app.app_context():
        removed = prune(get_state().store, older_than=30 * 86400, now=int(clock()))
        assert removed == [idle]
        assert get_state().store.find("client", operator.client_id) is not None


def test_cli_creates_initial_access_tokens(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"UAUTH_REGISTRATION": "token"}
    instance = str(tmp_path / "inst")
    assert runner.invoke(cli, ["--instance", instance, "init"], env=env,
                         obj=create_app).exit_code == 0
    result = runner.invoke(cli, ["--instance", instance, "registration", "token", "create",
                                 "--expires", "1h", "--uses", "3", "--json"], env=env, obj=create_app)
    assert result.exit_code == 0, result.output
    created = json.loads(result.output.strip().splitlines()[-1])
    assert len(created["token"]) >= 40 and created["expires_in"] == 3600
    bad = runner.invoke(cli, ["--instance", instance, "registration", "token", "create",
                              "--expires", "soon"], env=env, obj=create_app)
    assert bad.exit_code != 0 and "duration" in bad.output
    pruned = runner.invoke(cli, ["--instance", instance, "client", "prune", "--dry-run"],
                           env=env, obj=create_app)
    assert pruned.exit_code == 0 and "no unused dynamic clients" in pruned.output

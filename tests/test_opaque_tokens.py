"""Opaque access tokens (issue 22): a client registered with ``access_token_format="opaque"``
gets random references whose claims live in storage, checked by /userinfo, introspection, a
host's ``require_token`` and revoked like JWTs, on every backend."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask

from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from tests.host_driver import REDIRECT as HOST_REDIRECT
from tests.host_driver import Host
from tests.host_driver import make_notes
from uauth.core.clients import Registration
from uauth.core.clients import RegistrationError
from uauth.core.clients import register_client
from uauth.core.models import Client
from uauth.core.opaque import EXPIRED_NOTICE
from uauth.core.records import ACCESS
from uauth.core.tokens import InvalidToken
from uauth.core.tokens import half_hash
from uauth.core.tokens import revoke_access_token
from uauth.core.tokens import validate_access_token
from uauth.extension import get_state
from uauth.resource import ResourceProtector
from uauth.resource import TokenValidator
from uauth.storage import Store
from uauth.storage import hash_key
from uauth.storage.memory import MemoryStore
from uauth.web.resource import OPAQUE_REFUSED

OFFLINE = "openid offline_access profile"
TTL = 600


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One instance folder for the module: its signing key is generated once, not per test."""
    return tmp_path_factory.mktemp("opaque")


@pytest.fixture
def driver(shared: Path, store: Store, clock: FakeClock) -> Driver:
    d = Driver.of(make_app(shared, store, clock, UAUTH_ACCESS_TOKEN_TTL=TTL,
                           UAUTH_REFRESH_REUSE_GRACE=0))
    d.user()
    d.login()
    return d


def flow(d: Driver, scope: str = OFFLINE, **client: Any) -> tuple[Client, str, dict[str, Any]]:
    """A confidential client (opaque unless told) and its code flow's token response (PKCE)."""
    client.setdefault("access_token_format", "opaque")
    registered, secret = d.client(**client)
    assert secret is not None
    verifier = "v" * 50
    code = d.code(registered.client_id, scope=scope, code_challenge_method="S256",
                  code_challenge=s256(verifier))
    response = d.token(registered.client_id, secret, code=code, code_verifier=verifier)
    assert response.status_code == 200, response.text
    return registered, secret, json_of(response)


def s256(verifier: str) -> str:
    """The PKCE ``code_challenge`` of ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def userinfo(d: Driver, token: str) -> Any:
    return d.http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})


def introspect(d: Driver, client: Client, secret: str, token: str, **data: str) -> dict[str, Any]:
    response = d.http.post("/introspect", data={"token": token, **data},
                           headers=basic_auth(client.client_id, secret))
    assert response.status_code == 200, response.text
    return json_of(response)


def refresh(d: Driver, client: Client, secret: str, token: str) -> Any:
    return d.http.post("/token", data={"grant_type": "refresh_token", "refresh_token": token},
                       headers=basic_auth(client.client_id, secret))


def stored(store: Store, token: str) -> dict[str, Any] | None:
    return store.find(ACCESS, hash_key(token))


def test_a_code_flow_gives_an_opaque_token_that_userinfo_and_introspection_accept(
        driver: Driver, store: Store, clock: FakeClock) -> None:
    client, secret, body = flow(driver)
    token = body["access_token"]
    assert "." not in token and len(token) >= 43, "a random reference, not a JWT"
    assert body["expires_in"] == TTL and body["token_type"] == "Bearer"
    id_claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert id_claims["at_hash"] == half_hash(token, "RS256"), "at_hash works on any string"
    info = userinfo(driver, token)
    assert info.status_code == 200, info.text
    assert info.json is not None and info.json["sub"] == id_claims["sub"]
    found = introspect(driver, client, secret, token)
    now = int(clock())
    assert found["active"] is True and found["token_type"] == "Bearer"
    assert found["sub"] == id_claims["sub"] and found["client_id"] == client.client_id
    assert found["iss"] == "http://localhost" and found["aud"] == "http://localhost"
    assert found["scope"] == OFFLINE and found["exp"] == now + TTL and found["iat"] == now
    assert found["auth_time"] == id_claims["auth_time"] and found["amr"] == ["pwd"]
    assert found["jti"], "a token id, as a JWT's"
    assert introspect(driver, client, secret, token, token_type_hint="refresh_token") == found


def test_storage_holds_the_claims_under_a_digest_never_the_token(
        driver: Driver, store: Store) -> None:
    _, _, body = flow(driver)
    token = body["access_token"]
    record = stored(store, token)
    assert record is not None and record["sub"] and record["gid"]
    grant = [entry for entry in store.grant_records(str(record["gid"])) if entry[0] == ACCESS]
    assert grant == [(ACCESS, hash_key(token), record)], "saved in its grant"
    dumped = json.dumps([[e.kind, e.key, e.record, e.grant_id] for e in store.dump()],
                        default=str)
    assert hash_key(token) in dumped
    assert token not in dumped and body["refresh_token"] not in dumped


def test_revocation_ends_an_opaque_token_at_once(driver: Driver, store: Store) -> None:
    client, secret, body = flow(driver)
    token = body["access_token"]
    assert userinfo(driver, token).status_code == 200
    revoked = driver.http.post("/revoke", data={"token": token},
                               headers=basic_auth(client.client_id, secret))
    assert revoked.status_code == 200
    assert stored(store, token) is None, "the record is deleted"
    assert userinfo(driver, token).status_code == 401
    assert introspect(driver, client, secret, token) == {"active": False}
    assert refresh(driver, client, secret, body["refresh_token"]).status_code == 200, (
        "revoking an access token leaves its refresh token")


def test_a_worker_keeping_the_claims_refuses_a_token_revoked_by_another(
        driver: Driver, shared: Path, store: Store, clock: FakeClock) -> None:
    """Each worker keeps the claims it read or minted (core/verified.py); a revocation made
    by another worker reaches it through the deny list, which every use reads."""
    client, secret, body = flow(driver)
    token = body["access_token"]
    other = Driver.of(make_app(shared, store, clock, UAUTH_ACCESS_TOKEN_TTL=TTL))
    assert userinfo(other, token).status_code == 200, "read once, then kept"
    with other.app.app_context():
        assert get_state().verified.get(token, now=clock(), audience=None) is not None
    revoked = driver.http.post("/revoke", data={"token": token},
                               headers=basic_auth(client.client_id, secret))
    assert revoked.status_code == 200
    for worker in (other, driver):
        refused = userinfo(worker, token)
        assert refused.status_code == 401 and refused.json is not None
        assert refused.json["error_description"] == "the token has been revoked"
    fresh = Driver.of(make_app(shared, store, clock, UAUTH_ACCESS_TOKEN_TTL=TTL))
    assert userinfo(fresh, token).status_code == 401, "a worker that never saw it"


def test_a_foreign_client_may_neither_revoke_nor_introspect_it(driver: Driver) -> None:
    _, _, body = flow(driver)
    token = body["access_token"]
    other, other_secret = driver.client(name="Other")
    assert other_secret is not None
    refused = driver.http.post("/revoke", data={"token": token},
                               headers=basic_auth(other.client_id, other_secret))
    assert refused.status_code == 400 and json_of(refused)["error"] == "invalid_grant"
    assert userinfo(driver, token).status_code == 200
    assert introspect(driver, other, other_secret, token) == {"active": False}
    api, api_secret = driver.client(name="API", introspect_any_token=True)
    assert api_secret is not None
    assert introspect(driver, api, api_secret, token)["active"] is True, "a resource server may"


def test_refresh_issues_a_new_opaque_token_and_reuse_kills_the_family(
        driver: Driver, store: Store) -> None:
    client, secret, body = flow(driver)
    rotated = refresh(driver, client, secret, body["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = json_of(rotated)["access_token"]
    assert "." not in second and second != body["access_token"]
    assert userinfo(driver, second).status_code == 200
    reuse = refresh(driver, client, secret, body["refresh_token"])
    assert reuse.status_code == 400, "the spent token again: reuse"
    for token in (body["access_token"], second):
        assert stored(store, token) is None, "revoke_grant deleted the family's records"
        assert userinfo(driver, token).status_code == 401
        assert introspect(driver, client, secret, token) == {"active": False}


def test_logout_ends_the_opaque_tokens_of_the_session(driver: Driver, store: Store) -> None:
    _, _, body = flow(driver, scope="openid profile")  # no offline_access: ends with the login
    token = body["access_token"]
    assert userinfo(driver, token).status_code == 200
    driver.http.post("/logout", data={"csrf_token": csrf_token(driver.http.get("/logout").text)})
    assert stored(store, token) is None
    assert userinfo(driver, token).status_code == 401


def test_revoking_the_app_on_the_account_page_ends_its_opaque_tokens(
        driver: Driver, store: Store) -> None:
    client, _, body = flow(driver, name="Photo App")
    token = body["access_token"]
    page = driver.http.get("/account")
    assert "Photo App" in page.text
    response = driver.http.post("/account/apps", data={
        "app-csrf_token": csrf_token(page.text, "app"), "client_id": client.client_id})
    assert response.status_code == 302
    assert stored(store, token) is None
    assert userinfo(driver, token).status_code == 401


def test_an_opaque_token_expires_with_its_lifetime(driver: Driver, store: Store,
                                                   clock: FakeClock) -> None:
    client, secret, body = flow(driver)
    token = body["access_token"]
    clock.advance(TTL - 1)
    assert userinfo(driver, token).status_code == 200
    clock.advance(1)
    late = userinfo(driver, token)
    assert late.status_code == 401 and late.json is not None
    assert late.json["error_description"] == "the token has expired"
    assert introspect(driver, client, secret, token) == {"active": False}
    clock.advance(EXPIRED_NOTICE)
    assert stored(store, token) is None, "the record lives the token's lifetime and a minute"
    gone = userinfo(driver, token)
    assert gone.status_code == 401 and gone.json is not None
    assert gone.json["error_description"] == "the token is invalid"


def test_client_credentials_with_an_opaque_client(driver: Driver, store: Store) -> None:
    client, secret = driver.client(name="Service", grant_types=["client_credentials"],
                                   scope="profile", access_token_format="opaque")
    assert secret is not None
    response = driver.http.post("/token", data={"grant_type": "client_credentials"},
                                headers=basic_auth(client.client_id, secret))
    assert response.status_code == 200, response.text
    token = json_of(response)["access_token"]
    assert "." not in token
    record = stored(store, token)
    assert record is not None and record["sub"] == client.client_id and "gid" not in record
    found = introspect(driver, client, secret, token)
    assert found["active"] is True and found["sub"] == client.client_id
    with driver.app.app_context():
        claims = validate_access_token(get_state(), token, audience="http://localhost")
        assert claims["client_id"] == client.client_id
        with pytest.raises(InvalidToken, match="the token is invalid"):
            validate_access_token(get_state(), token, audience="https://api.example.com")
    driver.http.post("/revoke", data={"token": token}, headers=basic_auth(client.client_id,
                                                                          secret))
    assert introspect(driver, client, secret, token) == {"active": False}


def test_a_jwt_client_is_unchanged(driver: Driver, store: Store) -> None:
    client, secret, body = flow(driver, access_token_format="jwt")
    assert client.access_token_format == "jwt"
    token = body["access_token"]
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    assert not any(entry.kind == ACCESS for entry in store.dump()), "nothing stored for a JWT"
    assert userinfo(driver, token).status_code == 200
    assert introspect(driver, client, secret, token)["active"] is True


def test_an_unknown_opaque_token_is_refused(driver: Driver) -> None:
    response = userinfo(driver, "x" * 43)
    assert response.status_code == 401 and response.json is not None
    assert response.json["error_description"] == "the token is invalid"
    too_long = userinfo(driver, "x" * 600)  # refused before any storage read
    assert too_long.status_code == 401 and too_long.json is not None
    assert too_long.json["error_description"] == "the token is invalid"


# --- registration -----------------------------------------------------------------------------

def test_the_format_is_checked_at_registration_and_defaults_to_the_setting(
        shared: Path, clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    with pytest.raises(RegistrationError, match="access token format must be jwt or opaque"):
        register_client(store, Registration(name="X", redirect_uris=[HOST_REDIRECT],
                                            access_token_format="paseto"))
    plain, _ = register_client(store, Registration(name="X", redirect_uris=[HOST_REDIRECT]))
    assert plain.access_token_format == "jwt"
    d = Driver.of(make_app(shared, store, clock, UAUTH_ACCESS_TOKEN_FORMAT="opaque"))
    assert d.client()[0].access_token_format == "opaque", "UAUTH_ACCESS_TOKEN_FORMAT"
    assert d.client(access_token_format="jwt")[0].access_token_format == "jwt"
    old = plain.to_record()
    del old["access_token_format"]
    assert Client.from_record(old).access_token_format == "jwt", "records from before are jwt"


# --- a host app and a separate resource server ------------------------------------------------

def test_a_host_apps_require_token_accepts_an_opaque_token(tmp_path: Path) -> None:
    host = Host.of(make_notes(tmp_path / "notes"))
    host.add_user()
    with host.app.app_context():
        client, secret = register_client(get_state().store, Registration(
            name="Notes Mobile", redirect_uris=[HOST_REDIRECT], scope="openid profile notes",
            access_token_format="opaque"))
    assert secret is not None
    token = host.tokens(client, secret, "openid profile notes")["access_token"]
    assert "." not in token
    response = host.api(token)
    assert response.status_code == 200, response.text
    assert response.json["client_id"] == client.client_id
    with host.app.app_context():
        claims = validate_access_token(get_state(), token, audience=host.issuer)
        revoke_access_token(get_state(), claims, raw=token)
    refused = host.api(token)
    assert refused.status_code == 401, "this worker keeps the claims; the deny list refuses"
    assert refused.json["error_description"] == "the token has been revoked"


def test_a_token_validator_refuses_an_opaque_token_and_says_to_introspect() -> None:
    validator = TokenValidator("https://id.example.com", jwks_uri="http://127.0.0.1:9/jwks")
    with pytest.raises(InvalidToken) as caught:
        validator.validate("x" * 43)
    assert str(caught.value) == OPAQUE_REFUSED and "introspection" in OPAQUE_REFUSED
    api = Flask(__name__)
    protector = ResourceProtector.for_issuer("https://id.example.com",
                                             jwks_uri="http://127.0.0.1:9/jwks")

    @api.get("/data")
    @protector.require_token()
    def data() -> str:
        return "secret"

    response = api.test_client().get("/data", headers={"Authorization": "Bearer " + "x" * 43})
    assert response.status_code == 401 and response.json is not None
    assert response.json == {"error": "invalid_token", "error_description": OPAQUE_REFUSED}
    assert f'error_description="{OPAQUE_REFUSED}"' in response.headers["WWW-Authenticate"]

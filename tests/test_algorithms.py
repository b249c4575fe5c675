"""RS256, PS256, ES256 and EdDSA: per client for ID tokens, globally for access tokens, each
verified by PyJWT against the published JWKS as a relying party would."""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path
from typing import Any

import jwt
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge as s256

from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.core.clients import RegistrationError
from uauth.storage.memory import MemoryStore

ALGS = ["RS256", "PS256", "ES256", "EdDSA"]
KTY = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
SECRET = "algorithms-test-secret-key-0123456789"




def expected_at_hash(access_token: str, alg: str) -> str:
    """OIDC Core §3.1.3.6, computed independently of uauth: Ed25519 hashes with SHA-512."""
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def flow(driver: Driver, client_id: str, secret: str | None) -> Any:
    driver.login()
    verifier = secrets.token_urlsafe(48)
    code = driver.code(client_id, nonce="n-1", code_challenge=s256(verifier),
                       code_challenge_method="S256")
    return driver.token(client_id, secret, code=code, code_verifier=verifier)


@pytest.mark.parametrize("alg", ALGS)
def test_each_algorithm_signs_id_and_access_tokens(alg: str, tmp_path: Path,
                                                   clock: FakeClock) -> None:
    app = make_app(tmp_path, MemoryStore(clock=clock), clock, SECRET_KEY=SECRET,
                   UAUTH_SIGNING_ALGS=ALGS, UAUTH_ACCESS_TOKEN_ALG=alg)
    driver = Driver.of(app)
    driver.user()
    client, secret = driver.client(id_token_signed_response_alg=alg, enabled_algs=ALGS)
    response = flow(driver, client.client_id, secret)
    assert response.status_code == 200, response.text
    token = json_of(response)
    document = json_of(driver.http.get("/jwks.json"))
    assert sorted(k["alg"] for k in document["keys"]) == sorted(ALGS)
    jwks = jwt.PyJWKSet.from_dict(document)
    for name, audience, typ in (("id_token", client.client_id, "JWT"),
                                ("access_token", "http://localhost", "at+jwt")):
        header = jwt.get_unverified_header(token[name])
        assert header["alg"] == alg and header["typ"] == typ
        key = jwks[header["kid"]]
        assert key.key_type == KTY[alg]
        claims = jwt.decode(token[name], key.key, algorithms=[alg], audience=audience,
                            issuer="http://localhost")
        if name == "id_token":
            assert claims["nonce"] == "n-1"
            assert claims["at_hash"] == expected_at_hash(token["access_token"], alg)
    info = driver.http.get("/userinfo",
                           headers={"Authorization": f"Bearer {token['access_token']}"})
    assert info.status_code == 200, "uauth validates its own access tokens in every algorithm"


def test_discovery_lists_the_enabled_algorithms(tmp_path: Path, clock: FakeClock) -> None:
    default = Driver.of(make_app(tmp_path / "a", MemoryStore(clock=clock), clock))
    meta = json_of(default.http.get("/.well-known/openid-configuration"))
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    some = Driver.of(make_app(tmp_path / "b", MemoryStore(clock=clock), clock,
                              UAUTH_SIGNING_ALGS="EdDSA", UAUTH_ACCESS_TOKEN_ALG="ES256"))
    meta = json_of(some.http.get("/.well-known/openid-configuration"))
    assert meta["id_token_signing_alg_values_supported"] == ["RS256", "ES256", "EdDSA"], \
        "RS256 is always there (OIDC Discovery §3), and the access token algorithm too"
    assert sorted(k["alg"] for k in json_of(some.http.get("/jwks.json"))["keys"]) == [
        "ES256", "EdDSA", "RS256"]


def test_a_client_may_only_register_an_enabled_algorithm(tmp_path: Path,
                                                         clock: FakeClock) -> None:
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    with pytest.raises(RegistrationError, match="add it to UAUTH_SIGNING_ALGS"):
        driver.client(id_token_signed_response_alg="ES256", enabled_algs=["RS256"])


def test_a_client_whose_algorithm_was_disabled_gets_a_clear_error(tmp_path: Path,
                                                                  clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    before = Driver.of(make_app(tmp_path / "a", store, clock, SECRET_KEY=SECRET,
                                UAUTH_SIGNING_ALGS=["ES256"]))
    before.user()
    client, secret = before.client(id_token_signed_response_alg="ES256", enabled_algs=["ES256"])
    after = Driver.of(make_app(tmp_path / "b", store, clock, SECRET_KEY=SECRET))
    response = flow(after, client.client_id, secret)
    assert response.status_code == 400
    assert json_of(response)["error"] == "unauthorized_client"
    assert "signing algorithm is not enabled" in json_of(response)["error_description"]


def test_logout_tokens_are_signed_like_the_clients_id_tokens(tmp_path: Path,
                                                             clock: FakeClock) -> None:
    from tests.logout_receiver import receiver
    from uauth.core.sessions import end_all
    from uauth.extension import get_state

    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock, SECRET_KEY=SECRET,
                                UAUTH_SIGNING_ALGS=["EdDSA"],
                                UAUTH_FETCH_ALLOWED_HOSTS=["127.0.0.1"]))  # the test receiver
    user = driver.user()
    with receiver() as rp:
        client, secret = driver.client(id_token_signed_response_alg="EdDSA", enabled_algs=ALGS,
                                       first_party=True, backchannel_logout_uri=rp.url + "/ok")
        assert flow(driver, client.client_id, secret).status_code == 200
        with driver.app.app_context():
            end_all(get_state(), user.id)
        logout_token = rp.wait_for("/ok")[0].logout_token
    header = jwt.get_unverified_header(logout_token)
    assert header["alg"] == "EdDSA" and header["typ"] == "logout+jwt"
    key = jwt.PyJWKSet.from_dict(json_of(driver.http.get("/jwks.json")))[header["kid"]]
    claims = jwt.decode(logout_token, key.key, algorithms=["EdDSA"], audience=client.client_id,
                        issuer="http://localhost")
    assert "events" in claims

"""Signed request objects (RFC 9101, OIDC Core §6.1) in process, with keys made by the test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.core.clients import RegistrationError
from uauth.core.mfa import ACR_MFA
from uauth.storage import Store

ISSUER = "http://localhost"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE: dict[str, Any] = {"RS256": RSA_KEY, "PS256": RSA_KEY, "ES256": ec.generate_private_key(ec.SECP256R1()),
           "EdDSA": ed25519.Ed25519PrivateKey.generate()}

#: PyJWT's key argument for alg none (its annotations do not admit None).
NO_KEY: Any = None


def public_jwk(alg: str, kid: str) -> dict[str, Any]:
    key = PRIVATE[alg].public_key()
    family = jwt.get_algorithm_by_name(alg)
    return {**json.loads(family.to_jwk(key)), "kid": kid}


JWKS = {"keys": [public_jwk(alg, alg.lower()) for alg in PRIVATE]}


@pytest.fixture
def driver(tmp_path: Path, store: Store, clock: FakeClock) -> Driver:
    d = Driver.of(make_app(tmp_path, store, clock))
    d.user(email="alice@example.com")
    d.login()
    return d


def sign(claims: dict[str, Any], alg: str = "RS256", kid: str | None = None,
         key: Any = None) -> str:
    return jwt.encode(claims, key or PRIVATE[alg], algorithm=alg,
                      headers={"kid": kid or alg.lower()})


def obj(client_id: str, clock: FakeClock, **params: Any) -> dict[str, Any]:
    return {"iss": client_id, "aud": ISSUER, "exp": int(clock.now) + 300,
            "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
            "scope": "openid", "state": "from-object", "nonce": "n", **params}


def answer(response: Any) -> dict[str, str]:
    assert response.status_code == 302, (response.status_code, response.text[:300])
    assert response.headers["Location"].startswith(REDIRECT), response.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def send(driver: Driver, client_id: str, request: str, **query: str) -> dict[str, str]:
    return answer(driver.http.get("/authorize", query_string={
        "client_id": client_id, "redirect_uri": REDIRECT, "response_type": "code",
        "scope": "openid", "request": request, **query}))


@pytest.mark.parametrize("alg", list(PRIVATE))
def test_a_signed_request_object_wins_over_the_query(driver: Driver, clock: FakeClock,
                                                     alg: str) -> None:
    client, secret = driver.client(first_party=True, jwks=JWKS)
    request = sign(obj(client.client_id, clock, scope="openid email", max_age=3600,
                       claims={"id_token": {"email": None}}), alg)
    got = send(driver, client.client_id, request, state="from-query", scope="openid")
    assert got["state"] == "from-object" and "code" in got
    token = json_of(driver.token(client.client_id, secret, code=got["code"]))
    assert token["scope"] == "openid email"
    claims = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert claims["nonce"] == "n" and "email" in claims


def test_request_objects_that_do_not_verify_are_refused(driver: Driver,
                                                        clock: FakeClock) -> None:
    client, _ = driver.client(first_party=True, jwks=JWKS)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = obj(client.client_id, clock)
    bad = {
        "another key": sign(good, key=other),
        "unknown kid": sign(good, kid="nope"),
        "HS256": jwt.encode(good, "s" * 32, algorithm="HS256"),
        "unsigned": jwt.encode(good, NO_KEY, algorithm="none"),
        "iss": sign({**good, "iss": "someone"}),
        "aud": sign({**good, "aud": "https://elsewhere.example"}),
        "no aud": sign({k: v for k, v in good.items() if k != "aud"}),
        "exp too far": sign({**good, "exp": int(clock.now) + 7200}),
        "nested": sign({**good, "request_uri": "https://x.example/r"}),
        "client_id": sign({**good, "client_id": "someone-else"}),
        "bad scope": sign({**good, "scope": 'openid "x"'}),
        "not a jwt": "not-a-jwt",
    }
    for name, request in bad.items():
        got = send(driver, client.client_id, request, state="q")
        assert got["error"] == "invalid_request_object", name
        assert got["state"] == "q", "the query's state: the object was not trusted"
    clock.advance(300 + 31)  # past exp and the leeway
    assert send(driver, client.client_id, sign(good))["error"] == "invalid_request_object", \
        "expired"


def test_unsigned_request_objects_need_the_clients_opt_in(driver: Driver,
                                                          clock: FakeClock) -> None:
    client, _ = driver.client(first_party=True, allow_unsigned_request_objects=True)
    unsigned = jwt.encode(obj(client.client_id, clock), NO_KEY, algorithm="none")
    assert "code" in send(driver, client.client_id, unsigned)
    plain, _ = driver.client(first_party=True)
    assert send(driver, plain.client_id, jwt.encode(obj(plain.client_id, clock), NO_KEY,
                                                    algorithm="none"))["error"] == \
        "invalid_request_object"


def test_a_request_object_can_be_pushed(driver: Driver, clock: FakeClock) -> None:
    client, secret = driver.client(first_party=True, jwks=JWKS,
                                   require_pushed_authorization_requests=True)
    pushed = driver.http.post("/par", headers=basic_auth(client.client_id, secret), data={
        "client_id": client.client_id, "request": sign(obj(client.client_id, clock))})
    assert pushed.status_code == 201, json_of(pushed)
    got = answer(driver.http.get("/authorize", query_string={
        "client_id": client.client_id, "request_uri": json_of(pushed)["request_uri"]}))
    assert got["state"] == "from-object" and "code" in got
    forged = driver.http.post("/par", headers=basic_auth(client.client_id, secret), data={
        "client_id": client.client_id, "request": jwt.encode(obj(client.client_id, clock),
                                                             NO_KEY, algorithm="none")})
    assert forged.status_code == 400 and json_of(forged)["error"] == "invalid_request_object"


def test_discovery_tells_what_request_objects_may_use(driver: Driver) -> None:
    meta = json_of(driver.http.get("/.well-known/openid-configuration"))
    assert meta["request_parameter_supported"] is True
    assert meta["request_object_signing_alg_values_supported"] == list(PRIVATE)
    assert meta["request_uri_parameter_supported"] is False


@pytest.mark.parametrize("jwks", [{"keys": []}, {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
                                  {"keys": [{**public_jwk("ES256", "x"), "d": "secret"}]},
                                  {"keys": [{"kty": "RSA", "n": "bad"}]}, ["not", "a", "set"]])
def test_only_public_key_sets_can_be_registered(driver: Driver, jwks: Any) -> None:
    with pytest.raises(RegistrationError, match="--jwks"):
        driver.client(jwks=jwks)


def test_an_essential_acr_inside_a_request_object_is_honoured(driver: Driver,
                                                              clock: FakeClock) -> None:
    """An essential ``acr`` in the signed object's ``claims`` (OIDC Core §5.5.1.1) steps up
    like one in the query: with ``prompt=none`` and no second factor yet, the answer is
    ``interaction_required``; without it, the person is sent to set one up."""
    client, _ = driver.client(first_party=True, jwks=JWKS)
    essential = {"id_token": {"acr": {"essential": True, "values": [ACR_MFA]}}}
    silent = send(driver, client.client_id,
                  sign(obj(client.client_id, clock, claims=essential, prompt="none")))
    assert silent["error"] == "interaction_required" and silent["state"] == "from-object"
    step = driver.http.get("/authorize", query_string={
        "client_id": client.client_id, "redirect_uri": REDIRECT, "response_type": "code",
        "scope": "openid", "request": sign(obj(client.client_id, clock, acr_values=ACR_MFA))})
    assert step.status_code == 302 and step.headers["Location"].startswith("/login/enrol")

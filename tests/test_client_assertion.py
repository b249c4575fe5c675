"""private_key_jwt client authentication (RFC 7523 §2.2, OIDC Core §9) at /token, /revoke and
/introspect: RS256 and ES256 keys, and every refusal; jti single use across workers."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner
from click.testing import Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.app import create_app
from uauth.core.clients import RegistrationError
from uauth.core.clients import get_client
from uauth.core.models import Client
from uauth.ops.cli import cli
from uauth.storage import Store
from uauth.storage.memory import MemoryStore
from uauth.storage.postgres import PostgresStore
from uauth.storage.redis import RedisStore
from uauth.storage.redis_cluster import RedisClusterStore
from uauth.storage.sqlite import SQLiteStore

ISSUER = "http://localhost"
TOKEN_URL = ISSUER + "/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def keypair(alg: str) -> tuple[Any, dict[str, Any]]:
    if alg == "ES256":
        private: Any = ec.generate_private_key(ec.SECP256R1())
        public = jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    public.update(kid=f"k-{alg}", use="sig", alg=alg)
    return private, public


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("assertion")


@pytest.fixture(scope="module")
def rsa_key() -> tuple[Any, dict[str, Any]]:
    return keypair("RS256")


@pytest.fixture
def driver(shared: Path, store: Store, clock: FakeClock) -> Driver:
    return Driver.of(make_app(shared, store, clock))


def register(driver: Driver, public_jwk: dict[str, Any]) -> str:
    client, secret = driver.client(token_endpoint_auth_method="private_key_jwt",
                                   jwks={"keys": [public_jwk]}, scope="profile",
                                   grant_types=["client_credentials"], redirect_uris=[])
    assert secret is None
    return client.client_id


def assertion(client_id: str, key: Any, alg: str, clock: FakeClock, **overrides: Any) -> str:
    now = int(clock())
    claims = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "iat": now,
              "exp": now + 60, "jti": uuid.uuid4().hex, **overrides}
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": f"k-{alg}"})


def token(driver: Driver, signed: str, path: str = "/token", **data: str) -> Any:
    body = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": signed, **data}
    if path == "/token":
        body.setdefault("grant_type", "client_credentials")
    return driver.http.post(path, data=body)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_client_credentials_with_private_key_jwt(driver: Driver, clock: FakeClock, alg: str
                                                 ) -> None:
    private, public = keypair(alg)
    client_id = register(driver, public)
    response = token(driver, assertion(client_id, private, alg, clock))
    assert response.status_code == 200, json_of(response)
    access = json_of(response)["access_token"]
    # the issuer itself is an accepted audience, and so is the endpoint being called
    looked = token(driver, assertion(client_id, private, alg, clock, aud=ISSUER +
                                     "/introspect"), "/introspect", token=access)
    assert looked.status_code == 200 and json_of(looked)["active"] is True
    revoked = token(driver, assertion(client_id, private, alg, clock, aud=ISSUER), "/revoke",
                    token=access)
    assert revoked.status_code == 200
    again = token(driver, assertion(client_id, private, alg, clock), "/introspect", token=access)
    assert json_of(again)["active"] is False


def test_discovery_advertises_private_key_jwt(driver: Driver) -> None:
    meta = json_of(driver.http.get("/.well-known/openid-configuration"))
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    algs = meta["token_endpoint_auth_signing_alg_values_supported"]
    assert "RS256" in algs and "ES256" in algs
    assert "none" not in algs and not any(a.startswith("HS") for a in algs)


def refused(response: Any, words: str = "") -> None:
    assert response.status_code in (400, 401), json_of(response)
    assert json_of(response)["error"] == "invalid_client"
    assert words.lower() in json_of(response).get("error_description", "").lower()


def test_replayed_assertion_is_refused(driver: Driver, clock: FakeClock,
                                       rsa_key: tuple[Any, dict[str, Any]],
                                       log_lines: Any) -> None:
    private, public = rsa_key
    client_id = register(driver, public)
    signed = assertion(client_id, private, "RS256", clock)
    assert token(driver, signed).status_code == 200
    refused(token(driver, signed), "jwt id")
    assert "client_auth.failed" in log_lines.getvalue()


@pytest.mark.parametrize(("overrides", "words"), [
    ({"exp": -120}, "expired"),
    ({"exp": 3600}, "too long"),
    ({"aud": "https://elsewhere.example/token"}, "aud"),
    ({"jti": None}, "jti"),
    ({"exp": None}, "exp"),
])
def test_bad_claims_are_refused(driver: Driver, clock: FakeClock,
                                rsa_key: tuple[Any, dict[str, Any]], overrides: dict[str, Any],
                                words: str) -> None:
    private, public = rsa_key
    client_id = register(driver, public)
    now = int(clock())
    fixed = {k: (now + v if k == "exp" and v is not None else v) for k, v in overrides.items()}
    refused(token(driver, assertion(client_id, private, "RS256", clock, **fixed)), words)


def test_issuer_must_be_the_client(driver: Driver, clock: FakeClock,
                                   rsa_key: tuple[Any, dict[str, Any]]) -> None:
    private, public = rsa_key
    client_id = register(driver, public)
    refused(token(driver, assertion(client_id, private, "RS256", clock, iss="someone")))


def test_unsigned_and_hmac_assertions_are_refused(driver: Driver, clock: FakeClock,
                                                  rsa_key: tuple[Any, dict[str, Any]]) -> None:
    private, public = rsa_key
    client_id = register(driver, public)
    now = int(clock())
    claims = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 60,
              "jti": uuid.uuid4().hex}
    unsigned = jwt.encode(claims, "", algorithm="none")
    refused(token(driver, unsigned), "signed")
    # HMAC keyed with the client's public key (the classic algorithm confusion)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    hmac_signed = _hs256(claims, pem)
    refused(token(driver, hmac_signed), "signed")


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand: PyJWT rightly refuses to use a PEM public key as an HMAC secret."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(json.dumps({"alg": "HS256", "kid": "k-RS256"}).encode()) + "." + \
        b64(json.dumps(claims).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def test_another_key_is_refused(driver: Driver, clock: FakeClock,
                                rsa_key: tuple[Any, dict[str, Any]]) -> None:
    _, public = rsa_key
    client_id = register(driver, public)
    other, _ = keypair("RS256")
    refused(token(driver, assertion(client_id, other, "RS256", clock)), "signed")


def test_a_secret_client_cannot_use_an_assertion(driver: Driver, clock: FakeClock,
                                                 rsa_key: tuple[Any, dict[str, Any]]) -> None:
    private, _ = rsa_key
    client, _ = driver.client(scope="profile", grant_types=["client_credentials"],
                              redirect_uris=[])
    refused(token(driver, assertion(client.client_id, private, "RS256", clock)))


def test_registration_rules(driver: Driver, rsa_key: tuple[Any, dict[str, Any]]) -> None:
    private, public = rsa_key
    with pytest.raises(RegistrationError, match="either jwks"):
        driver.client(token_endpoint_auth_method="private_key_jwt")
    with pytest.raises(RegistrationError, match="public keys only"):
        secret = {"kty": "oct", "k": "c2VjcmV0"}
        driver.client(token_endpoint_auth_method="private_key_jwt", jwks={"keys": [secret]})
    with pytest.raises(RegistrationError, match="https"):
        driver.client(token_endpoint_auth_method="private_key_jwt",
                      jwks_uri="http://keys.example.com/jwks")
    full = jwt.algorithms.RSAAlgorithm.to_jwk(private, as_dict=True)
    with pytest.raises(RegistrationError, match="public keys only"):
        driver.client(token_endpoint_auth_method="private_key_jwt", jwks={"keys": [full]})


def second_store(store: Store, clock: FakeClock) -> Store:
    """Another connection to the same storage, as another worker process would open."""
    if isinstance(store, SQLiteStore):
        return SQLiteStore(store.path, clock=clock)
    if isinstance(store, RedisStore):
        return RedisStore(store.url, prefix=store.prefix, clock=clock)
    if isinstance(store, RedisClusterStore):
        return RedisClusterStore(store.url, prefix=store.prefix, clock=clock)
    if isinstance(store, PostgresStore):
        return PostgresStore(store.url, clock=clock)
    assert isinstance(store, MemoryStore)
    return store


def test_jti_is_single_use_across_workers(shared: Path, store: Store, clock: FakeClock,
                                          rsa_key: tuple[Any, dict[str, Any]]) -> None:
    private, public = rsa_key
    first = Driver.of(make_app(shared, store, clock))
    other = second_store(store, clock)
    second = Driver.of(make_app(shared, other, clock))
    client_id = register(first, public)
    signed = assertion(client_id, private, "RS256", clock)
    assert token(first, signed).status_code == 200
    refused(token(second, signed), "jwt id")
    assert token(second, assertion(client_id, private, "RS256", clock)).status_code == 200
    if other is not store:
        other.close()


def test_cli_registers_a_private_key_jwt_client(tmp_path: Path,
                                                rsa_key: tuple[Any, dict[str, Any]]) -> None:
    _, public = rsa_key
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public]}))
    runner = CliRunner()
    instance = str(tmp_path / "inst")
    assert runner.invoke(cli, ["--instance", instance, "init"], env={"UAUTH_ISSUER": ISSUER},
                         obj=create_app).exit_code == 0
    result = runner.invoke(cli, ["--instance", instance, "client", "add", "--name", "Svc",
                                 "--grant-type", "client_credentials", "--jwks", str(jwks),
                                 "--token-endpoint-auth-method", "private_key_jwt", "--json"],
                           env={"UAUTH_ISSUER": ISSUER}, obj=create_app)
    assert result.exit_code == 0, result.output
    created = json.loads(result.output.strip().splitlines()[-1])
    assert created["client_secret"] is None
    bad = runner.invoke(cli, ["--instance", instance, "client", "add", "--name", "Svc",
                              "--grant-type", "client_credentials", "--jwks-uri",
                              "http://keys.example.com/jwks"], env={"UAUTH_ISSUER": ISSUER},
                         obj=create_app)
    assert bad.exit_code == 1 and "https" in bad.output


def test_cli_client_update_takes_the_key_options(tmp_path: Path,
                                                 rsa_key: tuple[Any, dict[str, Any]]) -> None:
    """`client update` accepts what `client add` does for private_key_jwt: a secret client
    becomes a key client (its secret is dropped), and --jwks replaces a --jwks-uri."""
    _, public = rsa_key
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public]}))
    runner = CliRunner()
    instance = tmp_path / "inst"
    env = {"UAUTH_ISSUER": ISSUER}

    def run(*args: str) -> Result:
        return runner.invoke(cli, ["--instance", str(instance), *args], env=env, obj=create_app)

    assert run("init").exit_code == 0
    created = json.loads(run("client", "add", "--name", "Svc", "--grant-type",
                             "client_credentials", "--json").output.strip().splitlines()[-1])
    client_id = created["client_id"]
    assert created["client_secret"]
    store = SQLiteStore(instance / "uauth.db")

    def stored() -> Client:
        found = get_client(store, client_id)
        assert found is not None
        return found

    moved = run("client", "update", client_id, "--token-endpoint-auth-method", "private_key_jwt",
                "--jwks-uri", "https://keys.example.com/jwks")
    assert moved.exit_code == 0, moved.output
    after = stored()
    assert after.token_endpoint_auth_method == "private_key_jwt"
    assert after.jwks_uri == "https://keys.example.com/jwks" and after.secret_hash is None
    inline = run("client", "update", client_id, "--jwks", str(jwks))
    assert inline.exit_code == 0, inline.output
    assert stored().jwks == {"keys": [public]} and stored().jwks_uri is None
    refused = run("client", "update", client_id, "--jwks-uri", "http://keys.example.com/jwks")
    assert refused.exit_code == 1 and "https" in refused.output
    store.close()

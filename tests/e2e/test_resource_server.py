"""A separate resource server that knows only the issuer URL, against real running providers.

It finds the JWKS through discovery, caches it, fetches it again when a token names a new key
(a rotation), and does not let tokens with made-up ``kid`` values hammer the provider.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import jwt
import pytest
from authlib.integrations.requests_client import OAuth2Session
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask import request
from flask.typing import ResponseReturnValue
from werkzeug.serving import make_server

from tests.app_driver import json_of
from tests.e2e.conftest import REDIRECT
from tests.e2e.conftest import Provider
from tests.e2e.test_code_flow import run_flow
from tests.redis_server import free_port
from uauth import ResourceProtector
from uauth import create_app
from uauth import current_token
from uauth.core.keys import new_signing_key
from uauth.core.keys import pem_of
from uauth.core.tokens import mint_access_token
from uauth.extension import get_state
from uauth.ops.instance import KEYS_DIR
from uauth.storage.memory import MemoryStore


def resource_server(protector: ResourceProtector) -> Flask:
    app = Flask("resource-server")

    @app.get("/profile")
    @protector.require_token(scope="profile")
    def profile() -> ResponseReturnValue:
        return {"sub": current_token.sub, "client_id": current_token.client_id,
                "scopes": sorted(current_token.scopes), "user": current_token.user}

    @app.get("/phone")
    @protector.require_token(scope="phone")
    def phone() -> ResponseReturnValue:
        return {"sub": current_token.sub}

    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_resource_server_validates_tokens_knowing_only_the_issuer(provider: Provider) -> None:
    user = provider.add_user()
    client, secret = provider.add_client()
    session = OAuth2Session(client.client_id, secret, scope="openid profile",
                            redirect_uri=REDIRECT)
    token, _ = run_flow(provider, session, user.username, pkce=False)
    api = resource_server(ResourceProtector.for_issuer(provider.url)).test_client()

    ok = api.get("/profile", headers=bearer(token["access_token"]))
    assert ok.status_code == 200, ok.text
    assert ok.json == {"sub": provider.sub(user, client), "client_id": client.client_id,
                       "scopes": ["openid", "profile"], "user": None}
    scope = api.get("/phone", headers=bearer(token["access_token"]))
    assert scope.status_code == 403
    assert scope.headers["WWW-Authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", error_description="The token lacks a '
        'scope this resource requires.", scope="phone"')
    id_token = api.get("/profile", headers=bearer(token["id_token"]))
    assert id_token.status_code == 401 and json_of(id_token)["error"] == "invalid_token"
    none = api.get("/profile")
    assert none.status_code == 401 and none.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    head, body, signature = token["access_token"].split(".")
    forged = f"{head}.{body}.{signature[:-4]}AAAA"
    assert api.get("/profile", headers=bearer(forged)).status_code == 401


@dataclass
class LiveProvider:
    """An in-process provider on a real socket whose key set a test can rotate."""

    app: Flask
    url: str
    instance: Path
    hits: list[str] = field(default_factory=list)

    def token(self, scope: str = "openid profile") -> str:
        with self.app.app_context():
            raw, _ = mint_access_token(get_state(), client_id="c1", sub="u1", scope=scope,
                                       grant_id=None)
        return raw

    def rotate(self) -> str:
        """Add a newer signing key that signs at once, as ``uauth keys rotate --now`` does."""
        with self.app.app_context():
            return get_state().keys.rotate(["RS256"], immediately=True)[0].kid

    def fetches(self, path: str) -> int:
        return sum(1 for hit in self.hits if hit == path)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveProvider]:
    instance = tmp_path / "instance"
    older = new_signing_key("RS256", int(time.time()) - 100)  # imported as the first key
    (instance / KEYS_DIR).mkdir(parents=True)
    (instance / KEYS_DIR / f"RS256-{older.created}.pem").write_bytes(pem_of(older))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app({"UAUTH_ISSUER": url}, store=MemoryStore(), instance_path=instance)
    provider = LiveProvider(app, url, instance)

    @app.before_request
    def count() -> None:
        provider.hits.append(request.path)

    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield provider
    server.shutdown()
    thread.join()


def test_a_new_key_is_fetched_when_a_token_names_it(live: LiveProvider) -> None:
    api = resource_server(ResourceProtector.for_issuer(live.url, cooldown=0)).test_client()
    assert api.get("/profile", headers=bearer(live.token())).status_code == 200
    assert api.get("/profile", headers=bearer(live.token())).status_code == 200
    assert live.fetches("/.well-known/openid-configuration") == 1
    assert live.fetches("/jwks.json") == 1  # cached
    new_kid = live.rotate()
    rotated = live.token()
    assert jwt.get_unverified_header(rotated)["kid"] == new_kid
    assert api.get("/profile", headers=bearer(rotated)).status_code == 200
    assert live.fetches("/jwks.json") == 2


def test_made_up_key_ids_do_not_make_it_refetch_within_the_cooldown(live: LiveProvider) -> None:
    api = resource_server(ResourceProtector.for_issuer(live.url)).test_client()
    assert api.get("/profile", headers=bearer(live.token())).status_code == 200
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(live.token(), options={"verify_signature": False})
    for n in range(5):
        forged = jwt.encode(claims, stranger, algorithm="RS256",
                            headers={"kid": f"made-up-{n}", "typ": "at+jwt"})
        response = api.get("/profile", headers=bearer(forged))
        assert response.status_code == 401 and json_of(response)["error"] == "invalid_token"
    assert live.fetches("/jwks.json") == 1


def test_an_issuer_that_does_not_match_its_discovery_document_is_not_trusted(
        live: LiveProvider) -> None:
    api = resource_server(ResourceProtector.for_issuer(live.url + "/")).test_client()
    response = api.get("/profile", headers=bearer(live.token()))
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert live.fetches("/jwks.json") == 0


def test_an_unreachable_issuer_is_an_outage_not_a_bad_token() -> None:
    api = resource_server(ResourceProtector.for_issuer(
        f"http://127.0.0.1:{free_port()}", timeout=1)).test_client()
    token = jwt.encode({"sub": "u1"}, "k" * 32, algorithm="HS256",
                       headers={"typ": "at+jwt", "kid": "k1"})
    response = api.get("/profile", headers=bearer(token))
    assert response.status_code == 503 and json_of(response)["error"] == "temporarily_unavailable"

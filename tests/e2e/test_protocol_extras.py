"""Pushed authorization requests, request objects and the device grant through a real server,
with Authlib's client where it has the feature and plain HTTP where it has not."""

from __future__ import annotations

import json
import secrets
import time
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.browser import Browser
from tests.browser import location
from tests.e2e.conftest import REDIRECT
from tests.e2e.conftest import Provider


def test_pushed_authorization_request(provider: Provider) -> None:
    """Authlib's client builds the request (state, nonce, PKCE) and redeems the code; it has no
    PAR call, so the push is a plain POST with the client's credentials (RFC 9126 §2)."""
    user = provider.add_user()
    client, secret = provider.add_client(require_pushed_authorization_requests=True)
    assert secret is not None
    meta = provider.discovery
    assert meta["pushed_authorization_request_endpoint"] == provider.url + "/par"
    session = OAuth2Session(client.client_id, secret, scope="openid email",
                            redirect_uri=REDIRECT, code_challenge_method="S256")
    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(meta["authorization_endpoint"],
                                                  code_verifier=verifier, nonce="n-1")
    browser = Browser(provider.url)
    refused = location(browser.authorize(url, username=user.username))
    assert dict(parse_qsl(urlsplit(refused).query))["error"] == "invalid_request", \
        "this client must push"
    pushed = requests.post(meta["pushed_authorization_request_endpoint"], timeout=10,
                           data=dict(parse_qsl(urlsplit(url).query)),
                           auth=(client.client_id, secret))
    assert pushed.status_code == 201, pushed.text
    front = meta["authorization_endpoint"] + "?" + urlencode(
        {"client_id": client.client_id, "request_uri": pushed.json()["request_uri"]})
    callback = location(browser.authorize(front, username=user.username))
    assert dict(parse_qsl(urlsplit(callback).query))["state"] == state
    token = session.fetch_token(meta["token_endpoint"], authorization_response=callback,
                                code_verifier=verifier)
    assert token["scope"] == "openid email" and token["id_token"]
    replay = browser.http.get(front, allow_redirects=False, timeout=10)
    assert replay.status_code == 400, "a request_uri answers once"


def test_signed_request_object(provider: Provider) -> None:
    """The request signed with PyJWT by a key the client registered; Authlib redeems the code."""
    user = provider.add_user()
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": "k1"}
    client, secret = provider.add_client(jwks={"keys": [jwk]})
    meta = provider.discovery
    assert "ES256" in meta["request_object_signing_alg_values_supported"]
    session = OAuth2Session(client.client_id, secret, scope="openid", redirect_uri=REDIRECT)
    claims = {"iss": client.client_id, "aud": provider.url, "exp": int(time.time()) + 120,
              "client_id": client.client_id, "response_type": "code", "scope": "openid email",
              "redirect_uri": REDIRECT, "state": "signed-state", "nonce": "n-2"}
    request = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})
    front = meta["authorization_endpoint"] + "?" + urlencode(
        {"client_id": client.client_id, "response_type": "code", "scope": "openid",
         "request": request})
    callback = location(Browser(provider.url).authorize(front, username=user.username))
    assert dict(parse_qsl(urlsplit(callback).query))["state"] == "signed-state"
    token = session.fetch_token(meta["token_endpoint"], authorization_response=callback)
    assert token["scope"] == "openid email", "the object's scope, not the query's"


def test_device_authorization_grant(provider: Provider) -> None:
    """The device polls with plain HTTP (Authlib's client has no device flow); the person's
    part through the scripted browser (the Chromium version is in test_device_browser)."""
    device = "urn:ietf:params:oauth:grant-type:device_code"
    user = provider.add_user()
    client, secret = provider.add_client(redirect_uris=[], grant_types=[device])
    assert secret is not None
    meta = provider.discovery
    started = requests.post(meta["device_authorization_endpoint"], timeout=10,
                            data={"scope": "openid"}, auth=(client.client_id, secret))
    assert started.status_code == 200, started.text
    body = started.json()

    def poll() -> requests.Response:
        return requests.post(meta["token_endpoint"], timeout=10, auth=(client.client_id, secret),
                             data={"grant_type": device, "device_code": body["device_code"]})

    browser = Browser(provider.url)
    browser.authorize(provider.url + "/login", username=user.username)
    page = browser.http.get(body["verification_uri_complete"], timeout=10)
    assert body["user_code"] in page.text
    done = browser.submit(page, {}, ("decision", "allow"))
    assert 'data-device-result="approved"' in done.text
    answer = poll()  # the first poll: no interval to respect yet
    assert answer.status_code == 200, answer.text
    assert answer.json()["id_token"] and "refresh_token" not in answer.json()
    assert poll().json()["error"] == "invalid_grant", "redeemed once"

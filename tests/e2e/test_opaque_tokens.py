"""Opaque access tokens through a real server, per storage backend, with Authlib's client:
userinfo, rotation, introspection and revocation take them; a JWKS-only validator refuses them."""

from __future__ import annotations

import pytest
from authlib.integrations.requests_client import OAuth2Session

from tests.e2e.conftest import Provider
from tests.e2e.test_token_lifecycle import offline_grant
from tests.e2e.test_token_lifecycle import post
from tests.e2e.test_token_lifecycle import userinfo_status
from uauth.core.tokens import InvalidToken
from uauth.resource import TokenValidator


def test_an_opaque_client_through_a_real_server(provider: Provider) -> None:
    client, secret = provider.add_client(access_token_format="opaque")
    first = offline_grant(provider, client.client_id, secret)
    token = first["access_token"]
    assert "." not in token and len(token) >= 43
    assert userinfo_status(provider, token) == 200
    session = OAuth2Session(client.client_id, secret, token=first)
    rotated = session.refresh_token(provider.url + "/token")["access_token"]
    assert "." not in rotated and rotated != token
    found = post(provider, "/introspect", client.client_id, secret, token=rotated).json()
    assert found["active"] is True and found["client_id"] == client.client_id
    assert found["iss"] == provider.url and found["aud"] == provider.url
    assert post(provider, "/revoke", client.client_id, secret, token=rotated).status_code == 200
    assert userinfo_status(provider, rotated) == 401
    assert post(provider, "/introspect", client.client_id, secret,
                token=rotated).json() == {"active": False}
    assert userinfo_status(provider, token) == 200, "revoking one access token spares the others"
    with pytest.raises(InvalidToken, match="use token introspection"):
        TokenValidator(provider.url).validate(token)


def test_client_credentials_with_an_opaque_client(provider: Provider) -> None:
    client, secret = provider.add_client(grant_types=["client_credentials"], redirect_uris=[],
                                         scope="profile", access_token_format="opaque")
    session = OAuth2Session(client.client_id, secret, scope="profile")
    token = session.fetch_token(provider.url + "/token", grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and "." not in token["access_token"]
    found = post(provider, "/introspect", client.client_id, secret,
                 token=token["access_token"]).json()
    assert found["active"] is True and found["sub"] == client.client_id
    assert found["scope"] == "profile"

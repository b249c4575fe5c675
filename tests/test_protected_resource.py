"""RFC 9728 in the embedding API: a host app declares its resource; uauth serves the metadata
(path form), names it in 401 challenges, and refuses tokens minted for another resource."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.conftest import FakeClock
from uauth import UAuth
from uauth import current_token
from uauth.core.clients import Registration
from uauth.core.clients import register_client
from uauth.extension import get_state
from uauth.resource import serve_metadata
from uauth.storage import Store
from uauth.web.protected_resource import metadata_url

RESOURCE = "http://localhost/mcp"
OTHER = "https://calendar.example.com/api"


@pytest.fixture
def host(tmp_path: Path, store: Store, clock: FakeClock) -> Flask:
    app = Flask("host", instance_path=str(tmp_path / "instance"))
    app.config.update(SECRET_KEY="k" * 32, TESTING=True, UAUTH_ISSUER="http://localhost",
                      UAUTH_URL_PREFIX="/auth", UAUTH_RESOURCES={
                          RESOURCE: {"name": "Notes MCP", "scopes": ["notes"]},
                          OTHER: {"name": "Calendar", "scopes": ["calendar"]}})
    uauth = UAuth(app, store=store, clock=clock)
    mcp = uauth.protected_resource(RESOURCE)

    @app.post("/mcp")
    @mcp.require_token("notes")
    def tool() -> dict[str, str]:
        return {"client_id": current_token.client_id}

    return app


def token_for(app: Flask, resource: str) -> str:
    with app.app_context():
        client, secret = register_client(get_state().store, Registration(
            name="Agent", redirect_uris=[], scope="notes calendar",
            grant_types=["client_credentials"], audiences=[RESOURCE, OTHER]))
    answer = app.test_client().post("/auth/token", headers=basic_auth(client.client_id, secret),
                                    data={"grant_type": "client_credentials",
                                          "scope": "notes", "resource": resource})
    assert answer.status_code == 200, json_of(answer)
    return str(json_of(answer)["access_token"])


def test_metadata_is_served_in_the_path_form(host: Flask) -> None:
    assert metadata_url(RESOURCE) == "http://localhost/.well-known/oauth-protected-resource/mcp"
    response = host.test_client().get("/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 200
    assert response.json == {"resource": RESOURCE, "authorization_servers": ["http://localhost"],
                             "bearer_methods_supported": ["header"],
                             "scopes_supported": ["notes"], "resource_name": "Notes MCP"}
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_challenges_name_the_metadata(host: Flask) -> None:
    response = host.test_client().post("/mcp")
    assert response.status_code == 401
    header = response.headers["WWW-Authenticate"]
    assert header.startswith("Bearer ") and 'error=' not in header
    assert f'resource_metadata="{metadata_url(RESOURCE)}"' in header


def test_only_tokens_for_this_resource_are_accepted(host: Flask) -> None:
    mine = token_for(host, RESOURCE)
    ok = host.test_client().post("/mcp", headers={"Authorization": f"Bearer {mine}"})
    assert ok.status_code == 200 and json_of(ok)["client_id"]
    theirs = token_for(host, OTHER)
    refused = host.test_client().post("/mcp", headers={"Authorization": f"Bearer {theirs}"})
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert "resource_metadata=" in refused.headers["WWW-Authenticate"]


def test_a_separate_resource_server_serves_its_metadata_and_names_it() -> None:
    from uauth.resource import ResourceProtector

    api = Flask("api")
    resource = "https://api.example.com/v1"
    serve_metadata(api, resource, ["https://id.example.com"], scopes=["notes"])
    protector = ResourceProtector.for_issuer("https://id.example.com", audience=resource,
                                             resource_metadata=metadata_url(resource))

    @api.get("/v1/notes")
    @protector.require_token("notes")
    def notes() -> dict[str, str]:
        return {}

    http = api.test_client()
    document = json_of(http.get("/.well-known/oauth-protected-resource/v1"))
    assert document["resource"] == resource
    assert document["authorization_servers"] == ["https://id.example.com"]
    challenge = http.get("/v1/notes").headers["WWW-Authenticate"]
    assert 'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/v1"' \
        in challenge


def test_a_resource_must_be_an_absolute_uri() -> None:
    with pytest.raises(ValueError, match="absolute"):
        UAuth().protected_resource("/mcp")

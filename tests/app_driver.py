"""In-process provider for tests that need an injected clock or special settings."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.browser import csrf_token
from uauth import create_app
from uauth.core.clients import Registration
from uauth.core.clients import RegistrationRules
from uauth.core.clients import register_client
from uauth.core.models import Client
from uauth.core.models import User
from uauth.core.users import StoreUsers
from uauth.extension import get_state
from uauth.storage import Store

REDIRECT = "http://127.0.0.1:8399/cb"
PASSWORD = "password123"


def basic_auth(client_id: str, secret: str | None) -> dict[str, str]:
    """``Authorization: Basic`` for a client's credentials (RFC 6749 §2.3.1)."""
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def json_of(response: TestResponse) -> dict[str, Any]:
    """The JSON object in a test client's response; fails the test on anything else."""
    body = response.get_json(silent=True)
    assert isinstance(body, dict), (response.status_code, response.text[:500])
    return body


def own_users() -> StoreUsers:
    """The current app's user directory: uauth's own, which tests may edit directly."""
    users = get_state().users
    assert isinstance(users, StoreUsers), users
    return users


def make_app(tmp_path: Path, store: Store, clock: Any, **config: Any) -> Flask:
    return create_app({"UAUTH_ISSUER": "http://localhost", "TESTING": True, **config},
                      store=store, clock=clock, instance_path=tmp_path / "instance")


@dataclass
class Driver:
    """Runs flows against an in-process app through Flask's test client."""

    app: Flask
    http: FlaskClient

    @classmethod
    def of(cls, app: Flask) -> Driver:
        return cls(app, app.test_client())

    def user(self, username: str = "alice", **profile: Any) -> User:
        with self.app.app_context():
            return own_users().create(username, PASSWORD, profile)

    def client(self, **kwargs: Any) -> tuple[Client, str | None]:
        kwargs.setdefault("name", "App")
        kwargs.setdefault("redirect_uris", [REDIRECT])
        with self.app.app_context():
            state = get_state()
            rules = RegistrationRules(  # what the caller names of the provider's rules
                **{name: kwargs.pop(name) for name in ("known_scopes", "known_attributes",
                                                        "enabled_algs") if name in kwargs},
                default_subject_type=state.settings.default_subject_type,
                default_access_token_format=state.settings.access_token_format,
                fetch_allowed_hosts=kwargs.pop("fetch_allowed_hosts",
                                               state.settings.fetch_allowed_hosts))
            now = kwargs.pop("now", 0)
            return register_client(state.store, Registration(**kwargs), rules, now=now)

    def login(self, username: str = "alice", password: str = PASSWORD, next_url: str = ""
              ) -> TestResponse:
        return self.login_at("/login" + (f"?next={next_url}" if next_url else ""), username,
                             password)

    def login_at(self, url: str, username: str = "alice", password: str = PASSWORD
                 ) -> TestResponse:
        """Fill in the login page at ``url`` (e.g. where /authorize redirected)."""
        page = self.http.get(url)
        token = csrf_token(page.text)
        return self.http.post(page.request.full_path, data={
            "csrf_token": token, "username": username, "password": password})

    def authorize(self, **params: str) -> TestResponse:
        """GET /authorize, answering a consent page with allow."""
        response = self.http.get("/authorize", query_string=params)
        if response.status_code == 200 and 'name="consent"' in response.text:
            token = csrf_token(response.text)
            hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">',
                                response.text)
            assert token
            data = {**{k: html.unescape(v) for k, v in hidden}, "csrf_token": token,
                    "consent": "allow"}
            response = self.http.post("/authorize", data=data)
        return response

    def code(self, client_id: str, **params: str) -> str:
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
                  "scope": "openid", **params}
        response = self.authorize(**params)
        assert response.status_code == 302, response.text
        return parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]

    def token(self, client_id: str, secret: str | None, **data: str) -> TestResponse:
        headers = basic_auth(client_id, secret) if secret else {}
        if not secret:
            data["client_id"] = client_id
        return self.http.post("/token", data={"grant_type": "authorization_code",
                                              "redirect_uri": REDIRECT, **data}, headers=headers)

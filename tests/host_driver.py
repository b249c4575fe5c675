"""Drives Notes (examples/embedded), an app-factory host that embeds uauth, in process.

Notes has its own users table, LoginManager and login page, CSRFProtect, blueprints, and
mounts uauth under /auth with the issuer http://localhost/auth (or whatever a test picks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient

from examples.embedded.notes import create_app as create_notes
from examples.embedded.notes import users as notes_users
from tests.app_driver import basic_auth
from tests.browser import csrf_token
from uauth.core.clients import Registration
from uauth.core.clients import register_client
from uauth.core.models import Client
from uauth.extension import get_state

ISSUER = "http://localhost/auth"
REDIRECT = "http://127.0.0.1:8399/cb"
PASSWORD = "correct horse battery"


def make_notes(path: Path, **config: Any) -> Flask:
    return create_notes({"TESTING": True, "UAUTH_ISSUER": ISSUER, **config}, instance_path=path)


@dataclass
class Host:
    app: Flask
    http: FlaskClient
    base_url: str = "http://localhost"

    @classmethod
    def of(cls, app: Flask, base_url: str = "http://localhost") -> Host:
        return cls(app, app.test_client(), base_url)

    def add_user(self, email: str = "alice@example.com", name: str = "Alice") -> str:
        with self.app.app_context():
            return str(notes_users.add_user(email, name, PASSWORD))

    def add_client(self, scope: str = "openid profile notes") -> tuple[Client, str]:
        with self.app.app_context():
            client, secret = register_client(get_state().store, Registration(
                name="Notes Mobile", redirect_uris=[REDIRECT], scope=scope))
        assert secret is not None
        return client, secret

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.http.get(url, base_url=self.base_url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.http.post(url, base_url=self.base_url, **kwargs)

    def login(self, url: str, email: str = "alice@example.com", password: str = PASSWORD) -> Any:
        """Fill in Notes' own login page at ``url`` (it carries ``next``)."""
        page = self.get(url)
        assert "Log in to Notes" in page.text
        return self.post(page.request.full_path, data={
            "csrf_token": csrf_token(page.text), "email": email, "password": password})

    def authorize(self, client_id: str, scope: str, email: str = "alice@example.com") -> Any:
        """The whole front channel: /auth/authorize, Notes' login, uauth's consent (allow)."""
        response = self.get("/auth/authorize", query_string={
            "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
            "scope": scope, "state": "s-1", "nonce": "n-1"})
        if response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login":
            response = self.login(response.headers["Location"], email)
            assert response.status_code == 302, response.text
            response = self.get(response.headers["Location"])
        if response.status_code == 200 and 'name="consent"' in response.text:
            hidden = dict(_hidden_fields(response.text))
            response = self.post("/auth/authorize", data={
                **hidden, "csrf_token": csrf_token(response.text), "consent": "allow"})
        return response

    def tokens(self, client: Client, secret: str, scope: str) -> dict[str, Any]:
        response = self.authorize(client.client_id, scope)
        assert response.status_code == 302, response.text
        params = parse_qs(urlsplit(response.headers["Location"]).query)
        assert params["iss"] == [self.issuer] and params["state"] == ["s-1"]
        token = self.post("/auth/token", headers=basic_auth(client.client_id, secret), data={
            "grant_type": "authorization_code", "code": params["code"][0],
            "redirect_uri": REDIRECT})
        assert token.status_code == 200, token.text
        body: dict[str, Any] = token.json
        return body

    def alice_tokens(self, scope: str = "openid profile notes") -> dict[str, Any]:
        """A fresh user and client, and the tokens the user grants the client."""
        self.add_user()
        client, secret = self.add_client()
        return self.tokens(client, secret, scope)

    @property
    def issuer(self) -> str:
        return str(self.app.config["UAUTH_ISSUER"])

    def api(self, token: str | None, method: str = "GET", **kwargs: Any) -> Any:
        """Call Notes' API from a client without cookies: only the bearer token counts."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = self.app.test_client()
        return client.open("/api/notes", method=method, headers=headers,
                           base_url=self.base_url, **kwargs)


def _hidden_fields(html: str) -> list[tuple[str, str]]:
    import re

    return re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)

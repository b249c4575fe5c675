"""Property-based fuzzing: thousands of generated requests to /authorize, /token, /userinfo,
/revoke and /introspect never get a 5xx, and every back-channel error is a well-formed OAuth
error body. The in-process app keeps it to seconds; a real client, a real user and real tokens
are mixed into the garbage so the generated requests reach deep into the grants."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.storage.memory import MemoryStore

#: Per endpoint test; five of them: 3,000 requests in ~15 s. UAUTH_FUZZ_EXAMPLES digs deeper.
EXAMPLES = int(os.environ.get("UAUTH_FUZZ_EXAMPLES", "600"))
# Random examples locally (each run explores anew); CI replays a fixed set, so its verdict
# depends on the code alone.
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=bool(os.environ.get("CI")),
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

ERROR_CODES = {
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope", "invalid_target", "invalid_token",
    "insufficient_scope", "unsupported_token_type", "temporarily_unavailable", "access_denied",
}
PARAMS = ["grant_type", "code", "redirect_uri", "client_id", "client_secret", "code_verifier",
          "refresh_token", "scope", "token", "token_type_hint", "resource", "audience",
          "response_type", "state", "nonce", "prompt", "max_age", "id_token_hint",
          "code_challenge", "code_challenge_method", "response_mode", "claims", "request",
          "login_hint", "access_token"]


def wire_safe(text: str) -> bool:
    """What an HTTP header can carry at all (no CR/LF; werkzeug refuses them)."""
    return text.isascii() and "\r" not in text and "\n" not in text


class World:
    """One provider with a user, a confidential and a public client, and live tokens."""

    def __init__(self, tmp_path: Path) -> None:
        clock = FakeClock()
        self.driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock,
                                         UAUTH_THROTTLE=False))
        self.driver.user()
        client, secret = self.driver.client(
            grant_types=["authorization_code", "refresh_token", "client_credentials"],
            always_issue_refresh_token=True)
        assert secret
        self.client_id, self.secret = client.client_id, secret
        public, _ = self.driver.client(public=True)
        self.public_id = public.client_id
        self.driver.login()
        code = self.driver.code(self.client_id)
        tokens = json_of(self.driver.token(self.client_id, secret, code=code))
        self.access_token = tokens["access_token"]
        self.refresh_token = tokens["refresh_token"]
        self.id_token = tokens["id_token"]

    def values(self) -> st.SearchStrategy[str]:
        real = [self.client_id, self.public_id, self.secret, self.access_token,
                self.refresh_token, self.id_token, REDIRECT, "authorization_code",
                "refresh_token", "client_credentials", "openid", "openid profile", "code",
                "S256", "plain", "form_post", "none", "login", '{"userinfo": {"email": null}}',
                "access_token", "0", "-1", "x" * 200]
        return st.one_of(st.sampled_from(real), st.text(max_size=60),
                         st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                         st.sampled_from(real).map(lambda v: v[: len(v) // 2] + "\x00"))

    def params(self) -> st.SearchStrategy[list[tuple[str, str]]]:
        names = st.one_of(st.sampled_from(PARAMS), st.text(min_size=1, max_size=12))
        return st.lists(st.tuples(names, self.values()), max_size=10)

    def authorization(self) -> st.SearchStrategy[dict[str, str]]:
        def b64(raw: bytes) -> str:
            return base64.b64encode(raw).decode()

        return st.one_of(
            st.just({}),
            st.just({"Authorization": "Basic " + b64(f"{self.client_id}:{self.secret}".encode())}),
            st.binary(max_size=30).map(lambda b: {"Authorization": "Basic " + b64(b)}),
            st.text(max_size=30).filter(wire_safe).map(lambda t: {"Authorization": "Basic " + t}),
            st.sampled_from([self.access_token, self.id_token, self.refresh_token, "x.y.z"]).map(
                lambda t: {"Authorization": "Bearer " + t}),
            st.text(max_size=40).filter(wire_safe).map(lambda t: {"Authorization": t}),
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield World(tmp_path_factory.mktemp("fuzz"))


def body_and_type(params: list[tuple[str, str]], kind: str) -> tuple[Any, str]:
    if kind == "json":
        return json.dumps(dict(params)), "application/json"
    if kind == "json-garbage":
        return json.dumps([p[1] for p in params] or {"a": [1]}), "application/json"
    if kind == "text":
        return "&".join(f"{k}={v}" for k, v in params), "text/plain"
    return MultiDict(params), "application/x-www-form-urlencoded"


def check_back_channel(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400 and response.data:
        assert response.mimetype == "application/json"
        body = response.json
        assert isinstance(body, dict) and body.get("error") in ERROR_CODES, body
        description = body.get("error_description", "")
        assert isinstance(description, str)
        assert all(0x20 <= ord(ch) < 0x7F and ch not in '"\\' for ch in description), description


KINDS = st.sampled_from(["form", "form", "json", "json-garbage", "text"])


@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
def test_back_channel_endpoints_never_fail(world: World, path: str) -> None:
    @FUZZ
    @given(params=world.params(), headers=world.authorization(), kind=KINDS)
    def run(params: list[tuple[str, str]], headers: dict[str, str], kind: str) -> None:
        body, content_type = body_and_type(params, kind)
        response = world.driver.app.test_client().post(
            path, data=body, headers={**headers, "Content-Type": content_type})
        check_back_channel(response)

    run()


def test_userinfo_never_fails(world: World) -> None:
    @FUZZ
    @given(params=world.params(), headers=world.authorization(),
           method=st.sampled_from(["GET", "POST"]), kind=KINDS)
    def run(params: list[tuple[str, str]], headers: dict[str, str], method: str,
            kind: str) -> None:
        client = world.driver.app.test_client()
        if method == "GET":
            response = client.get("/userinfo", query_string=MultiDict(params), headers=headers)
        else:
            body, content_type = body_and_type(params, kind)
            response = client.post("/userinfo", data=body,
                                   headers={**headers, "Content-Type": content_type})
        check_back_channel(response)
        if response.status_code in (401, 403):
            assert response.headers["WWW-Authenticate"].startswith("Bearer")

    run()


def test_authorize_never_fails(world: World) -> None:
    base = st.fixed_dictionaries({}, optional={
        "client_id": st.sampled_from([world.client_id, world.public_id]),
        "redirect_uri": st.just(REDIRECT), "response_type": st.just("code"),
        "scope": st.just("openid")}).map(lambda d: list(d.items()))

    @FUZZ
    @given(valid=base, params=world.params(), method=st.sampled_from(["GET", "POST"]))
    def run(valid: list[tuple[str, str]], params: list[tuple[str, str]], method: str) -> None:
        http = world.driver.http  # signed in: the generated requests reach consent and codes
        query = MultiDict(valid + params)
        if method == "GET":
            response = http.get("/authorize", query_string=query)
        else:
            response = http.post("/authorize", data=query)
        assert response.status_code < 500, response.text
        assert response.status_code in (200, 302, 400, 403, 413)
        if response.status_code == 302:
            location = response.headers["Location"]
            assert location.startswith((REDIRECT, "/login"))
            if location.startswith(REDIRECT):
                assert "code=" in location or "error=" in location
        elif response.status_code != 200 or "form_post" not in str(query):
            assert response.mimetype == "text/html" and "Traceback" not in response.text

    run()

"""Issue 17 item 7: deeply nested JSON is a clean invalid_request, never a 500."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest

from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.core import jsondepth
from uauth.storage.memory import MemoryStore

DEEP = "[" * 3000 + "]" * 3000


def test_depth_check_ignores_brackets_inside_strings() -> None:
    assert jsondepth.loads('{"a": "' + "[" * 100 + '"}') == {"a": "[" * 100}
    with pytest.raises(ValueError):
        jsondepth.loads(DEEP)


def test_deep_json_token_body_is_invalid_request(tmp_path: Path, clock: FakeClock) -> None:
    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    body = '{"grant_type": "authorization_code", "x": ' + DEEP + "}"
    response = d.http.post("/token", data=body, content_type="application/json")
    assert response.status_code == 400
    assert json_of(response)["error"] == "invalid_request"


def test_deep_claims_parameter_is_invalid_request(tmp_path: Path, clock: FakeClock) -> None:
    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    d.user()
    client, _ = d.client()
    d.login()
    claims = '{"userinfo": {"email": ' + "[" * 1500 + "]" * 1500 + "}}"
    response = d.http.get("/authorize", query_string={
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
        "scope": "openid", "claims": claims})
    assert response.status_code in (302, 400), response.status_code
    if response.status_code == 302:
        query = parse_qs(urlsplit(response.headers["Location"]).query)
        assert query["error"] == ["invalid_request"]


def test_deep_bearer_token_is_refused_cleanly(tmp_path: Path, clock: FakeClock) -> None:
    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    header = base64.urlsafe_b64encode(DEEP.encode()).decode().rstrip("=")
    response = d.http.get("/userinfo", headers={"Authorization": f"Bearer {header}.e30.sig"})
    assert response.status_code == 401

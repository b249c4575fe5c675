"""The device authorization grant with a person in a real browser (Chromium via Playwright):
the device is plain HTTP (Authlib's client has no device flow), the person signs in, opens
``verification_uri_complete``, checks the code and allows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.e2e.conftest import PASSWORD
from tests.e2e.conftest import Provider
from tests.e2e.conftest import _gunicorn_provider

pytestmark = pytest.mark.slow

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    yield from _gunicorn_provider(tmp_path_factory.mktemp("device"), "sqlite", None)


def poll(site: Provider, client_id: str, device_code: str) -> requests.Response:
    return requests.post(site.discovery["token_endpoint"], timeout=10, data={
        "grant_type": DEVICE, "device_code": device_code, "client_id": client_id})


def test_a_person_connects_a_device_in_a_real_browser(site: Provider, page: Any) -> None:
    user = site.add_user()
    client, _ = site.add_client(name="Living Room TV", public=True, redirect_uris=[],
                                grant_types=[DEVICE, "refresh_token"])
    started = requests.post(site.discovery["device_authorization_endpoint"], timeout=10,
                            data={"client_id": client.client_id, "scope": "openid profile"})
    assert started.status_code == 200, started.text
    body = started.json()

    page.goto(body["verification_uri_complete"])
    page.fill("#username", user.username)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("[data-user-code]")
    assert page.locator("[data-user-code]").inner_text() == body["user_code"]
    assert "Living Room TV" in page.locator("h1").inner_text()
    assert page.locator("[data-scope=profile]").count() == 1
    page.get_by_role("button", name="Allow").click()
    page.wait_for_selector("[data-device-result=approved]")

    tokens = poll(site, client.client_id, body["device_code"])
    assert tokens.status_code == 200, tokens.text
    info = requests.get(site.discovery["userinfo_endpoint"], timeout=10, headers={
        "Authorization": "Bearer " + tokens.json()["access_token"]})
    assert info.json()["sub"] == site.sub(user, client)

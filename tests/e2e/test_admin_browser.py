"""The admin console's main journeys in real Chromium, on a 375-pixel-wide phone screen.

An admin creates a group and an app that admits only that group, invites a colleague by mail
(a real SMTP server), the colleague follows the mailed link and creates an account, signs in to
the app and gets the groups claim; the admin disables them and their next token refresh fails.
The provider runs under gunicorn on SQLite. Screenshots of the console go to docs/img/ for
docs/administration.md.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest
import requests

from tests.chromium import overflows
from tests.chromium import squashed_buttons
from tests.e2e.conftest import PASSWORD
from tests.e2e.conftest import Provider
from tests.e2e.conftest import _gunicorn_provider
from tests.e2e.test_browser_pages import authorize_url
from tests.e2e.test_browser_pages import sign_in
from tests.e2e.test_browser_pages import text
from tests.http_stub import serve
from tests.smtp_server import SmtpServer

pytestmark = pytest.mark.slow

DOCS_IMG = Path(__file__).parent.parent.parent / "docs" / "img"
PHONE = {"viewport": {"width": 375, "height": 740}, "device_scale_factor": 1, "is_mobile": True,
         "has_touch": True}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, smtp_server: SmtpServer
         ) -> Iterator[Provider]:
    config = {"UAUTH_SMTP_URL": smtp_server.url, "UAUTH_MAIL_FROM": "Example ID <id@example.com>"}
    yield from _gunicorn_provider(tmp_path_factory.mktemp("admin"), "sqlite", None, config)


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    page = b"<!doctype html><title>Wiki</title><h1>Signed in to the Wiki</h1>"
    with serve({"/callback": page}, "text/html; charset=utf-8") as url:
        yield url + "/callback"


@pytest.fixture
def phone(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(**PHONE)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def second_phone(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(**PHONE)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def shot(page: Any, name: str) -> None:
    """A screenshot for the docs; the page must fit the phone and keep its buttons in shape."""
    assert not overflows(page), f"{name}: the page scrolls sideways at 375 px"
    assert squashed_buttons(page) == [], f"{name}: buttons out of shape"
    DOCS_IMG.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS_IMG / f"{name}.png"), full_page=True)


def test_invite_sign_up_sign_in_disable_on_a_phone(site: Provider, app_url: str, phone: Any,
                                                   second_phone: Any, smtp: SmtpServer) -> None:
    root = site.add_user("root")
    root.admin = True
    site.users.save(root)
    admin = phone
    admin.goto(site.url + "/login?next=/admin")
    sign_in(admin, "root")
    assert text(admin, "h1") == "People"
    shot(admin, "admin-people")

    admin.click("nav >> text=Groups")
    admin.fill("#name", "staff")
    admin.fill("#description", "Everyone who works here")
    admin.get_by_role("button", name="Create the group").click()
    assert "Created the group staff." in text(admin, ".notice")

    admin.click("nav >> text=Apps")
    admin.get_by_role("link", name="Register an app").click()
    admin.fill("#name", "Wiki")
    admin.fill("#redirect_uris", app_url)
    admin.check("input[name=groups][value=staff]")
    admin.get_by_role("button", name="Register").click()
    client_id = text(admin, "#client-id")
    secret = text(admin, "#client-secret")
    shot(admin, "admin-app-secret")

    admin.click("nav >> text=Invitations")
    admin.fill("#email", "dana@example.com")
    admin.check("input[name=groups][value=staff]")
    admin.get_by_role("button", name="Invite").click()
    assert "Invitation sent to dana@example.com." in text(admin, ".notice")
    shot(admin, "admin-invitations")

    mail = smtp.wait_for("dana@example.com")[0]
    assert "root invited you" in mail.text and "staff" in mail.text
    link = next(u for u in mail.links() if "/invite/" in u)
    invitee = second_phone
    invitee.goto(link)
    assert text(invitee, "h1") == "Create your account"
    invitee.fill("#username", "dana")
    invitee.fill("#password", "dana-secret-1")
    invitee.fill("#confirm", "dana-secret-1")
    shot(invitee, "invitation-accept")
    invitee.get_by_role("button", name="Create my account").click()
    assert text(invitee, "h1") == "Your account"

    verifier = secrets.token_urlsafe(48)
    invitee.goto(authorize_url(site, client_id, app_url, verifier,
                               "openid groups offline_access"))
    assert "Allow" in text(invitee, "h1"), invitee.url
    invitee.get_by_role("button", name="Allow").click()
    invitee.wait_for_url(app_url + "?**")
    code = parse_qs(urlsplit(invitee.url).query)["code"][0]
    tokens = requests.post(site.url + "/token", auth=(client_id, secret), timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": app_url,
        "code_verifier": verifier}).json()
    key = jwt.PyJWKClient(site.url + "/jwks.json").get_signing_key_from_jwt(tokens["id_token"])
    claims = jwt.decode(tokens["id_token"], key.key, algorithms=["RS256"], audience=client_id,
                        issuer=site.url)
    assert claims["groups"] == ["staff"]

    admin.click("nav >> text=People")
    admin.fill("#q", "dana")
    admin.get_by_role("button", name="Find").click()
    admin.get_by_role("link", name="dana").click()
    assert text(admin, "h1").startswith("dana")
    shot(admin, "admin-person")
    admin.get_by_role("button", name="Disable dana").click()
    assert "dana is disabled" in text(admin, ".notice")
    refreshed = requests.post(site.url + "/token", auth=(client_id, secret), timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    invitee.goto(site.url + "/account")
    assert text(invitee, "h1") == "Sign in"  # her session ended

    admin.click("nav >> text=Audit")
    admin.select_option("#event", "admin")
    admin.get_by_role("button", name="Filter").click()
    assert "user.disable" in text(admin, ".audit")
    shot(admin, "admin-audit")


def test_a_non_admin_finds_nothing_at_admin(site: Provider, phone: Any) -> None:
    user = site.add_user()
    phone.goto(site.url + "/login")
    sign_in(phone, user.username, PASSWORD)
    response = phone.goto(site.url + "/admin")
    assert response.status == 404 and "People" not in phone.content()

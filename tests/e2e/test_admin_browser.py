"""The admin console's main journeys in real Chromium, on a 375-pixel-wide phone screen.

An admin signs in with a password and an authenticator app, creates a group and an app that
admits only that group, and invites a colleague by mail (a real SMTP server). The colleague
follows the mailed link, signs up with a passkey (Chromium's virtual authenticator), signs in to
the app and gets the groups claim; the admin disables them and their next token refresh fails.
The provider runs under gunicorn on SQLite, with ``http://localhost:<port>`` as its issuer
(browsers refuse an IP address as a passkey's relying party ID). Screenshots of the console go
to docs/img/ for docs/administration.md.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import pyotp
import pytest
import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge as s256

from tests.chromium import add_virtual_authenticator
from tests.chromium import new_page
from tests.chromium import overflows
from tests.chromium import squashed_buttons
from tests.e2e.conftest import PASSWORD
from tests.e2e.conftest import app_page
from tests.e2e.conftest import localhost_provider
from tests.e2e.conftest import sign_in
from tests.live_server import LiveServer
from tests.smtp_server import SmtpServer
from uauth.core.users import StoreUsers
from uauth.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.slow

DOCS_IMG = Path(__file__).parent.parent.parent / "docs" / "img"
PHONE = {"viewport": {"width": 375, "height": 740}, "device_scale_factor": 1, "is_mobile": True,
         "has_touch": True}


@dataclass
class Site:
    live: LiveServer
    store: SQLiteStore

    @property
    def url(self) -> str:
        return f"http://localhost:{self.live.port}"

    @property
    def users(self) -> StoreUsers:
        return StoreUsers(self.store, time.time)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, smtp_server: SmtpServer) -> Iterator[Site]:
    env = {"UAUTH_SMTP_URL": smtp_server.url, "UAUTH_MAIL_FROM": "Example ID <id@example.com>"}
    with localhost_provider(tmp_path_factory.mktemp("admin"), env) as (live, store):
        yield Site(live, store)


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    with app_page("Wiki", "Signed in to the Wiki") as url:
        yield url


@pytest.fixture
def phone(chromium: Any) -> Iterator[Any]:
    with new_page(chromium, **PHONE) as page:
        yield page


@pytest.fixture
def phone_with_passkeys(chromium: Any) -> Iterator[tuple[Any, Any, str]]:
    """A phone with a virtual platform authenticator (ctap2, internal, resident keys, UV)."""
    with new_page(chromium, **PHONE) as page:
        yield (page, *add_virtual_authenticator(page))


def shot(page: Any, name: str) -> None:
    """A screenshot for the docs; the page must fit the phone and keep its buttons in shape."""
    assert not overflows(page), f"{name}: the page scrolls sideways at 375 px"
    assert squashed_buttons(page) == [], f"{name}: buttons out of shape"
    DOCS_IMG.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS_IMG / f"{name}.png"), full_page=True)


def text(page: Any, selector: str) -> str:
    return str(page.locator(selector).inner_text())


def authorize_url(site: Site, client_id: str, redirect_uri: str, verifier: str, scope: str
                  ) -> str:
    return site.url + "/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": scope, "state": "st-1", "code_challenge": s256(verifier),
        "code_challenge_method": "S256"})


def make_admin(site: Site, username: str) -> str:
    """An admin with an authenticator app, provisioned as an operator would; its secret."""
    user = site.users.create(username, PASSWORD, {"email": f"{username}@example.com"})
    user.admin = True
    site.users.save(user)
    enrolled = site.live.cli("user", "totp", "enroll", username, "--json")
    assert enrolled.returncode == 0, enrolled.stderr
    secret: str = json.loads(enrolled.stdout)["secret"]
    return secret


def test_invite_passkey_sign_up_sign_in_disable_on_a_phone(
        site: Site, app_url: str, phone: Any, phone_with_passkeys: tuple[Any, Any, str],
        smtp: SmtpServer) -> None:
    secret = make_admin(site, "root")
    admin = phone
    admin.goto(site.url + "/login?next=/admin")
    sign_in(admin, "root")
    admin.fill("#otp", pyotp.TOTP(secret).now())  # admins sign in with a second factor
    admin.get_by_role("button", name="Continue").click()
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
    client_secret = text(admin, "#client-secret")
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
    invitee, cdp, authenticator = phone_with_passkeys
    invitee.goto(link)
    assert text(invitee, "h1") == "Create your account"
    shot(invitee, "invitation-accept")
    invitee.fill("#pk-username", "dana")
    invitee.get_by_role("button", name="Use a passkey instead of a password").click()
    assert text(invitee, "h1") == "Make your passkey"
    invitee.fill("#passkey-name", "Dana's phone")
    invitee.get_by_role("button", name="Make my passkey").click()
    invitee.wait_for_url("**/account")
    assert "Dana's phone" in text(invitee, "[data-passkeys]")
    held = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(held["credentials"]) == 1
    assert site.users.find_by_username("dana").password_hash is None  # type: ignore[union-attr]

    verifier = secrets.token_urlsafe(48)
    invitee.goto(authorize_url(site, client_id, app_url, verifier,
                               "openid groups offline_access"))
    invitee.get_by_role("button", name="Allow").click()
    invitee.wait_for_url(app_url + "?**")
    code = parse_qs(urlsplit(invitee.url).query)["code"][0]
    tokens = requests.post(site.url + "/token", auth=(client_id, client_secret), timeout=10,
                           data={"grant_type": "authorization_code", "code": code,
                                 "redirect_uri": app_url, "code_verifier": verifier}).json()
    key = jwt.PyJWKClient(site.url + "/jwks.json").get_signing_key_from_jwt(tokens["id_token"])
    claims = jwt.decode(tokens["id_token"], key.key, algorithms=["RS256"], audience=client_id,
                        issuer=site.url)
    assert claims["groups"] == ["staff"]
    assert {"hwk", "swk"} & set(claims["amr"]) and "pwd" not in claims["amr"]

    admin.click("nav >> text=People")
    admin.fill("#q", "dana")
    with admin.expect_navigation():
        admin.get_by_role("button", name="Find").click()
    admin.get_by_role("link", name="dana").click()
    assert text(admin, "h1").startswith("dana")
    shot(admin, "admin-person")
    admin.get_by_role("button", name="Disable dana").click()
    assert "dana is disabled" in text(admin, ".notice")
    refreshed = requests.post(site.url + "/token", auth=(client_id, client_secret), timeout=10,
                              data={"grant_type": "refresh_token",
                                    "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    invitee.goto(site.url + "/account")
    assert text(invitee, "h1") == "Sign in"  # her session ended

    admin.click("nav >> text=Audit")
    admin.select_option("#event", "admin")
    with admin.expect_navigation():
        admin.get_by_role("button", name="Filter").click()
    assert "user.disable" in text(admin, ".audit")
    shot(admin, "admin-audit")


def test_a_non_admin_finds_nothing_at_admin(site: Site, phone: Any) -> None:
    user = site.users.create("eve", PASSWORD, {})
    phone.goto(site.url + "/login")
    sign_in(phone, user.username, PASSWORD)
    response = phone.goto(site.url + "/admin")
    assert response.status == 404 and "People" not in phone.content()

"""Passkeys in a real browser: Debian's Chromium with a virtual authenticator (Chrome DevTools
Protocol ``WebAuthn`` domain: ctap2, internal transport, resident keys, user verification).

The provider runs under gunicorn (SQLite) with ``http://localhost:<port>`` as its issuer:
browsers refuse an IP address as a passkey's relying party ID.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import pyotp
import pytest
import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge as s256

from tests.chromium import DESKTOP
from tests.chromium import add_virtual_authenticator
from tests.chromium import new_page
from tests.chromium import overflows
from tests.chromium import squashed_buttons
from tests.e2e.conftest import PASSWORD
from tests.e2e.conftest import app_page
from tests.e2e.conftest import localhost_provider
from tests.e2e.conftest import sign_in
from tests.live_server import LiveServer
from uauth.core.clients import Registration
from uauth.core.clients import register_client
from uauth.core.models import User
from uauth.core.users import StoreUsers
from uauth.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.slow


class Site:
    def __init__(self, live: LiveServer, store: SQLiteStore) -> None:
        self.live, self.store = live, store
        self.url = f"http://localhost:{live.port}"

    def add_user(self, username: str) -> User:
        import time

        return StoreUsers(self.store, time.time).create(username, PASSWORD, {"name": username})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with localhost_provider(tmp_path_factory.mktemp("passkeys")) as (live, store):
        yield Site(live, store)


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    with app_page("Example App", "Signed in to Example App") as url:
        yield url


@pytest.fixture
def browser(chromium: Any) -> Iterator[tuple[Any, Any, str]]:
    """A page with a virtual platform authenticator, and its CDP session."""
    with new_page(chromium, **DESKTOP) as page:
        yield (page, *add_virtual_authenticator(page))


def test_passkey_register_sign_in_autofill_and_remove(site: Site, app_url: str,
                                                      browser: tuple[Any, Any, str]) -> None:
    page, cdp, authenticator = browser
    user = site.add_user("ada-" + secrets.token_hex(3))
    client, _ = register_client(site.store, Registration(
        name="Example App", redirect_uris=[app_url], public=True, first_party=True))

    # register a passkey on /account
    page.goto(site.url + "/login?next=/account")
    sign_in(page, user.username)
    page.wait_for_url("**/account")
    page.fill("#passkey-name", "My laptop")
    page.get_by_role("button", name="Add a passkey").click()
    page.wait_for_selector("[data-passkeys] li")
    assert "My laptop" in page.locator("[data-passkeys]").inner_text()
    held = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(held["credentials"]) == 1 and held["credentials"][0]["isResidentCredential"]

    # sign out, then sign in to an app with the passkey alone
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert "signed out" in page.locator("h1").inner_text().lower()
    # autofill (conditional mediation): Chromium's virtual authenticator answers the login
    # page's conditional request at once, as a person picking the passkey would
    claims = app_sign_in(site, page, client.client_id, app_url, click=False)
    assert {"user", "mfa"} <= set(claims["amr"]) and {"hwk", "swk"} & set(claims["amr"])
    assert "pwd" not in claims["amr"]

    # the button, in a browser without autofill for passkeys
    page.context.clear_cookies()
    page.add_init_script("PublicKeyCredential.isConditionalMediationAvailable = "
                         "() => Promise.resolve(false);")
    claims = app_sign_in(site, page, client.client_id, app_url, click=True)
    assert {"user", "mfa"} <= set(claims["amr"]) and {"hwk", "swk"} & set(claims["amr"])
    page.goto(site.url + "/account")
    assert "last used" in page.locator("[data-passkeys]").inner_text()

    # remove it (after re-entering the password): it no longer signs in
    item = page.locator("[data-passkeys] li").first
    item.locator("input[name=confirm]").fill(PASSWORD)
    item.get_by_role("button", name="Remove").click()
    page.wait_for_url("**/account")
    assert "was removed" in page.locator(".notice").inner_text()
    assert page.locator("[data-passkeys]").count() == 0
    page.context.clear_cookies()
    page.goto(site.url + "/login")
    page.get_by_role("button", name="Sign in with a passkey").click()  # no autofill here
    alert = page.locator("[data-passkey-error]")
    alert.wait_for(state="visible")
    assert "not accepted" in alert.inner_text()


def app_sign_in(site: Site, page: Any, client_id: str, app_url: str, *, click: bool
                ) -> dict[str, Any]:
    """An authorization code flow (PKCE) that signs in with the passkey; the ID token's
    claims, checked with the provider's keys."""
    verifier = secrets.token_urlsafe(48)
    page.goto(site.url + "/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": app_url,
        "scope": "openid", "state": "s1", "nonce": "n1", "code_challenge": s256(verifier),
        "code_challenge_method": "S256"}))
    if click:
        assert page.locator("h1").inner_text() == "Sign in"
        page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(app_url + "?**")
    got = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    token = requests.post(site.url + "/token", timeout=10, data={
        "grant_type": "authorization_code", "code": got["code"], "redirect_uri": app_url,
        "client_id": client_id, "code_verifier": verifier}).json()
    key = jwt.PyJWKClient(site.url + "/jwks.json").get_signing_key_from_jwt(token["id_token"])
    claims: dict[str, Any] = jwt.decode(token["id_token"], key.key,
                                        algorithms=[key.algorithm_name], audience=client_id)
    return claims


def test_authenticator_app_and_recovery_code_pages_in_a_phone_browser(
        site: Site, chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """TOTP enrolment, the second step and a recovery code, without any script, at 375 px."""
    shots = tmp_path_factory.mktemp("mfa-shots")
    context = chromium.new_context(viewport={"width": 375, "height": 740}, is_mobile=True,
                                   has_touch=True, java_script_enabled=False)
    context.set_default_timeout(15_000)
    page = context.new_page()
    user = site.add_user("grace-" + secrets.token_hex(3))
    try:
        page.goto(site.url + "/login?next=/account")
        sign_in(page, user.username)
        page.get_by_role("link", name="Set up an authenticator app").click()
        assert page.locator(".qr svg").count() == 1
        key = page.locator("[data-secret]").inner_text()
        assert not overflows(page) and squashed_buttons(page) == []
        page.screenshot(path=str(shots / "enrol.png"), full_page=True)
        page.fill("#otp", pyotp.TOTP(key).now())
        page.get_by_role("button", name="Turn on").click()
        codes = page.locator("[data-recovery-codes] code").all_inner_texts()
        assert len(codes) == 10
        assert not overflows(page) and squashed_buttons(page) == []
        page.get_by_role("link", name="Continue").click()
        page.wait_for_url("**/account")

        context.clear_cookies()
        page.goto(site.url + "/login?next=/account")
        sign_in(page, user.username)
        assert page.locator("h1").inner_text() == "Confirm it is you"
        assert page.locator("input[name=otp]").get_attribute("autocomplete") == "one-time-code"
        assert not overflows(page) and squashed_buttons(page) == []
        page.screenshot(path=str(shots / "second-factor.png"), full_page=True)
        page.fill("#otp", "000000")
        page.get_by_role("button", name="Continue").click()
        assert "not valid" in page.locator(".alert").inner_text()
        page.fill("#otp", codes[0])
        page.get_by_role("button", name="Continue").click()
        assert "9 recovery codes left" in page.locator("[data-recovery-left]").inner_text()
        page.get_by_role("link", name="Continue").click()
        page.wait_for_url("**/account")
        assert "Recovery codes left: 9" in page.locator("[data-recovery-left]").inner_text()
    finally:
        context.close()

"""Every page in a real browser: headless Debian Chromium, driven by Playwright.

The provider runs under gunicorn (SQLite) and is configured the way an operator would, through
the environment: required attributes, a custom attribute and a custom scope. The relying party is
a small HTTP server the browser really lands on. Screenshots go to the test's temporary folder.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge as s256
from playwright.sync_api import expect

from tests.chromium import overflows
from tests.chromium import squashed_buttons
from tests.e2e.conftest import PASSWORD
from tests.e2e.conftest import Provider
from tests.e2e.conftest import _gunicorn_provider
from tests.e2e.conftest import app_page
from tests.e2e.conftest import sign_in
from tests.http_stub import serve

pytestmark = pytest.mark.slow

CONFIG = {
    "UAUTH_ATTRIBUTES": json.dumps([{"name": "department", "label": "Department",
                                     "type": "choice",
                                     "choices": ["Engineering", "Sales", "Support"]}]),
    "UAUTH_REQUIRED_ATTRIBUTES": json.dumps(["given_name", "family_name"]),
    "UAUTH_CUSTOM_SCOPES": json.dumps({"groups": {"description": "The groups you belong to",
                                                  "claims": ["groups"]}}),
}
PHONE = {"viewport": {"width": 375, "height": 740}, "device_scale_factor": 2, "is_mobile": True,
         "has_touch": True}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    yield from _gunicorn_provider(tmp_path_factory.mktemp("browser"), "sqlite", None, CONFIG)


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    """The relying party's redirect URI: a real page on loopback."""
    with app_page("Example App", "Signed in to Example App") as url:
        yield url


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def shot(page: Any, shots: Path, name: str) -> None:
    """Keep a screenshot to look at, and check no button is squeezed out of shape."""
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert squashed_buttons(page) == [], f"{name}: buttons out of shape"




def authorize_url(site: Provider, client_id: str, redirect_uri: str, verifier: str,
                  scope: str = "openid profile") -> str:
    return site.url + "/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": scope, "state": "st-42", "nonce": "n-42", "code_challenge": s256(verifier),
        "code_challenge_method": "S256"})


def text(page: Any, selector: str) -> str:
    return str(page.locator(selector).inner_text())


def test_login_attributes_consent_and_back_to_the_app(site: Provider, app_url: str, page: Any,
                                                      shots: Path) -> None:
    user = site.add_user()
    client, secret = site.add_client(name="Example App", redirect_uris=[app_url],
                                     required_attributes=["department"],
                                     scope="openid profile email groups")
    verifier = secrets.token_urlsafe(48)
    page.goto(authorize_url(site, client.client_id, app_url, verifier, "openid profile groups"))
    assert text(page, "h1") == "Sign in" and "Example App" in text(page, ".lead")
    shot(page, shots, "01-login")

    sign_in(page, user.username, "not-the-password")
    assert text(page, ".alert") == "Incorrect username or password."
    assert page.input_value("#username") == user.username, "the username is kept"
    # The browser moves the focus to an autofocus field at its next rendering step, not when the
    # page has loaded: wait for it (up to five seconds) rather than read it at once.
    expect(page.locator("#password")).to_be_focused()
    shot(page, shots, "02-login-wrong-password")

    sign_in(page, user.username)
    assert text(page, "h1") == "Complete your profile"
    labels = page.locator("form label").all_inner_texts()
    assert labels == ["First name", "Last name", "Department"]
    page.fill("#attr-given_name", "Ada")
    page.get_by_role("button", name="Continue").click()
    assert text(page, "#attr-family_name-error") == "Enter your last name."
    assert text(page, "#attr-department-error") == "Enter your department."
    assert page.input_value("#attr-given_name") == "Ada", "values are kept on error"
    assert page.get_attribute("#attr-family_name", "aria-invalid") == "true"
    shot(page, shots, "03-attributes-errors")

    page.fill("#attr-family_name", "Lovelace")
    page.select_option("#attr-department", "Engineering")
    page.get_by_role("button", name="Continue").click()
    assert text(page, "h1") == "Allow Example App?"
    assert "The groups you belong to" in page.locator(".scopes").all_inner_texts()[0]
    shot(page, shots, "04-consent")

    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(app_url + "?**")
    assert text(page, "h1") == "Signed in to Example App"
    got = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    assert got["state"] == "st-42" and got["iss"] == site.url

    token = requests.post(site.url + "/token", auth=(client.client_id, secret or ""), timeout=10,
                          data={"grant_type": "authorization_code", "code": got["code"],
                                "redirect_uri": app_url, "code_verifier": verifier}).json()
    key = jwt.PyJWKClient(site.url + "/jwks.json").get_signing_key_from_jwt(token["id_token"])
    claims = jwt.decode(token["id_token"], key.key, algorithms=["RS256"],
                        audience=client.client_id, issuer=site.url)
    assert claims["sub"] == site.sub(user, client) != user.id and claims["nonce"] == "n-42"
    info = requests.get(site.url + "/userinfo", timeout=10,
                        headers={"Authorization": f"Bearer {token['access_token']}"}).json()
    assert info["sub"] == claims["sub"]
    assert info["given_name"] == "Ada" and info["family_name"] == "Lovelace"


def test_account_page_profile_password_and_apps(site: Provider, app_url: str, page: Any,
                                                shots: Path) -> None:
    user = site.add_user(given_name="Grace", family_name="Hopper")
    client, _ = site.add_client(name="Photo App", redirect_uris=[app_url])
    page.goto(authorize_url(site, client.client_id, app_url, secrets.token_urlsafe(48)))
    sign_in(page, user.username)
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(app_url + "?**")

    page.goto(site.url + "/account")
    assert text(page, "h1") == "Your account"
    assert "Photo App" in text(page, ".apps")
    assert page.input_value("#attr-given_name") == "Grace"
    shot(page, shots, "05-account")

    page.fill("#attr-email", "not-an-email")
    page.fill("#attr-phone_number", "555-1234")
    page.get_by_role("button", name="Save profile").click()
    assert "Enter an email address" in text(page, "#attr-email-error")
    assert "international format" in text(page, "#attr-phone_number-error")
    assert page.input_value("#attr-email") == "not-an-email"
    shot(page, shots, "06-account-errors")
    page.fill("#attr-email", "grace@example.org")
    page.fill("#attr-phone_number", "+1 202 555 0143")
    page.get_by_role("button", name="Save profile").click()
    assert text(page, ".notice") == "Your profile was saved."
    assert "not verified" in text(page, "label[for=attr-email]")

    for current in ("wrong-password", PASSWORD):
        page.fill("#pw-current_password", current)
        page.fill("#pw-new_password", "a much better secret")
        page.fill("#pw-confirm", "a much better secret")
        page.get_by_role("button", name="Change password").click()
        if current != PASSWORD:
            assert text(page, "#pw-current_password-error") == "That is not your current password."
    assert text(page, ".notice") == "Your password was changed."

    page.get_by_role("button", name="Remove access").click()
    assert text(page, ".notice") == "Photo App no longer has access to your account."
    assert page.get_by_text("No apps have access to your account.").is_visible()
    shot(page, shots, "07-account-revoked")


def test_logout_and_error_pages(site: Provider, page: Any, shots: Path) -> None:
    user = site.add_user(given_name="Alan", family_name="Turing")
    page.goto(site.url + "/login")
    sign_in(page, user.username)
    assert "Alan" in text(page, "h1")
    page.goto(site.url + "/logout")
    assert text(page, "h1") == "Sign out?"
    shot(page, shots, "08-logout")
    page.get_by_role("button", name="Sign out").click()
    assert text(page, "h1") == "You are signed out"
    shot(page, shots, "09-logged-out")
    page.goto(site.url + "/account")
    assert text(page, "h1") == "Sign in", "signed out: the account page asks to sign in"

    response = page.goto(site.url + "/authorize?response_type=code&client_id=nope&scope=openid")
    assert response.status == 400
    assert text(page, "h1") == "This sign-in request cannot be completed"
    shot(page, shots, "10-error")


def test_every_page_fits_a_375px_phone(site: Provider, app_url: str, chromium: Any,
                                       shots: Path) -> None:
    user = site.add_user(name="Maximiliane Wolkenstein-Oberhausen")
    client, _ = site.add_client(name="A Rather Long Application Name For Small Screens",
                                redirect_uris=[app_url], required_attributes=["department"])
    context = chromium.new_context(**PHONE)
    context.set_default_timeout(15_000)
    page = context.new_page()
    def check(name: str) -> None:
        shot(page, shots, f"phone-{name}")
        assert not overflows(page), f"{name} scrolls sideways at 375 px"

    page.goto(authorize_url(site, client.client_id, app_url, secrets.token_urlsafe(48)))
    check("login")
    sign_in(page, user.username, "wrong password")
    check("login-error")
    sign_in(page, user.username)
    page.get_by_role("button", name="Continue").click()
    assert page.locator(".error").count() == 3
    check("attributes-errors")
    page.fill("#attr-given_name", "Maximiliane")
    page.fill("#attr-family_name", "Wolkenstein-Oberhausen")
    page.select_option("#attr-department", "Support")
    page.get_by_role("button", name="Continue").click()
    check("consent")
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(app_url + "?**")
    page.goto(site.url + "/account")
    check("account")
    page.get_by_role("link", name="See where you are signed in").click()
    check("sessions")
    page.goto(site.url + "/")
    check("home")
    page.goto(site.url + "/logout")
    check("logout")
    page.get_by_role("button", name="Sign out").click()
    check("logged-out")
    page.goto(site.url + "/authorize?client_id=nope")
    check("error")
    context.close()


@pytest.mark.parametrize("javascript", [True, False])
def test_form_post_submits_itself_under_its_csp(site: Provider, chromium: Any, shots: Path,
                                                javascript: bool) -> None:
    """OAuth 2.0 Form Post Response Mode in a real browser: the page's nonce'd script submits the
    form despite the strict CSP, and without scripts a visible button does."""
    posted: list[bytes] = []
    landing = b"<!doctype html><title>Form App</title><h1>Posted to Form App</h1>"
    with serve({"/cb": landing}, "text/html; charset=utf-8", posted) as base:
        redirect_uri = base + "/cb"
        user = site.add_user(given_name="Ada", family_name="Lovelace")  # the site requires them
        client, _ = site.add_client(name="Form App", redirect_uris=[redirect_uri],
                                    first_party=True)
        context = chromium.new_context(java_script_enabled=javascript)
        context.set_default_timeout(15_000)
        page = context.new_page()
        violations: list[str] = []
        page.on("console", lambda message: violations.append(message.text)
                if "Content Security Policy" in message.text else None)
        page.goto(authorize_url(site, client.client_id, redirect_uri, secrets.token_urlsafe(48))
                  + "&response_mode=form_post")
        sign_in(page, user.username)
        if not javascript:
            button = page.get_by_role("button", name="Continue")
            button.wait_for(state="visible")
            shot(page, shots, "form-post-no-script")
            button.click()
        page.wait_for_selector("text=Posted to Form App")
        context.close()
    assert violations == []
    assert len(posted) == 1
    got = {k: v[0] for k, v in parse_qs(posted[0].decode()).items()}
    assert got["state"] == "st-42" and got["iss"] == site.url and got["code"]

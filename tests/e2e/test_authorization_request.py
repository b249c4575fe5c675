"""The OpenID Connect authorization request through a real server: prompt, max_age,
id_token_hint, login_hint, the claims parameter, request objects, and parameters to ignore."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from tests.browser import Browser
from tests.browser import callback
from tests.e2e.conftest import REDIRECT
from tests.e2e.conftest import Provider
from tests.e2e.test_response_types import token_request
from tests.e2e.test_response_types import userinfo
from tests.e2e.test_response_types import verify_id_token
from uauth.core.models import Client
from uauth.core.models import User


def url(provider: Provider, client: Client, **params: str) -> str:
    base = {"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
            "scope": "openid", "state": "st", "nonce": "nn"}
    return provider.url + "/authorize?" + urlencode({**base, **params})


def tokens(provider: Provider, client: Client, secret: str, response: requests.Response
           ) -> dict[str, Any]:
    params = callback(response, REDIRECT)[1]
    assert "code" in params, params
    body: dict[str, Any] = token_request(provider, client.client_id, secret, params["code"]).json()
    body["claims"] = verify_id_token(provider, body["id_token"], client.client_id, nonce="nn",
                                     access_token=body["access_token"])
    return body


def error_of(response: requests.Response) -> str:
    params = callback(response, REDIRECT)[1]
    assert params["state"] == "st" and params["iss"], params
    return params["error"]


def saw_login(browser: Browser) -> bool:
    return any(page.split("?")[0].endswith("/login") for page in browser.pages)


def setup(provider: Provider, **client: Any) -> tuple[User, Client, str, Browser]:
    user = provider.add_user()
    registered, secret = provider.add_client(**client)
    assert secret is not None
    return user, registered, secret, Browser(provider.url)


# --- prompt ----------------------------------------------------------------------------------


def test_prompt_none_answers_without_any_page(provider: Provider) -> None:
    user, client, secret, browser = setup(provider)
    assert error_of(browser.authorize(url(provider, client, prompt="none"))) == "login_required"
    assert browser.pages == [url(provider, client, prompt="none")], "no page, straight back"
    browser.authorize(url(provider, client), username=user.username)  # sign in and consent
    browser.pages.clear()
    silent = browser.authorize(url(provider, client, prompt="none"))
    assert len(browser.pages) == 1
    assert tokens(provider, client, secret, silent)["claims"]["sub"] == provider.sub(user, client)
    wider = browser.authorize(url(provider, client, prompt="none", scope="openid email"))
    assert error_of(wider) == "consent_required"


def test_prompt_none_with_another_value_is_invalid(provider: Provider) -> None:
    _, client, _, browser = setup(provider)
    for prompt in ("none login", "consent none"):
        assert error_of(browser.authorize(url(provider, client, prompt=prompt))) == \
            "invalid_request"


@pytest.mark.parametrize("prompt", ["login", "select_account"])
def test_prompt_login_signs_in_again(provider: Provider, prompt: str) -> None:
    user, client, secret, browser = setup(provider, first_party=True)
    first = tokens(provider, client, secret,
                   browser.authorize(url(provider, client), username=user.username))
    browser.pages.clear()
    again = browser.authorize(url(provider, client, prompt=prompt), username=user.username)
    assert saw_login(browser), "the login page was shown although a session existed"
    second = tokens(provider, client, secret, again)
    assert second["claims"]["auth_time"] >= first["claims"]["auth_time"]
    browser.pages.clear()
    browser.authorize(url(provider, client))
    assert not saw_login(browser), "the next request without prompt is silent again"


def test_prompt_login_with_a_wrong_password_does_not_continue(provider: Provider) -> None:
    user, client, _, browser = setup(provider, first_party=True)
    browser.authorize(url(provider, client), username=user.username)
    refused = browser.authorize(url(provider, client, prompt="login"), username=user.username,
                                password="not-the-password")
    assert refused.status_code == 401 and "Incorrect username or password" in refused.text


def test_prompt_consent_asks_even_when_remembered(provider: Provider) -> None:
    user, client, _, browser = setup(provider)
    browser.authorize(url(provider, client), username=user.username)
    page = browser.http.get(url(provider, client, prompt="consent"), timeout=5)
    assert page.status_code == 200 and 'name="consent"' in page.text
    denied = browser.submit(page, {}, ("consent", "deny"))
    assert error_of(denied) == "access_denied"
    trusted, _ = provider.add_client(first_party=True)
    page = browser.http.get(url(provider, trusted, prompt="consent"), timeout=5)
    assert 'name="consent"' in page.text, "first-party clients too, when they ask"


# --- max_age, id_token_hint, login_hint -------------------------------------------------------


def test_max_age_puts_auth_time_in_the_id_token(provider: Provider) -> None:
    user, client, secret, browser = setup(provider, first_party=True)
    body = tokens(provider, client, secret, browser.authorize(
        url(provider, client, max_age="3600"), username=user.username))
    assert isinstance(body["claims"]["auth_time"], int)
    browser.pages.clear()
    browser.authorize(url(provider, client, max_age="3600"))
    assert not saw_login(browser), "a young session is enough"
    for bad in ("-1", "soon", "1.5"):
        assert error_of(browser.authorize(url(provider, client, max_age=bad))) == \
            "invalid_request"


def test_id_token_hint(provider: Provider) -> None:
    user, client, secret, browser = setup(provider, first_party=True)
    hint = tokens(provider, client, secret, browser.authorize(
        url(provider, client), username=user.username))["id_token"]
    same = browser.authorize(url(provider, client, prompt="none", id_token_hint=hint))
    assert "code" in callback(same, REDIRECT)[1]

    other = provider.add_user()
    elsewhere = Browser(provider.url)
    elsewhere.authorize(url(provider, client), username=other.username)
    mismatch = elsewhere.authorize(url(provider, client, prompt="none", id_token_hint=hint))
    assert error_of(mismatch) == "login_required"
    elsewhere.pages.clear()
    switched = elsewhere.authorize(url(provider, client, id_token_hint=hint),
                                   username=user.username)
    assert saw_login(elsewhere), "the hinted user must sign in"
    assert tokens(provider, client, secret, switched)["claims"]["sub"] == provider.sub(user, client)
    wrong_user = Browser(provider.url)
    refused = wrong_user.authorize(url(provider, client, id_token_hint=hint),
                                   username=other.username)
    assert error_of(refused) == "login_required", "signed in, but not as the hinted user"

    stranger, _ = provider.add_client()
    for bad in (hint + "x", "not-a-jwt", hint.replace(hint.split(".")[1], "e30")):
        assert error_of(browser.authorize(url(provider, client, id_token_hint=bad))) == \
            "invalid_request"
    assert error_of(browser.authorize(url(provider, stranger, id_token_hint=hint))) == \
        "invalid_request", "issued to another client"


def test_login_hint_prefills_the_username(provider: Provider) -> None:
    _, client, _, browser = setup(provider)
    page = browser.http.get(url(provider, client, login_hint='ada@example.com"><b>'), timeout=5)
    field = re.search(r'<input[^>]*name="username"[^>]*>', page.text)
    assert field and 'value="ada@example.com&#34;&gt;&lt;b&gt;"' in field.group(0)


# --- claims parameter -------------------------------------------------------------------------


def test_claims_parameter_with_essential_claims(provider: Provider) -> None:
    user, client, secret, browser = setup(provider, scope="openid profile email")
    claims = {"userinfo": {"email": {"essential": True}, "phone_number": None},
              "id_token": {"name": {"essential": True}, "auth_time": {"essential": True},
                           "unknown_claim": None}}
    target = url(provider, client, claims=json.dumps(claims))
    browser.authorize(provider.url + "/login", username=user.username)
    consent = browser.http.get(target, timeout=5)
    assert 'data-scope="email"' in consent.text and 'data-scope="profile"' in consent.text
    assert "needs: email, name" in consent.text
    assert 'data-scope="phone"' not in consent.text, "the client may not ask for phone"
    body = tokens(provider, client, secret, browser.submit(consent, {}, ("consent", "allow")))
    assert body["claims"]["name"] == user.profile["name"] and "email" not in body["claims"]
    assert body["scope"] == "openid", "the claims parameter does not widen the scope"
    info = userinfo(provider, body["access_token"]).json()
    assert info == {"sub": provider.sub(user, client), "email": user.profile["email"]}, "what was asked, no more"

    for bad in ("{not json", "[]", json.dumps({"userinfo": []}),
                json.dumps({"id_token": {"name": True}})):
        assert error_of(browser.authorize(url(provider, client, claims=bad))) == \
            "invalid_request", bad


def test_claims_parameter_in_the_implicit_flow(provider: Provider) -> None:
    user, client, _, browser = setup(provider, first_party=True,
                                     response_types=["id_token", "id_token token"])
    claims = json.dumps({"id_token": {"email": {"essential": True}},
                         "userinfo": {"given_name": None}})
    got = callback(browser.authorize(url(provider, client, response_type="id_token token",
                                         claims=claims), username=user.username), REDIRECT)[1]
    id_claims = verify_id_token(provider, got["id_token"], client.client_id, nonce="nn",
                                access_token=got["access_token"])
    assert id_claims["email"] == user.profile["email"]
    assert "given_name" not in userinfo(provider, got["access_token"]).json(), "not in profile"


# --- request objects, unknown and accepted parameters -----------------------------------------


def test_request_objects_are_refused_not_ignored(provider: Provider) -> None:
    _, client, _, browser = setup(provider)
    unsigned = "eyJhbGciOiJub25lIn0.eyJub25jZSI6Im4ifQ."
    assert error_of(browser.authorize(url(provider, client, request=unsigned))) == \
        "invalid_request_object", "unsigned, and the client did not opt in"
    assert error_of(browser.authorize(url(provider, client,
                                          request_uri="https://rp.example/r/1"))) == \
        "request_uri_not_supported"
    meta = provider.discovery
    assert meta["request_parameter_supported"] is True
    assert meta["request_uri_parameter_supported"] is False
    assert meta["claims_parameter_supported"] is True
    assert "none" in meta["prompt_values_supported"]


def test_unknown_and_informational_parameters_are_accepted(provider: Provider) -> None:
    user, client, secret, browser = setup(provider, first_party=True)
    response = browser.authorize(url(
        provider, client, scope="email openid profile", acr_values="urn:mace:incommon:iap:silver",
        display="popup", ui_locales="fr-CA fr en", claims_locales="de", vendor_extension="x",
        login_hint=""), username=user.username)
    assert tokens(provider, client, secret, response)["scope"] == "email openid profile"

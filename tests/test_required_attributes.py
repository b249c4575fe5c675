"""Required user attributes: one form in the middle of /authorize, then the flow goes on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest

from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth import create_app
from uauth.core.settings import ConfigError
from uauth.extension import get_state
from uauth.storage.memory import MemoryStore

DEPARTMENT = {"name": "department", "label": "Department", "type": "choice",
              "choices": ["Engineering", "Sales", ["support", "Customer support"]]}


@pytest.fixture
def driver(shared_instance: Path, clock: FakeClock) -> Driver:
    app = make_app(shared_instance, MemoryStore(clock=clock), clock,
                   UAUTH_ATTRIBUTES=[DEPARTMENT],
                   UAUTH_REQUIRED_ATTRIBUTES=["given_name", "birthdate"])
    return Driver.of(app)


def csrf(html: str) -> tuple[str, str]:
    match = re.search(r'name="([a-z]*-?csrf_token)" type="hidden" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1), match.group(2)


def hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def answer(driver: Driver, page: Any, **values: str) -> Any:
    name, token = csrf(page.text)
    data = {**hidden(page.text), name: token, **{f"attr-{k}": v for k, v in values.items()}}
    return driver.http.post("/authorize", data=data)


def asked_for(shared_instance: Path, clock: FakeClock, attribute: str) -> tuple[Driver, Any]:
    """A signed-in user on the form asking for the one required ``attribute``."""
    driver = Driver.of(make_app(shared_instance, MemoryStore(clock=clock), clock,
                                UAUTH_REQUIRED_ATTRIBUTES=[attribute]))
    driver.user()
    client, _ = driver.client(first_party=True)
    driver.login()
    return driver, driver.http.get("/authorize", query_string=params(client.client_id))


def params(client_id: str, **extra: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
            "scope": "openid profile", "state": "s1", **extra}


def test_missing_attributes_are_asked_on_one_form_then_the_flow_goes_on(driver: Driver) -> None:
    driver.user(given_name="")
    client, _ = driver.client(required_attributes=["department"])
    driver.login()
    page = driver.http.get("/authorize", query_string=params(client.client_id))
    assert page.status_code == 200 and "Complete your profile" in page.text
    names = re.findall(r'name="attr-([a-z_]+)"', page.text)[1:]  # after the CSRF token
    assert names == ["given_name", "birthdate", "department"], "global first, then the client's"
    assert 'type="date"' in page.text and "Customer support" in page.text
    assert 'name="consent"' not in page.text

    bad = answer(driver, page, given_name="Ada", birthdate="2999-01-01", department="")
    assert bad.status_code == 400
    assert 'value="Ada"' in bad.text, "values are kept on error"
    assert "Enter a date in the past" in bad.text and "Enter your department" in bad.text
    assert 'aria-invalid="true"' in bad.text

    consent = answer(driver, bad, given_name="Ada", birthdate="1990-04-23", department="support")
    assert consent.status_code == 200 and 'name="consent"' in consent.text, "consent comes next"
    assert not any(k.startswith("attr-") for k in hidden(consent.text)), "never an OAuth parameter"
    with driver.app.app_context():
        profile = get_state().users.find_by_username("alice").profile  # type: ignore[union-attr]
    assert profile["given_name"] == "Ada" and profile["birthdate"] == "1990-04-23"
    assert profile["department"] == "support"

    name, token = csrf(consent.text)
    done = driver.http.post("/authorize", data={**hidden(consent.text), name: token,
                                                "consent": "allow"})
    location = urlsplit(done.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert parse_qs(location.query)["state"] == ["s1"] and "code" in parse_qs(location.query)


def test_a_complete_profile_is_not_asked_again(driver: Driver) -> None:
    driver.user(given_name="Ada", birthdate="1990-04-23")
    client, _ = driver.client(first_party=True)
    driver.login()
    response = driver.http.get("/authorize", query_string=params(client.client_id))
    assert response.status_code == 302 and "code=" in response.headers["Location"]


def test_prompt_none_with_missing_attributes_is_interaction_required(driver: Driver) -> None:
    driver.user()
    client, _ = driver.client(first_party=True)
    driver.login()
    response = driver.http.get("/authorize", query_string=params(client.client_id, prompt="none"))
    got = parse_qs(urlsplit(response.headers["Location"]).query)
    assert got["error"] == ["interaction_required"] and got["state"] == ["s1"]
    assert got["iss"] == ["http://localhost"]


def test_the_attribute_form_needs_its_csrf_token(driver: Driver) -> None:
    driver.user()
    client, _ = driver.client()
    driver.login()
    page = driver.http.get("/authorize", query_string=params(client.client_id))
    data = {**hidden(page.text), "attr-given_name": "Eve", "attr-birthdate": "1990-01-01"}
    response = driver.http.post("/authorize", data=data)
    assert response.status_code == 400 and "expired" in response.text
    with driver.app.app_context():
        user = get_state().users.find_by_username("alice")
    assert user is not None and "given_name" not in user.profile


@pytest.mark.parametrize(("attribute", "value", "message"), [
    ("email", "not-an-email", "Enter an email address"),
    ("phone_number", "12345", "international format"),
    ("phone_number", "+44 20 7946 0958 ext", "international format"),
    ("locale", "english!", "Use the expected format"),
    ("birthdate", "23/04/1990", "Not a valid date value"),
])
def test_typed_attributes_are_validated(shared_instance: Path, clock: FakeClock, attribute: str,
                                        value: str, message: str) -> None:
    driver, page = asked_for(shared_instance, clock, attribute)
    response = answer(driver, page, **{attribute: value})
    assert response.status_code == 400 and message in response.text
    assert f'value="{value}"' in response.text


@pytest.mark.parametrize(("attribute", "value", "stored"), [
    ("email", "ada@example.com", "ada@example.com"),
    ("phone_number", "+1 (425) 555-1212", "+1 (425) 555-1212"),
    ("address", "1 Main St\nSpringfield", {"formatted": "1 Main St\nSpringfield"}),
    ("zoneinfo", "Europe/Paris", "Europe/Paris"),
])
def test_valid_typed_attributes_are_stored_as_claims_expect(shared_instance: Path, clock: FakeClock,
                                                            attribute: str, value: str,
                                                            stored: Any) -> None:
    driver, page = asked_for(shared_instance, clock, attribute)
    response = answer(driver, page, **{attribute: value})
    assert response.status_code == 302 and "code=" in response.headers["Location"]
    with driver.app.app_context():
        user = get_state().users.find_by_username("alice")
    assert user is not None and user.profile[attribute] == stored


@pytest.mark.parametrize(("config", "message"), [
    ({"UAUTH_REQUIRED_ATTRIBUTES": ["shoe_size"]}, "unknown attribute 'shoe_size'"),
    ({"UAUTH_ATTRIBUTES": [{"name": "team", "type": "select"}]}, "type 'select'"),
    ({"UAUTH_ATTRIBUTES": [{"name": "team", "type": "choice"}]}, "needs a list of choices"),
    ({"UAUTH_ATTRIBUTES": [{"name": "sub"}]}, "'sub' is reserved"),
    ({"UAUTH_ATTRIBUTES": [{"name": "Team"}]}, "lower-case letters"),
    ({"UAUTH_ATTRIBUTES": [{"name": "team", "colour": "red"}]}, "unknown keys: colour"),
    ({"UAUTH_ATTRIBUTES": [{"name": "team", "pattern": "("}]}, "bad pattern"),
    ({"UAUTH_ATTRIBUTES": [{"name": "team"}, {"name": "team"}]}, "defines an attribute twice"),
    ({"UAUTH_ATTRIBUTES": [{"name": "groups", "editable": False}],
      "UAUTH_REQUIRED_ATTRIBUTES": ["groups"]}, "not editable"),
])
def test_bad_attribute_config_fails_at_start_naming_the_key(shared_instance: Path, config: dict[str, Any],
                                                            message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app({"UAUTH_STORAGE": "memory://", **config}, instance_path=shared_instance / "instance")
    assert message in str(caught.value)
    assert str(caught.value).startswith(("UAUTH_ATTRIBUTES", "UAUTH_REQUIRED_ATTRIBUTES"))

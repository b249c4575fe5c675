"""Embedded mode: Notes (examples/embedded) logs people in on its own page; uauth still asks
for the second factor on its own pages afterwards, so a host app with no MFA gets it."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pyotp

from tests.app_driver import basic_auth
from tests.browser import csrf_token
from tests.host_driver import REDIRECT
from tests.host_driver import Host
from tests.host_driver import make_notes


def test_the_host_login_then_uauth_enrols_and_asks_for_the_second_factor(tmp_path: Path) -> None:
    host = Host.of(make_notes(tmp_path, UAUTH_MFA="required"))
    host.add_user()
    client, secret = host.add_client()
    query = {"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
             "scope": "openid profile", "state": "s-1", "nonce": "n-1"}
    response = host.get("/auth/authorize", query_string=query)
    response = host.login(response.headers["Location"])  # Notes' own page
    response = host.get(response.headers["Location"])
    enrol = response.headers["Location"]
    assert urlsplit(enrol).path == "/auth/login/enrol", "uauth's own page, after the host's"

    page = host.get(enrol)
    key = re.search(r"data-secret>([A-Z2-7]+)<", page.text)
    assert key
    done = host.post(page.request.full_path, data={
        "csrf_token": csrf_token(page.text), "otp": pyotp.TOTP(key.group(1)).now()})
    assert "Save your recovery codes" in done.text
    back = re.search(r'class="button primary" href="([^"]+)"', done.text)
    assert back
    response = host.get(back.group(1).replace("&amp;", "&"))
    if response.status_code == 200 and 'name="consent"' in response.text:
        hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">',
                                 response.text))
        response = host.post("/auth/authorize", data={
            **hidden, "csrf_token": csrf_token(response.text), "consent": "allow"})
    params = parse_qs(urlsplit(response.headers["Location"]).query)
    token = host.post("/auth/token", headers=basic_auth(client.client_id, secret), data={
        "grant_type": "authorization_code", "code": params["code"][0], "redirect_uri": REDIRECT})
    claims = jwt.decode(token.get_json()["id_token"], options={"verify_signature": False})
    assert set(claims["amr"]) == {"otp", "mfa"}, "the host's login method is not known"

    # the next sign-in through the host's page asks for the code, not for enrolment
    other = Host.of(host.app)
    response = other.get("/auth/authorize", query_string=query)
    response = other.get(other.login(response.headers["Location"]).headers["Location"])
    assert urlsplit(response.headers["Location"]).path == "/auth/login/second-factor"
    page = other.get(response.headers["Location"])
    step = int(time.time()) // 30 + 1  # the enrolment used this step's code
    answer = other.post(page.request.full_path, data={
        "csrf_token": csrf_token(page.text),
        "otp": pyotp.TOTP(key.group(1)).at(step * 30)})
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/auth/authorize")

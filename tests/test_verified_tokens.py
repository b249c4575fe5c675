"""Access tokens verified once per worker: a cached token still expires, is still revoked, and
dies with the key that signed it; the cache never grows past its size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt

from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.core.verified import VerifiedTokens
from uauth.extension import get_state
from uauth.storage import Store


def tokens(driver: Driver) -> tuple[dict[str, Any], str, str | None]:
    driver.user()
    client, secret = driver.client(first_party=True)
    driver.login()
    response = driver.token(client.client_id, secret, code=driver.code(client.client_id))
    assert response.status_code == 200, response.text
    return json_of(response), client.client_id, secret


def userinfo(driver: Driver, access_token: str) -> tuple[int, str]:
    response = driver.http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    return response.status_code, response.headers.get("WWW-Authenticate", "")


def test_a_minted_token_is_cached_and_still_expires(tmp_path: Path, store: Store,
                                                    clock: FakeClock) -> None:
    driver = Driver.of(make_app(tmp_path, store, clock, UAUTH_ACCESS_TOKEN_TTL=600))
    issued, _, _ = tokens(driver)
    with driver.app.app_context():
        cached = get_state().verified.get(issued["access_token"], now=clock(), audience=None,
                                          trusted=lambda kid: True)
    assert cached is not None and cached["client_id"] and isinstance(cached["exp"], int)
    assert userinfo(driver, issued["access_token"])[0] == 200
    clock.advance(601)
    status, challenge = userinfo(driver, issued["access_token"])
    assert status == 401 and "expired" in challenge


def test_a_cached_token_is_still_revoked(tmp_path: Path, store: Store, clock: FakeClock) -> None:
    driver = Driver.of(make_app(tmp_path, store, clock))
    issued, client_id, secret = tokens(driver)
    assert userinfo(driver, issued["access_token"])[0] == 200
    revoked = driver.http.post("/revoke", data={"token": issued["access_token"]},
                               headers=basic_auth(client_id, secret))
    assert revoked.status_code == 200
    status, challenge = userinfo(driver, issued["access_token"])
    assert status == 401 and "revoked" in challenge


def test_a_cached_token_dies_with_its_key(tmp_path: Path, store: Store, clock: FakeClock) -> None:
    """``uauth keys retire`` (a compromised key) ends the key's tokens at once, cached or not."""
    driver = Driver.of(make_app(tmp_path, store, clock))
    issued, _, _ = tokens(driver)
    assert userinfo(driver, issued["access_token"])[0] == 200
    with driver.app.app_context():
        ring = get_state().keys
        assert ring.retire(jwt.get_unverified_header(issued["access_token"])["kid"]) is not None
        ring.refresh()
    status, challenge = userinfo(driver, issued["access_token"])
    assert status == 401 and "not signed by this provider" in challenge


def test_the_audience_asked_for_is_checked_on_a_hit() -> None:
    cache = VerifiedTokens()
    cache.put("t", {"exp": 100, "aud": ["https://api.example", "https://b.example"]}, "k1")
    trusted = {"k1"}.__contains__
    assert cache.get("t", now=50, audience="https://b.example", trusted=trusted) is not None
    assert cache.get("t", now=50, audience=None, trusted=trusted) is not None
    assert cache.get("t", now=50, audience="https://c.example", trusted=trusted) is None
    assert cache.get("t", now=100, audience=None, trusted=trusted) is None, "exp is exclusive"
    assert cache.get("t", now=50, audience=None, trusted=set().__contains__) is None


def test_the_cache_is_bounded_and_copies_out() -> None:
    cache = VerifiedTokens(size=3)
    for n in range(5):
        cache.put(f"t{n}", {"exp": 100, "n": n}, "k")
    kept = [n for n in range(5)
            if cache.get(f"t{n}", now=0, audience=None, trusted=lambda kid: True)]
    assert kept == [2, 3, 4] and len(cache) == 3, "the oldest entries went"
    got = cache.get("t4", now=0, audience=None, trusted=lambda kid: True)
    assert got is not None
    got["n"] = "changed"
    assert cache.get("t4", now=0, audience=None, trusted=lambda kid: True) == {"exp": 100, "n": 4}
    cache.put("odd", {"exp": "soon"}, "k")
    assert cache.get("odd", now=0, audience=None, trusted=lambda kid: True) is None


def test_an_opaque_tokens_claims_have_no_key_to_check_but_still_expire() -> None:
    """Stored claims (``kid`` None) outlive any key rotation; expiry and audience still hold."""
    cache = VerifiedTokens()
    cache.put("opaque", {"exp": 100, "aud": "https://api.example"}, None)
    nothing_trusted = set[str]().__contains__
    assert cache.get("opaque", now=50, audience=None, trusted=nothing_trusted) is not None
    assert cache.get("opaque", now=50, audience="https://b.example",
                     trusted=nothing_trusted) is None
    assert cache.get("opaque", now=100, audience=None, trusted=nothing_trusted) is None
    assert cache.get("opaque", now=50, audience=None) is not None, "no key, nothing to trust"
    cache.put("signed", {"exp": 100}, "k1")
    assert cache.get("signed", now=50, audience=None) is None, "a signed one needs its key trusted"

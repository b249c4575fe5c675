"""Abuse protection: failed logins and failed client authentication are throttled, in storage
shared by every worker, without revealing which accounts exist and without a lock that lasts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from tests.conftest import make_store
from uauth.storage import Store
from uauth.storage.memory import MemoryStore

LIMITS = {"UAUTH_THROTTLE_FREE_FAILURES": 2, "UAUTH_THROTTLE_LOCK_FAILURES": 5,
          "UAUTH_THROTTLE_IP_FREE_FAILURES": 50, "UAUTH_THROTTLE_IP_LOCK_FAILURES": 100,
          "UAUTH_THROTTLE_WINDOW": 600, "UAUTH_THROTTLE_MAX_DELAY": 30}


def driver(tmp_path: Path, clock: FakeClock, store: Store | None = None, **config: Any) -> Driver:
    app = make_app(tmp_path, store or MemoryStore(clock=clock), clock, **{**LIMITS, **config})
    return Driver.of(app)


def attempt(d: Driver, username: str, password: str, **headers: str) -> Any:
    page = d.http.get("/login", headers=headers)
    token = csrf_token(page.text)
    return d.http.post("/login", data={"csrf_token": token, "username": username,
                                        "password": password}, headers=headers)


def outcome(response: Any) -> tuple[int, str | None, str]:
    alert = re.search(r'role="alert">([^<]*)<', response.text)
    return response.status_code, response.headers.get("Retry-After"), alert.group(1) if alert else ""


def test_failures_bring_growing_delays_that_even_the_right_password_must_wait(
        tmp_path: Path, clock: FakeClock) -> None:
    d = driver(tmp_path, clock)
    d.user()
    assert [attempt(d, "alice", "wrong").status_code for _ in range(2)] == [401, 401]
    third = attempt(d, "alice", "wrong")
    assert outcome(third)[:2] == (429, "1")
    assert "wait 1 second" in third.text
    refused = attempt(d, "alice", "password123")
    assert refused.status_code == 429, "the right password waits too, or guessing goes on"
    clock.advance(1)
    assert attempt(d, "alice", "wrong").headers["Retry-After"] == "2", "the delay doubles"
    clock.advance(2)
    assert attempt(d, "alice", "password123").status_code == 302


def test_an_unknown_username_is_throttled_exactly_like_a_known_one(
        tmp_path: Path, clock: FakeClock) -> None:
    d = driver(tmp_path, clock)
    d.user()
    known = [outcome(attempt(d, "alice", "wrong")) for _ in range(6)]
    unknown = [outcome(attempt(d, "nobody-here", "wrong")) for _ in range(6)]
    assert known == unknown
    assert [status for status, _, _ in known] == [401, 401, 429, 429, 429, 429]


def test_a_lock_ends_with_its_window_however_long_the_attack(tmp_path: Path,
                                                             clock: FakeClock) -> None:
    d = driver(tmp_path, clock)
    d.user()
    for _ in range(5):
        attempt(d, "alice", "wrong")
        clock.advance(31)  # wait out each delay, so that every failure counts
    locked = attempt(d, "alice", "password123")
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 500
    for _ in range(20):  # hammering a locked account is refused unread and prolongs nothing
        clock.advance(25)
        attempt(d, "alice", "wrong")
    clock.advance(600 - 20 * 25)
    assert attempt(d, "alice", "password123").status_code == 302


def test_a_browser_that_signed_in_before_is_not_locked_out_by_an_attacker(
        tmp_path: Path, clock: FakeClock) -> None:
    owner = driver(tmp_path, clock)
    owner.user()
    assert attempt(owner, "alice", "password123").status_code == 302
    owner.http.post("/logout", data={})
    attacker = Driver.of(owner.app)
    for _ in range(8):
        attacker_try = attempt(attacker, "alice", "guess")
        clock.advance(31)
    assert attacker_try.status_code == 429
    assert attempt(Driver.of(owner.app), "alice", "password123").status_code == 429, \
        "a new browser waits out the lock"
    again = attempt(owner, "alice", "password123")
    assert again.status_code == 302, "the owner's known browser has its own count"


def test_a_forged_device_cookie_counts_for_nothing(tmp_path: Path, clock: FakeClock) -> None:
    d = driver(tmp_path, clock)
    d.user()
    d.http.set_cookie("uauth_device", "forged.value.here")
    codes = [attempt(d, "alice", "wrong").status_code for _ in range(3)]
    assert codes == [401, 401, 429]


def test_failures_count_per_address_across_accounts(tmp_path: Path, clock: FakeClock) -> None:
    d = driver(tmp_path, clock, UAUTH_THROTTLE_IP_FREE_FAILURES=3, UAUTH_THROTTLE_IP_LOCK_FAILURES=9)
    codes = [attempt(d, f"user{i}", "wrong").status_code for i in range(5)]
    assert codes == [401, 401, 401, 429, 429], "a spray over many names is throttled by address"


def test_forwarded_addresses_count_only_behind_trusted_proxies(tmp_path: Path,
                                                               clock: FakeClock) -> None:
    spoof = driver(tmp_path / "a", clock, UAUTH_THROTTLE_IP_FREE_FAILURES=2,
                   UAUTH_THROTTLE_IP_LOCK_FAILURES=9)
    codes = [attempt(spoof, f"u{i}", "x", **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code
             for i in range(4)]
    assert codes == [401, 401, 429, 429], "X-Forwarded-For is ignored without trusted proxies"
    proxied = driver(tmp_path / "b", clock, UAUTH_TRUSTED_PROXIES=1,
                     UAUTH_THROTTLE_IP_FREE_FAILURES=2, UAUTH_THROTTLE_IP_LOCK_FAILURES=9)
    codes = [attempt(proxied, f"u{i}", "x", **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code
             for i in range(4)]
    assert codes == [401, 401, 401, 401], "behind the proxy, each client address counts alone"


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_counts_are_shared_by_every_worker(backend: str, request: pytest.FixtureRequest,
                                           tmp_path: Path, clock: FakeClock) -> None:
    """Two apps over one store stand for two gunicorn workers (or two hosts)."""
    store = make_store(backend, request, tmp_path, clock)
    first = driver(tmp_path, clock, store)
    second = driver(tmp_path, clock, store)  # the same instance folder: one secret key
    first.user()
    assert attempt(first, "alice", "wrong").status_code == 401
    assert attempt(second, "alice", "wrong").status_code == 401
    assert attempt(first, "alice", "wrong").status_code == 429
    assert attempt(second, "alice", "password123").status_code == 429
    store.close()


def test_throttling_can_be_switched_off(tmp_path: Path, clock: FakeClock) -> None:
    d = driver(tmp_path, clock, UAUTH_THROTTLE=False)
    d.user()
    assert {attempt(d, "alice", "wrong").status_code for _ in range(8)} == {401}




def test_failed_client_authentication_is_throttled_per_client_and_address(
        tmp_path: Path, clock: FakeClock) -> None:
    d = driver(tmp_path, clock)
    client, secret = d.client()
    assert secret
    body = {"grant_type": "client_credentials"}
    statuses = [d.http.post("/token", data=body, headers=basic_auth(client.client_id, "wrong"))
                for _ in range(4)]
    assert [r.status_code for r in statuses] == [401, 401, 429, 429]
    assert json_of(statuses[2])["error"] == "invalid_client" and statuses[2].headers["Retry-After"]
    assert d.http.post("/introspect", data={"token": "x"},
                       headers=basic_auth(client.client_id, secret)).status_code == 429, \
        "introspection and revocation are the same client authentication"
    elsewhere = d.http.post("/introspect", data={"token": "x"},
                            headers=basic_auth(client.client_id, secret),
                            environ_base={"REMOTE_ADDR": "127.0.0.9"})
    assert elsewhere.status_code == 200, "a client id is public: no lever to lock a client out"
    assert elsewhere.json == {"active": False}

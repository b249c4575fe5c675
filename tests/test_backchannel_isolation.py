"""Issue 17 item 2: one client's hanging back-channel endpoint must not delay another's logout.

The reproduction: sixteen logins and logouts by one account against a client whose receiver
hangs, then a logout for a healthy client; its logout token must arrive within a second or two.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.app_driver import Driver
from tests.app_driver import make_app
from tests.conftest import FakeClock
from tests.logout_receiver import receiver
from uauth.core.lanes import Lanes
from uauth.core.sessions import end_all
from uauth.extension import get_state
from uauth.storage.memory import MemoryStore

ATTACK_ROUNDS = 16
BOUND_SECONDS = 2.0


@pytest.mark.slow
def test_a_hanging_receiver_does_not_delay_a_healthy_one(tmp_path: Path, clock: FakeClock) -> None:
    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock,
                           UAUTH_FETCH_ALLOWED_HOSTS=["127.0.0.1"]))  # the test receivers
    user = d.user()
    with receiver() as hanging, receiver() as healthy:
        bad, bad_secret = d.client(first_party=True, backchannel_logout_uri=hanging.url + "/hang")
        good, good_secret = d.client(first_party=True, backchannel_logout_uri=healthy.url + "/ok")
        for _ in range(ATTACK_ROUNDS):
            d.login()
            assert d.token(bad.client_id, bad_secret, code=d.code(bad.client_id)).status_code == 200
            with d.app.app_context():
                end_all(get_state(), user.id)
        d.login()
        assert d.token(good.client_id, good_secret,
                       code=d.code(good.client_id)).status_code == 200
        started = time.monotonic()
        with d.app.app_context():
            end_all(get_state(), user.id)
        healthy.wait_for("/ok", timeout=BOUND_SECONDS * 5)
        latency = time.monotonic() - started
    print(f"\nhealthy back-channel delivery after {ATTACK_ROUNDS} hanging logouts: "
          f"{latency:.3f} s")
    assert latency < BOUND_SECONDS, f"healthy delivery took {latency:.1f} s"


def test_a_lane_runs_one_job_at_a_time_and_its_breaker_drops_jobs() -> None:
    now = [0.0]
    dropped: list[tuple[str, str]] = []
    lanes = Lanes(2, max_queued=2, failures_to_open=2, open_seconds=60,
                  on_drop=lambda key, why: dropped.append((key, why)), clock=lambda: now[0])
    results = [lanes.submit("bad", lambda: False) for _ in range(2)]
    assert [f.result(timeout=5) for f in results] == [False, False]
    assert lanes.submit("bad", lambda: True).result(timeout=5) is False, "circuit open"
    assert dropped == [("bad", "circuit open after repeated failures")]
    assert lanes.submit("good", lambda: True).result(timeout=5) is True, "others unaffected"
    now[0] = 61
    assert lanes.submit("bad", lambda: True).result(timeout=5) is True, "closed again"

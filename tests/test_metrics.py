"""Prometheus metrics in-process: off by default, optionally protected, and the counters move."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.app_driver import Driver
from tests.app_driver import make_app
from tests.conftest import FakeClock
from tests.redis_server import free_port
from uauth.storage.memory import MemoryStore
from uauth.storage.redis import RedisStore

TOKEN = "metrics-scrape-token-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(driver: Driver, token: str | None = TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = driver.http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"].startswith("text/plain")
    return samples(response.text)


def test_metrics_are_off_by_default(tmp_path: Path, clock: FakeClock) -> None:
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    assert driver.http.get("/metrics").status_code == 404


def test_a_metrics_token_protects_the_endpoint(tmp_path: Path, clock: FakeClock) -> None:
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock, UAUTH_METRICS=True,
                                UAUTH_METRICS_TOKEN=TOKEN))
    bare = driver.http.get("/metrics")
    assert bare.status_code == 401 and bare.headers["WWW-Authenticate"].startswith("Bearer")
    assert driver.http.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert driver.http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_counters_move(tmp_path: Path, clock: FakeClock) -> None:
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock, UAUTH_METRICS=True))
    driver.user()
    client, secret = driver.client()
    assert driver.login(password="wrong-password").status_code == 401
    driver.login()
    code = driver.code(client.client_id)
    assert driver.token(client.client_id, secret, code=code).status_code == 200
    assert driver.token(client.client_id, secret, code=code).status_code == 400  # a replay
    found = scrape(driver, None)
    assert found[("uauth_login_failures_total", ())] == 1
    assert found[("uauth_tokens_issued_total", (("grant_type", "authorization_code"),))] == 1
    assert found[("uauth_replays_detected_total", (("kind", "authorization_code"),))] == 1
    token_200 = (("endpoint", "uauth.token.token"), ("method", "POST"), ("status", "200"))
    token_400 = (("endpoint", "uauth.token.token"), ("method", "POST"), ("status", "400"))
    assert found[("uauth_http_requests_total", token_200)] == 1
    assert found[("uauth_http_requests_total", token_400)] == 1
    assert found[("uauth_http_request_duration_seconds_count",
                  (("endpoint", "uauth.token.token"),))] == 2
    assert found[("uauth_storage_errors_total", ())] == 0


def test_storage_errors_are_counted(tmp_path: Path, clock: FakeClock) -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", clock=clock, timeout=0.2)
    driver = Driver.of(make_app(tmp_path, store, clock, UAUTH_METRICS=True))
    assert driver.http.get("/readyz").status_code == 503
    assert driver.http.post("/token", data={"grant_type": "authorization_code", "code": "x",
                                            "client_id": "c"}).status_code == 503
    assert scrape(driver, None)[("uauth_storage_errors_total", ())] == 2
    store.close()

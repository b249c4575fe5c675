"""Structured logs: every request gets an id (the proxy's, when trusted), echoed and logged."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Any

from tests.app_driver import Driver
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.storage.memory import MemoryStore


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_each_request_has_an_id_in_the_response_and_the_log(
        tmp_path: Path, clock: FakeClock, log_lines: io.StringIO) -> None:
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    first = driver.http.get("/healthz")
    second = driver.http.get("/authorize?client_id=nobody", headers={"X-Request-ID": "spoofed"})
    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert len(set(ids)) == 2 and "spoofed" not in ids, "a client cannot choose its request id"
    lines = [r for r in records(log_lines) if r["logger"] == "uauth.request"]
    assert [(r["request_id"], r["path"], r["status"]) for r in lines] == [
        (ids[0], "/healthz", 200), (ids[1], "/authorize", 400)]
    assert all(r["msg"].startswith("GET /") and "client_id" not in r["msg"] for r in lines), \
        "never the query string"
    assert all(isinstance(r["duration_ms"], float) and r["pid"] for r in lines)


def test_a_trusted_proxy_sets_the_request_id_and_client_address(
        tmp_path: Path, clock: FakeClock, log_lines: io.StringIO) -> None:
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock,
                                UAUTH_TRUSTED_PROXIES=1))
    response = driver.http.get("/healthz", headers={"X-Request-ID": "nginx-4f2a",
                                                   "X-Forwarded-For": "203.0.113.9"})
    assert response.headers["X-Request-ID"] == "nginx-4f2a"
    bogus = driver.http.get("/healthz", headers={"X-Request-ID": "bad id; with spaces"})
    assert bogus.headers["X-Request-ID"] != "bad id; with spaces"
    line = next(r for r in records(log_lines) if r["request_id"] == "nginx-4f2a")
    assert line["remote_addr"] == "203.0.113.9"


def test_warnings_inside_a_request_carry_its_id(tmp_path: Path, clock: FakeClock,
                                                log_lines: io.StringIO) -> None:
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    driver.user()
    client, secret = driver.client()
    driver.login()
    code = driver.code(client.client_id)
    driver.token(client.client_id, secret, code=code)
    replay = driver.token(client.client_id, secret, code=code)
    warning = next(r for r in records(log_lines) if r["level"] == "WARNING")
    assert "replayed" in str(warning["msg"])
    assert warning["request_id"] == replay.headers["X-Request-ID"]


def test_the_json_time_stamp_is_right_across_seconds_and_out_of_order_lines() -> None:
    """The formatter formats a second once and reuses it: a line from another second (later,
    or earlier from another thread) must never get a stale one."""
    from uauth.ops.logs import JsonFormatter

    formatter = JsonFormatter()
    for created in (1764755000.123, 1764755000.987, 1764755001.004, 1764754999.5,
                    1764755000.0, 1798761599.999, 1798761600.001):
        record = logging.LogRecord("uauth.request", logging.INFO, __file__, 1, "GET /", (), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        stamp = json.loads(formatter.format(record))["ts"]
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        assert stamp == f"{expected}.{int(record.msecs):03d}Z", (created, stamp)

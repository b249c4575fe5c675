"""Structured logs: every request gets an id (the proxy's, when trusted), echoed and logged."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from typing import Any

import pytest

from tests.app_driver import Driver
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.core import audit
from uauth.ops.logs import configure_logging
from uauth.storage.memory import MemoryStore
from uauth.web import requestlog


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


#: The access line's keys, in order, whichever way it is written.
ACCESS_KEYS = ["ts", "level", "logger", "msg", "request_id", "pid", "method", "path", "endpoint",
               "status", "duration_ms", "remote_addr"]


@pytest.fixture
def serve_logging(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                  ) -> Iterator[Callable[..., Path]]:
    """``configure_logging`` as ``uauth serve`` calls it, its stderr a real file; the loggers
    and the access-line writer are put back afterwards."""
    for name in ("uauth", "uauth.audit", "uauth.request"):
        logger = logging.getLogger(name)
        for attribute in ("handlers", "filters"):
            monkeypatch.setattr(logger, attribute, list(getattr(logger, attribute)))
        monkeypatch.setattr(logger, "level", logger.level)
        monkeypatch.setattr(logger, "propagate", logger.propagate)
    monkeypatch.setattr(requestlog, "_writer", None)
    monkeypatch.setattr(audit, "_writer", None)
    opened: list[IO[str]] = []

    def configure(fmt: str = "json", level: str = "INFO") -> Path:
        path = tmp_path / f"stderr-{len(opened)}.log"
        stream = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed at the end
        opened.append(stream)
        monkeypatch.setattr(sys, "stderr", stream)
        configure_logging(fmt, level)
        return path

    yield configure
    for stream in opened:
        stream.close()


def access_lines(path: Path) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in found if line["logger"] == "uauth.request"]


def test_serve_logging_writes_the_access_line_itself_as_logging_would(
        tmp_path: Path, clock: FakeClock, serve_logging: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``uauth serve``'s access line skips ``logging`` (a LogRecord and its handler calls cost
    a served request more than the line itself) and is the same line, key for key."""
    path = serve_logging()
    assert requestlog._writer is not None
    handled: list[logging.LogRecord] = []
    monkeypatch.setattr(requestlog.access_log, "handle", handled.append)
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    direct = driver.http.get("/healthz")
    assert handled == [], "not through logging"
    monkeypatch.delattr(requestlog.access_log, "handle")  # the logger's own method again
    monkeypatch.setattr(requestlog, "_writer", None)  # and logging's way, to the same stream
    logged = driver.http.get("/healthz")
    first, second = access_lines(path)
    assert list(first) == list(second) == ACCESS_KEYS
    assert (first["request_id"], second["request_id"]) == (
        direct.headers["X-Request-ID"], logged.headers["X-Request-ID"])
    for line in (first, second):
        del line["request_id"], line["duration_ms"]
        line["ts"] = re.sub(r"\.\d{3}Z$", "", line["ts"])
    assert first == second, "the same fields and values"
    assert first["pid"] == os.getpid() and first["msg"] == "GET /healthz 200"


@pytest.mark.parametrize("fields", [
    {"method": "GET", "path": "/userinfo", "endpoint": "uauth.userinfo.userinfo", "status": 200,
     "duration_ms": 0.31, "remote_addr": "127.0.0.1"},
    {"event": "token.issued", "client_id": 'a "quoted" \\ client\u00e9\U0001f600',
     "user_id": "line\nbreak\ttab\x00", "scope": "openid profile"},
    {"endpoint": None, "status": 404, "duration_ms": float("nan"), "remote_addr": None,
     "big": 10**30, "flag": True, "ratio": -0.0, "huge": 1e300},
    {"grants": ["a", "b"], "detail": {"nested": [1, 2.5, None]}, "when": Path("/x")},
    {"event": "admin", "msg": "a field named as one of the first six replaces it in place"},
    {"pid": "theirs", "level": "custom"},
    {},
], ids=["access", "text", "numbers", "nested", "msg", "pid-level", "empty"])
def test_a_direct_line_is_the_formatters_json_of_the_document(fields: dict[str, Any]) -> None:
    """A direct line writes the six first fields around their values and encodes the rest
    alone: the text is the same as the formatter's document with the fields, character for
    character, whatever the fields hold; and so is the formatter's own line, which ``logging``
    writes, through the same encoder."""
    from uauth.ops.logs import DirectLines
    from uauth.ops.logs import JsonFormatter
    from uauth.storage.process import current_pid

    formatter = JsonFormatter()
    handler = logging.StreamHandler(io.StringIO())
    lines = DirectLines(handler, formatter, logging.getLogger("uauth.request"))
    created = 1796000353.4567
    doc = formatter.document(created, "INFO", "uauth.request", 'GET /p "q" 200', "id-1",
                             current_pid())
    doc.update(fields)
    expected = json.dumps(doc, default=str)
    assert lines.line(created, "id-1", 'GET /p "q" 200', fields) == expected
    assert expected.isascii()
    record = logging.makeLogRecord({"name": "uauth.request", "levelname": "INFO",
                                    "msg": 'GET /p "q" 200', "created": created,
                                    "request_id": "id-1", "process": current_pid(),
                                    "http": fields})
    assert formatter.format(record) == expected


def audit_lines(path: Path) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in found if line["logger"] == "uauth.audit"]


def failed_client_auth(driver: Driver) -> str:
    """A token request that leaves one audit event; returns its request id."""
    answer = driver.http.post("/token", data={"grant_type": "client_credentials",
                                              "client_id": "nobody", "client_secret": "wrong"})
    assert answer.get_json()["error"] == "invalid_client"
    return answer.headers["X-Request-ID"]


def test_serve_logging_writes_audit_events_itself_as_logging_would(
        tmp_path: Path, clock: FakeClock, serve_logging: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every token request writes an audit event: it takes the access line's direct way, and
    is the same line, key for key, with the request's id."""
    path = serve_logging()
    assert audit._writer is not None
    handled: list[logging.LogRecord] = []
    monkeypatch.setattr(audit.log, "handle", handled.append)
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    direct_id = failed_client_auth(driver)
    assert handled == [], "not through logging"
    monkeypatch.delattr(audit.log, "handle")
    monkeypatch.setattr(audit, "_writer", None)
    logged_id = failed_client_auth(driver)
    first, second = audit_lines(path)
    assert list(first) == list(second)
    assert list(first)[:6] == ["ts", "level", "logger", "msg", "request_id", "pid"]
    assert (first["request_id"], second["request_id"]) == (direct_id, logged_id)
    for line in (first, second):
        del line["request_id"]
        line["ts"] = re.sub(r"\.\d{3}Z$", "", line["ts"])
    assert first == second, "the same fields and values"
    assert first["event"] == "client_auth.failed" and first["client_id"] == "nobody"
    assert first["msg"].startswith("client_auth.failed client_id=\"nobody\"")


def test_a_handler_on_the_audit_logger_gets_its_events_through_logging(
        tmp_path: Path, clock: FakeClock, serve_logging: Callable[..., Path]) -> None:
    """Operators attach handlers to audit events (a SIEM, a file): theirs and stderr get every
    one; a filter on the handler ``uauth serve`` set up is honoured too."""
    path = serve_logging()
    collected: list[logging.LogRecord] = []

    class Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            collected.append(record)

    collector = Collector()
    audit.log.addHandler(collector)
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    failed_client_auth(driver)
    assert [record.getMessage().split()[0] for record in collected] == ["client_auth.failed"]
    assert [line["event"] for line in audit_lines(path)] == ["client_auth.failed"]
    audit.log.removeHandler(collector)
    handler = logging.getLogger("uauth").handlers[0]
    handler.addFilter(lambda record: record.name != "uauth.audit")
    failed_client_auth(driver)
    assert len(audit_lines(path)) == 1, "the handler's filter dropped the second event"
    assert len(access_lines(path)) == 2, "the access line passed it (through logging)"


def test_a_disabled_logger_writes_nothing_either_way(
        tmp_path: Path, clock: FakeClock, serve_logging: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``logging.config.dictConfig`` disables the loggers it was not told of; their lines stop,
    whichever way they would have been written (both ask ``isEnabledFor`` first)."""
    path = serve_logging()
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    for logger in (audit.log, requestlog.access_log):
        monkeypatch.setattr(logger, "disabled", True)
    failed_client_auth(driver)
    assert audit_lines(path) == [] and access_lines(path) == []


def test_a_handler_added_after_serve_logging_gets_the_access_line_through_logging(
        tmp_path: Path, clock: FakeClock, serve_logging: Callable[..., Path]) -> None:
    path = serve_logging()
    collected: list[logging.LogRecord] = []

    class Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            collected.append(record)

    logging.getLogger("uauth").addHandler(Collector())
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    driver.http.get("/healthz")
    assert [record.getMessage() for record in collected if record.name == "uauth.request"] == [
        "GET /healthz 200"]
    assert [line["path"] for line in access_lines(path)] == ["/healthz"], "and on stderr"


def test_serve_logging_above_info_or_in_text_writes_no_json_access_line(
        tmp_path: Path, clock: FakeClock, serve_logging: Callable[..., Path]) -> None:
    quiet = serve_logging(level="WARNING")
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    driver.http.get("/healthz")
    assert quiet.read_text() == ""
    text = serve_logging(fmt="text")
    assert requestlog._writer is None, "text lines go through logging's formatter"
    assert audit._writer is None
    driver.http.get("/healthz")
    assert "INFO uauth.request [" in text.read_text() and "GET /healthz 200" in text.read_text()


def test_a_stream_that_cannot_be_written_loses_the_line_not_the_request(
        tmp_path: Path, clock: FakeClock, serve_logging: Callable[..., Path],  # puts all back
        monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails (EPIPE)
    broken = os.fdopen(write_end, "w")
    try:
        monkeypatch.setattr(sys, "stderr", broken)
        configure_logging("json", "INFO")
        assert requestlog._writer is not None
        driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
        assert driver.http.get("/healthz").status_code == 200
    finally:
        with contextlib.suppress(OSError):
            broken.close()


def test_a_closed_stream_is_never_written_through_its_old_descriptor(
        tmp_path: Path, clock: FakeClock, serve_logging: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the handler's stream is closed its descriptor can be another file's; the line goes
    to ``logging`` then, which reports the closed stream in its own way."""
    serve_logging()
    stream = sys.stderr
    number = stream.fileno()
    stream.close()
    other = tmp_path / "another-file"
    opened = os.open(other, os.O_WRONLY | os.O_CREAT, 0o600)
    if opened != number:
        os.dup2(opened, number)  # the old descriptor is this file's now
    monkeypatch.setattr(logging, "raiseExceptions", False)  # logging's report, unseen
    try:
        driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
        assert driver.http.get("/healthz").status_code == 200
        assert other.read_bytes() == b""
    finally:
        for descriptor in {number, opened}:
            os.close(descriptor)

"""Structured logs: one JSON object a line (or plain text), each carrying the request id.

The request id is the proxy's ``X-Request-ID`` when uauth trusts its proxies
(``UAUTH_TRUSTED_PROXIES``), otherwise a fresh random one. It is echoed in the response, so a
failed request a person reports can be found in the log. One ``uauth.request`` line per request
replaces gunicorn's access log: method, path (never the query string, which can carry codes),
status, duration and client address.

``uauth serve`` and ``wsgi.py`` call :func:`configure_logging`; an app that embeds uauth keeps its
own logging setup and may add :class:`RequestIdFilter` to its handlers.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from typing import Any

from flask import Response
from flask import g
from flask import has_request_context
from flask import request

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_log = logging.getLogger("uauth.request")


def request_id() -> str:
    """The current request's id, or ``-`` outside a request."""
    if has_request_context():
        return str(g.get("uauth_request_id", "-"))
    return "-"


def start_request(trust_proxy: bool) -> None:
    """Before a request: its id and start time."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "") if trust_proxy else ""
    g.uauth_request_id = incoming if _VALID_ID.match(incoming) else secrets.token_hex(8)
    g.uauth_started = time.perf_counter()


def finish_request(response: Response) -> float:
    """After a request: echo the id, log the access line; returns the seconds it took."""
    elapsed: float = time.perf_counter() - g.get("uauth_started", time.perf_counter())
    response.headers[REQUEST_ID_HEADER] = request_id()
    if access_log.isEnabledFor(logging.INFO):
        access_log.info("%s %s %s", request.method, request.path, response.status_code, extra={
            "http": {"method": request.method, "path": request.path,
                     "endpoint": request.endpoint, "status": response.status_code,
                     "duration_ms": round(elapsed * 1000, 2), "remote_addr": request.remote_addr},
        })
    return elapsed


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, pid, and extras."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "pid": record.process,
        }
        for extra in ("http", "audit"):  # the access line's and audit events' own fields
            fields = getattr(record, extra, None)
            if isinstance(fields, dict):
                doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


JsonFormatter.converter = time.gmtime  # type: ignore[assignment]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def _stderr_handler(fmt: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


class _AuditFile(logging.FileHandler):
    """The instance's audit log; opened at the first event, so a refused command creates no
    file. If it cannot be written the event goes to stderr rather than being lost."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        fallback = _stderr_handler("json")
        fallback.setFormatter(self.formatter)
        fallback.handle(record)


def configure_cli_logging(fmt: str = "json", *, audit_file: str | None = None,
                          verbose: bool = False) -> None:
    """The admin CLI's logging, unless an embedding app or :func:`configure_logging` already
    gave ``uauth`` somewhere to go: audit events (``uauth user add`` …) are appended to
    ``audit_file`` (the instance's ``audit.log``); on stderr only with ``verbose``, where
    uauth's other log lines go too. Otherwise the one ``error:`` line is all a failed command
    prints (no second copy from Python's last-resort handler)."""
    audit = logging.getLogger("uauth.audit")
    logger = logging.getLogger("uauth")
    if audit.handlers or logger.handlers:
        return
    audit.setLevel(logging.INFO)
    audit.propagate = True  # to "uauth": stderr with --verbose
    if audit_file:
        handler = _AuditFile(audit_file, delay=True, encoding="utf-8")
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
        audit.addHandler(handler)
    logger.handlers[:] = [_stderr_handler(fmt) if verbose else logging.NullHandler()]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def configure_logging(fmt: str = "json", level: str = "INFO") -> None:
    """Send uauth's loggers to stderr in ``fmt`` (``json`` or ``text``) from ``level`` up."""
    audit = logging.getLogger("uauth.audit")  # the CLI's own audit handler, if any: ours now
    audit.handlers.clear()
    audit.setLevel(logging.NOTSET)  # follow ``level`` like every other uauth logger
    audit.propagate = True
    logger = logging.getLogger("uauth")
    logger.handlers[:] = [_stderr_handler(fmt)]
    logger.setLevel(level)
    logger.propagate = False

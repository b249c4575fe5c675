"""Structured logs: one JSON object a line (or plain text), each carrying the request id.

The request id is the proxy's ``X-Request-ID`` when uauth trusts its proxies
(``UAUTH_TRUSTED_PROXIES``), otherwise a fresh random one. It is echoed in the response, so a
failed request a person reports can be found in the log. One ``uauth.request`` line per request
replaces gunicorn's access log: method, path (never the query string, which can carry codes),
status, duration and client address.

The per-request part (the id, the access line) is web code: :mod:`uauth.web.requestlog`.
``uauth serve`` and ``wsgi.py`` call :func:`configure_logging`; an app that embeds uauth keeps its
own logging setup and may add :class:`RequestIdFilter` to its handlers.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from uauth.storage.filemodes import create_private_file
from uauth.web.requestlog import RequestIdFilter

#: ``json.dumps(doc, default=str)``, with the encoder built once rather than for every line.
_encode = json.JSONEncoder(default=str).encode


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, pid, and extras.

    Every request writes at least one line, so the time stamp's seconds are formatted once per
    second, not once per line (``strftime`` was a quarter of the formatter's cost).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._second: tuple[int, str] = (-1, "")

    def _timestamp(self, record: logging.LogRecord) -> str:
        second, text = self._second
        if second != int(record.created):
            second = int(record.created)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self._timestamp(record),
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
        return _encode(doc)


JsonFormatter.converter = time.gmtime  # formatTime, for anyone who calls it: UTC like "ts"

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def _stderr_handler(fmt: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


class _AuditFile(logging.FileHandler):
    """The instance's audit log; opened at the first event, so a refused command creates no
    file. If it cannot be written the event goes to stderr rather than being lost. Created
    owner-only (0600), as every file uauth writes."""

    def _open(self) -> Any:
        create_private_file(Path(self.baseFilename))
        return super()._open()

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

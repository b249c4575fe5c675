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
from typing import Any

from uauth.web.requestlog import RequestIdFilter


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


JsonFormatter.converter = time.gmtime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def _stderr_handler(fmt: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


def configure_audit_logging(fmt: str = "json") -> None:
    """The admin CLI's audit events (``uauth user add`` …) to stderr, unless an embedding app
    or :func:`configure_logging` already gave ``uauth.audit`` somewhere to go."""
    logger = logging.getLogger("uauth.audit")
    if logger.handlers or logging.getLogger("uauth").handlers:
        return
    logger.addHandler(_stderr_handler(fmt))
    logger.setLevel(logging.INFO)
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

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

import logging
import os
import sys
import time
from _json import make_encoder
from json.encoder import encode_basestring_ascii as _quoted
from pathlib import Path
from typing import Any

from uauth.core.audit import AuditLineWriter
from uauth.core.audit import write_audit_lines
from uauth.storage.filemodes import create_private_file
from uauth.storage.process import current_pid
from uauth.web.requestlog import RequestIdFilter
from uauth.web.requestlog import access_log
from uauth.web.requestlog import request_id
from uauth.web.requestlog import write_access_lines

#: json's C encoder with ``json.dumps(doc, default=str)``'s settings, made once for every line
#: (``JSONEncoder.encode`` makes one per call: a third of what encoding an access line's fields
#: cost). No markers: a line's document never holds itself.
_encoder = make_encoder(None, str, _quoted, None, ": ", ", ", False, False, True)


def _encode(doc: dict[str, Any]) -> str:
    """``json.dumps(doc, default=str)`` of a log line's document."""
    return "".join(_encoder(doc, 0))

#: The fields :meth:`JsonFormatter.document` starts every line with.
_FIRST_FIELDS = frozenset({"ts", "level", "logger", "msg", "request_id", "pid"})


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, pid, and extras.

    Every request writes at least one line, so the time stamp's seconds are formatted once per
    second, not once per line (``strftime`` was a quarter of the formatter's cost).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._second: tuple[int, str] = (-1, "")

    def timestamp(self, created: float) -> str:
        """``created`` as the ``ts`` field's text: ISO 8601 in UTC, to the millisecond."""
        second, text = self._second
        if second != int(created):
            second = int(created)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int((created - second) * 1000):03d}Z"

    def document(self, created: float, level: str, logger: str, message: str,
                 request_id: str, pid: int | None) -> dict[str, Any]:
        """The fields every line starts with, in their order; a record's own fields follow."""
        return {"ts": self.timestamp(created), "level": level, "logger": logger,
                "msg": message, "request_id": request_id, "pid": pid}

    def format(self, record: logging.LogRecord) -> str:
        doc = self.document(record.created, record.levelname, record.name, record.getMessage(),
                            getattr(record, "request_id", "-"), record.process)
        for extra in ("http", "audit"):  # the access line's and audit events' own fields
            fields = getattr(record, extra, None)
            if isinstance(fields, dict):
                doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return _encode(doc)


JsonFormatter.converter = time.gmtime  # formatTime, for anyone who calls it: UTC like "ts"

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def _stderr_handler(fmt: str) -> logging.StreamHandler[Any]:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


class DirectLines:
    """One logger's lines as ``uauth serve`` logs them, written to its handler's stream directly.

    A line through ``logging`` (a LogRecord, the logger's and handler's calls, a lock, a flush
    through a text stream) cost 12 µs in a loop (``python -m bench.access_line``) and about
    52 µs of a served userinfo request (``python -m bench.spy``: the caches are cold by then);
    written here, 6 and about 35 (performance-log.md, the twelfth part; 3.4 µs in a loop since the
    twenty-fourth). Every request writes an access line (``uauth.request``) and every token
    request an audit event (``uauth.audit``), so both loggers get one. It is the same JSON
    object from the same formatter (:meth:`line`), and only while the handler
    :func:`configure_logging` set up is the one that would write it: a handler or filter added
    to the logger, a filter or level on that handler, or another handler on ``uauth`` sends the
    lines through ``logging`` again.
    """

    def __init__(self, handler: logging.StreamHandler[Any], formatter: JsonFormatter,
                 logger: logging.Logger) -> None:
        self._handler = handler
        self._formatter = formatter
        self._logger = logger
        self._parent = logging.getLogger("uauth")
        self._filters = list(handler.filters)
        # What the document's fields read between its time stamp and its message, as JSON.
        self._head = f'", "level": "INFO", "logger": {_quoted(logger.name)}, "msg": '

    def __call__(self, request_id: str, message: str, fields: dict[str, Any]) -> bool:
        """Write the line; False, having written nothing, when ``logging`` is to have it."""
        logger, handler = self._logger, self._handler
        handlers = self._parent.handlers
        stream = handler.stream
        if (logger.handlers or logger.filters or not logger.propagate or len(handlers) != 1
                or handlers[0] is not handler or handler.filters != self._filters
                or handler.level > logging.INFO or stream.closed):
            return False  # a closed stream's descriptor may be another file's by now
        data = (self.line(time.time(), request_id, message, fields) + "\n").encode()
        try:
            fd = stream.fileno()
            while data:  # one write for any line that fits a pipe's atomic size
                data = data[os.write(fd, data):]
        except (OSError, ValueError):
            pass  # as a handler's failed write: the line is lost, never the request
        return True

    def line(self, created: float, request_id: str, message: str, fields: dict[str, Any]) -> str:
        """The formatter's JSON of the document with ``fields``, the same text (ASCII: the
        encoder escapes the rest). The six fields every line starts with are written around
        their values, and json's encoder gets ``fields`` alone: an access line counted 60,000
        instructions with the whole document built and encoded, 40,000 so (callgrind; 5.2 and
        3.4 µs in a loop: performance-log.md, the twenty-fourth part). A field named as one of the
        six replaces it in place, as ``update`` does: such a line is still made the
        formatter's way."""
        if not fields or not _FIRST_FIELDS.isdisjoint(fields):
            doc = self._formatter.document(created, "INFO", self._logger.name, message,
                                           request_id, current_pid())
            doc.update(fields)
            return _encode(doc)
        return (f'{{"ts": "{self._formatter.timestamp(created)}{self._head}{_quoted(message)}, '
                f'"request_id": {_quoted(request_id)}, "pid": {current_pid()}, '
                f"{_encode(fields)[1:]}")


def _direct_lines(handler: logging.StreamHandler[Any], logger: logging.Logger
                  ) -> DirectLines | None:
    """A direct writer for JSON lines to a stream with a descriptor (not a test's buffer)."""
    formatter = handler.formatter
    if not isinstance(formatter, JsonFormatter):
        return None
    try:
        handler.stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return DirectLines(handler, formatter, logger)


def _audit_lines(direct: DirectLines | None) -> AuditLineWriter | None:
    """The audit events' writer: core knows no request, so the id is read here, as
    :class:`RequestIdFilter` reads it for a record."""
    if direct is None:
        return None

    def write(message: str, fields: dict[str, Any]) -> bool:
        return direct(request_id(), message, fields)

    return write


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
    handler = _stderr_handler(fmt)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    write_access_lines(_direct_lines(handler, access_log))
    write_audit_lines(_audit_lines(_direct_lines(handler, audit)))

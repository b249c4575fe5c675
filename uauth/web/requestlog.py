"""The request id and the access log line of every request to uauth's blueprints.

The request id is the proxy's ``X-Request-ID`` when uauth trusts its proxies
(``UAUTH_TRUSTED_PROXIES``), otherwise a fresh random one. It is echoed in the response, so a
failed request a person reports can be found in the log. One ``uauth.request`` line per request
replaces gunicorn's access log: method, path (never the query string, which can carry codes),
status, duration and client address. Handlers and formats are set up in :mod:`uauth.ops.logs`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from flask import Request
from flask import Response

from uauth.core.randomids import RandomIds
from uauth.web.state import app_or_none
from uauth.web.state import request_globals
from uauth.web.state import request_or_none

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_log = logging.getLogger("uauth.request")
#: Ids of the requests that bring none (or whose proxy is not trusted): 16 hex digits.
_ids = RandomIds(8)

#: Writes an access line itself (request id, message, fields), or answers False to have
#: ``logging`` write it; ``uauth serve``'s is :class:`uauth.ops.logs.DirectLines`.
AccessLineWriter = Callable[[str, str, dict[str, Any]], bool]
_writer: AccessLineWriter | None = None


def write_access_lines(writer: AccessLineWriter | None) -> None:
    """Hand this process's access lines to ``writer`` (None: to ``logging``, the default)."""
    global _writer  # noqa: PLW0603 - one writer per process, as logging's handlers are
    _writer = writer


def request_id() -> str:
    """The current request's id, or ``-`` outside a request."""
    if request_or_none() is None:
        return "-"
    return str(request_globals().get("uauth_request_id", "-"))


def start_request(req: Request, trust_proxy: bool) -> None:
    """Before a request: its id and start time."""
    incoming = req.headers.get(REQUEST_ID_HEADER, "") if trust_proxy else ""
    scratch = request_globals()
    scratch.uauth_request_id = incoming if _VALID_ID.match(incoming) else _ids.next()
    scratch.uauth_started = time.perf_counter()


def finish_request(req: Request, response: Response) -> float:
    """After a request: echo the id, log the access line; returns the seconds it took."""
    scratch = request_globals()
    elapsed: float = time.perf_counter() - scratch.get("uauth_started", time.perf_counter())
    rid = str(scratch.get("uauth_request_id", "-"))
    response.headers[REQUEST_ID_HEADER] = rid
    if access_log.isEnabledFor(logging.INFO):
        status = response.status_code
        log_access_line(rid, {"method": req.method, "path": req.path, "endpoint": req.endpoint,
                              "status": status, "duration_ms": round(elapsed * 1000, 2),
                              "remote_addr": req.remote_addr})
    return elapsed


def log_access_line(request_id: str, http: dict[str, Any]) -> None:
    """One ``uauth.request`` line (``http``: method, path, endpoint, status, duration_ms,
    remote_addr): to this process's writer, or to ``logging`` when there is none or it
    declines."""
    method, path, status = http["method"], http["path"], http["status"]
    writer = _writer
    if writer is None or not writer(request_id, f"{method} {path} {status}", http):
        # Made and handled directly: ``info`` would also walk the stack for the caller's
        # file and line, which no format of ours shows, on every request.
        access_log.handle(access_log.makeRecord(
            access_log.name, logging.INFO, __file__, 0, "%s %s %s", (method, path, status),
            None, "finish_request", {"request_id": request_id, "http": http}))


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id()
        return True


def audit_context() -> dict[str, str | None]:
    """What an audit event records of the request it happens in (see
    :data:`uauth.core.audit.context_fields`): the client address."""
    req = request_or_none()
    return {} if req is None else {"ip": req.remote_addr}


def audit_keeper() -> Callable[[dict[str, Any]], None] | None:
    """Where the current app keeps audit events for the console (see
    :data:`uauth.core.audit.event_keeper`): its state's ``keep_audit``, or None outside one."""
    app = app_or_none()
    if app is None:
        return None
    state = app.extensions.get("uauth")
    keep: Callable[[dict[str, Any]], None] | None = getattr(state, "keep_audit", None)
    return keep

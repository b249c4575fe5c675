"""OpenID Connect Back-Channel Logout 1.0: logout tokens, delivered off the request thread.

When a login session ends, every client that got tokens in it and registered a
``backchannel_logout_uri`` is sent a signed logout token (§2.4) in a form POST (§2.5). Delivery
runs on a small thread pool per worker process, so a slow or dead client never holds up the
person's page: each attempt waits at most ``UAUTH_BACKCHANNEL_TIMEOUT`` seconds, network errors
and 5xx answers are retried with backoff up to ``UAUTH_BACKCHANNEL_RETRIES`` times, a 4xx
answer (the client refused the token) is not retried, and failures are logged with the client
id, never the token.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from .claims import subject
from .tokens import sign

if TYPE_CHECKING:
    from uauth.core.state import State

    from .models import LoginSession

log = logging.getLogger("uauth.backchannel")

EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: Seconds a logout token is valid; §2.4 suggests about two minutes.
LOGOUT_TOKEN_TTL = 120
#: Seconds before the first retry; doubled for each further one.
BACKOFF = 0.5
#: Deliveries in flight per worker process.
POOL_SIZE = 4


@dataclass(frozen=True)
class Delivery:
    """One logout token to send: to whom, and what it says."""

    client_id: str
    uri: str
    sid: str
    sub: str | None
    #: The client's ID token algorithm: logout tokens are signed like its ID tokens.
    alg: str | None = None


def logout_token(state: State, delivery: Delivery) -> str:
    """A logout token (§2.4): explicitly typed, with the event and never a nonce."""
    now = state.now()
    claims = {
        "iss": state.issuer,
        "aud": delivery.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_TTL,
        "jti": secrets.token_urlsafe(16),
        "events": {EVENT: {}},
        "sid": delivery.sid,
    }
    if delivery.sub is not None:
        claims["sub"] = delivery.sub
    alg = delivery.alg if delivery.alg in state.settings.signing_algs else None
    return sign(state, claims, typ="logout+jwt", alg=alg)


def deliveries(state: State, login: LoginSession, client_ids: Iterable[str]) -> list[Delivery]:
    """What to send when ``login`` ends: one token per client with a back-channel URI."""
    user = state.users.get(login.user_id)
    found = []
    for client_id in sorted(set(client_ids)):
        client = state.clients.get(client_id)
        if client is None or not client.backchannel_logout_uri:
            continue
        sub = subject(state.subjects, user, client) if user is not None else None
        found.append(Delivery(client_id, client.backchannel_logout_uri, login.sid, sub,
                              client.id_token_signed_response_alg))
    return found


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A logout endpoint answers itself; following a redirect would POST the token elsewhere."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


def post_logout_token(uri: str, token: str, timeout: float) -> int | str:
    """POST one logout token (§2.5); the HTTP status, or why there was none."""
    request = urllib.request.Request(  # noqa: S310 - the URI was checked at registration
        uri, data=urlencode({"logout_token": token}).encode("ascii"), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "uauth"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return type(reason).__name__ if not isinstance(reason, str) else reason


class Backchannel:
    """The per-worker sender: a thread pool, created after fork on first use."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._pending: set[Future[bool]] = set()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                # A pool inherited through fork has no threads in the child: start anew.
                self._pool = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="uauth-logout")
                self._pid = os.getpid()
                self._pending = set()
            return self._pool

    def send(self, items: Iterable[Delivery]) -> None:
        """Queue the deliveries and return at once."""
        for item in items:
            future = self._executor().submit(self._deliver, item)
            with self._lock:
                self._pending.add(future)
            future.add_done_callback(self._done)

    def _done(self, future: Future[bool]) -> None:
        with self._lock:
            self._pending.discard(future)

    def drain(self, timeout: float) -> bool:
        """Wait for queued deliveries (the CLI, before it exits); False if some are left."""
        with self._lock:
            pending = set(self._pending)
        return not wait(pending, timeout=timeout).not_done

    def deadline(self) -> float:
        """Longest one delivery can take, retries and backoff included."""
        settings = self._state.settings
        retries = int(settings.backchannel_retries)
        return (retries + 1) * float(settings.backchannel_timeout) + BACKOFF * (1 << retries)

    def _deliver(self, item: Delivery) -> bool:
        try:
            return self._attempts(item)
        except Exception:
            log.exception("back-channel logout to client %s failed", item.client_id)
            return False

    def _attempts(self, item: Delivery) -> bool:
        settings = self._state.settings
        token = logout_token(self._state, item)
        retries = settings.backchannel_retries
        outcome: int | str = ""
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(BACKOFF * (1 << (attempt - 1)))
            outcome = post_logout_token(item.uri, token, settings.backchannel_timeout)
            if isinstance(outcome, int) and 200 <= outcome < 300:
                log.info("back-channel logout delivered to client %s", item.client_id)
                return True
            if isinstance(outcome, int) and outcome < 500:
                break  # the client refused this token (§2.8: 400); sending it again won't help
        log.warning("back-channel logout to client %s failed after %d attempt(s): %s",
                    item.client_id, attempt + 1, outcome)
        return False

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
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import wait
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from .audit import BACKCHANNEL_DROPPED
from .audit import audit
from .claims import subject
from .fetcher import FetchError
from .fetcher import SafeFetcher
from .fetcher import from_settings
from .lanes import Lanes
from .tokens import sign

if TYPE_CHECKING:
    from uauth.core.state import State

    from .models import LoginSession
    from .models import User

log = logging.getLogger("uauth.backchannel")

EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: Seconds a logout token is valid; §2.4 suggests about two minutes.
LOGOUT_TOKEN_TTL = 120
#: Seconds before the first retry; doubled for each further one.
BACKOFF = 0.5
#: Deliveries in flight per worker process (one at most per client).
POOL_SIZE = 4
#: Deliveries waiting per client; more are dropped and audited.
MAX_QUEUED_PER_CLIENT = 64
#: Failed deliveries in a row after which a client's deliveries are dropped for a while ...
FAILURES_TO_OPEN = 3
#: ... this many seconds.
OPEN_SECONDS = 60.0


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


def deliveries(state: State, login: LoginSession, client_ids: Iterable[str],
               user: User | None = None) -> list[Delivery]:
    """What to send when ``login`` ends: one token per client with a back-channel URI.

    The user (each token's ``sub``) is read only when there is a token to send, and not at all
    when the caller holds it (``user``): most sessions end without one, and a read is a round
    trip to the store."""
    targets = [(client, client.backchannel_logout_uri)
               for client in map(state.clients.get, sorted(set(client_ids)))
               if client is not None and client.backchannel_logout_uri]
    if not targets:
        return []
    if user is None or user.id != login.user_id:
        user = state.users.get(login.user_id)
    return [Delivery(client.client_id, uri, login.sid,
                     subject(state.subjects, user, client) if user is not None else None,
                     client.id_token_signed_response_alg) for client, uri in targets]


#: Largest answer read from a logout endpoint (it should be empty).
MAX_ANSWER = 4096


def post_logout_token(fetcher: SafeFetcher, uri: str, token: str) -> int | str:
    """POST one logout token (§2.5) through the safe fetcher (no internal addresses unless
    allow-listed, no redirects); the HTTP status, or why there was none."""
    try:
        return fetcher.post_form(uri, {"logout_token": token})
    except FetchError as exc:
        return str(exc)


class Backchannel:
    """The per-worker sender: a thread pool (created after fork on first use) with a lane per
    client (:mod:`uauth.core.lanes`), so a client whose endpoint hangs or fails delays no other
    client's logout: one thread at most per client, a bounded queue, and a circuit breaker
    that drops (and audits) its deliveries for a while after repeated failures."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._pending: set[Future[bool]] = set()
        self._fetcher = from_settings(state.settings, timeout=float(
            state.settings.backchannel_timeout), max_bytes=MAX_ANSWER)
        self._lanes = Lanes(POOL_SIZE, max_queued=MAX_QUEUED_PER_CLIENT,
                            failures_to_open=FAILURES_TO_OPEN, open_seconds=OPEN_SECONDS,
                            on_drop=self._dropped, name="uauth-logout")

    def send(self, items: Iterable[Delivery]) -> None:
        """Queue the deliveries and return at once."""
        for item in items:
            future = self._lanes.submit(item.client_id, partial(self._deliver, item))
            with self._lock:
                if self._pid != os.getpid():  # forked: the parent's deliveries are not ours
                    self._pid, self._pending = os.getpid(), set()
                self._pending.add(future)
            future.add_done_callback(self._done)

    def _dropped(self, client_id: str, reason: str) -> None:
        log.warning("back-channel logout to client %s dropped: %s", client_id, reason)
        audit(BACKCHANNEL_DROPPED, client_id=client_id, reason=reason)

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
            outcome = post_logout_token(self._fetcher, item.uri, token)
            if isinstance(outcome, int) and 200 <= outcome < 300:
                log.info("back-channel logout delivered to client %s", item.client_id)
                return True
            if isinstance(outcome, int) and outcome < 500:
                break  # the client refused this token (§2.8: 400); sending it again won't help
        log.warning("back-channel logout to client %s failed after %d attempt(s): %s",
                    item.client_id, attempt + 1, outcome)
        return False

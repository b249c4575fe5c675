"""Prometheus metrics (``UAUTH_METRICS``): per app, and multi-process under gunicorn.

prometheus-client decides at import time whether samples go to per-process files (multi-process
mode, when ``PROMETHEUS_MULTIPROC_DIR`` is set) or stay in memory, so it is imported only when
metrics are on, and ``uauth serve`` sets that directory before anything imports it. Each gunicorn
worker then writes its own file and ``/metrics`` sums them, so a scrape sees the whole server
whichever worker answers it.

With metrics off, :class:`NullMetrics` stands in: every call site stays one method call that does
nothing, and no request hook measures anything.
"""

from __future__ import annotations

import glob
import os
import tempfile
from typing import Any

#: Latency buckets in seconds: token requests take milliseconds, logins ~50 ms (argon2).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class NullMetrics:
    """Metrics switched off."""


    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """One request answered by a uauth endpoint."""

    def token_issued(self, grant_type: str) -> None:
        """A token response was issued for ``grant_type``."""

    def login_failed(self) -> None:
        """A wrong username or password at /login."""

    def replay(self, kind: str) -> None:
        """A single-use value (``authorization_code``, ``refresh_token``) presented again."""

    def storage_error(self) -> None:
        """A request failed because storage did."""


class Metrics(NullMetrics):
    """The counters and histogram, registered on a registry of this app's own (never the
    process-global one, so several apps in one process never clash)."""


    def __init__(self) -> None:
        # Imported here on purpose: prometheus-client picks its mode at import (module doc).
        from prometheus_client import CollectorRegistry
        from prometheus_client import Counter
        from prometheus_client import Histogram

        # In multi-process mode samples live in files; a registry would export them twice.
        self.registry = None if multiprocess_dir() else CollectorRegistry()
        registry = self.registry
        self._requests = Counter(
            "uauth_http_requests", "Requests answered, by endpoint, method and status.",
            ["endpoint", "method", "status"], registry=registry)
        self._latency = Histogram(
            "uauth_http_request_duration_seconds", "Time to answer a request, by endpoint.",
            ["endpoint"], registry=registry, buckets=BUCKETS)
        self._tokens = Counter("uauth_tokens_issued", "Token responses issued, by grant type.",
                               ["grant_type"], registry=registry)
        self._login_failures = Counter("uauth_login_failures",
                                       "Logins refused for a wrong username or password.",
                                       registry=registry)
        self._replays = Counter("uauth_replays_detected",
                                "Single-use codes or tokens presented again, by kind.", ["kind"],
                                registry=registry)
        self._storage_errors = Counter("uauth_storage_errors",
                                       "Requests that failed because storage did.",
                                       registry=registry)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        key = (endpoint, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self._requests.labels(endpoint, method, str(status)),
                self._latency.labels(endpoint))
        children[0].inc()
        children[1].observe(seconds)

    def token_issued(self, grant_type: str) -> None:
        self._tokens.labels(grant_type).inc()

    def login_failed(self) -> None:
        self._login_failures.inc()

    def replay(self, kind: str) -> None:
        self._replays.labels(kind).inc()

    def storage_error(self) -> None:
        self._storage_errors.inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text format and its content type, summed over every worker in multi-process
        mode."""
        # Imported here on purpose: prometheus-client picks its mode at import (module doc).
        from prometheus_client import CONTENT_TYPE_LATEST
        from prometheus_client import CollectorRegistry
        from prometheus_client import generate_latest

        registry = self.registry
        if registry is None:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST


def build_metrics(enabled: bool) -> NullMetrics:
    return Metrics() if enabled else NullMetrics()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def prepare_multiprocess_dir() -> tuple[str, bool]:
    """For ``uauth serve``, before any worker exists: the directory workers write samples to.

    An operator's ``PROMETHEUS_MULTIPROC_DIR`` is emptied (samples of a previous run must not
    add up with this one's); otherwise a private temporary one is made. Returns the directory
    and whether we made it (and so remove it at exit).
    """
    existing = multiprocess_dir()
    if existing:
        os.makedirs(existing, exist_ok=True)
        for path in glob.glob(os.path.join(existing, "*.db")):
            os.remove(path)
        return existing, False
    path = tempfile.mkdtemp(prefix="uauth-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path, True


def worker_exited(pid: int) -> None:
    """gunicorn ``child_exit`` hook: drop the files a dead worker's live gauges would leave.

    Counters and histograms of a dead worker are kept on purpose: their totals still count.
    """
    if multiprocess_dir() is None:
        return
    # Imported here on purpose: prometheus-client picks its mode at import (module doc).
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]

"""Load from separate client processes, timed between two barriers, charged to the server.

Each client process sets itself up (a login, a first flow) and warms the server up, then all of
them wait at a barrier; the server's CPU is sampled when they pass it and again when every client
has finished, so set-up and warm-up cost is never charged to the measured operations.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import time
from dataclasses import dataclass
from typing import Any

from . import procstat
from .driver import Failure
from .driver import Target
from .driver import Unsupported
from .driver import prepare
from .driver import timed

_CTX = multiprocessing.get_context("fork")


@dataclass
class Result:
    ops: int
    errors: int
    first_error: str
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_op: float | None
    #: Peak RSS (VmHWM) of the largest worker, bytes; and its RSS now.
    peak_rss: int
    rss: int
    http_requests: int
    #: Server CPU seconds per wall second during the run: how busy the server was, in cores.
    server_cores: float = 0.0

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _client(target: Target, operation: str, warmup: float, seconds: float, count: int,
            barrier: Any, results: Any) -> None:
    try:
        agent, run = prepare(target, operation)
        timed(run, seconds=warmup, count=10**9)
    except Failure as exc:
        results.put({"unsupported" if isinstance(exc, Unsupported) else "failed": str(exc)})
        barrier.abort()
        return
    except Exception as exc:  # any other surprise must not leave the others waiting
        results.put({"failed": repr(exc)})
        barrier.abort()
        return
    try:
        barrier.wait(timeout=120)
    except Exception:
        return
    started, sent = time.perf_counter(), agent.requests
    latencies, errors, first = timed(run, seconds=seconds, count=count)
    results.put({"latencies": latencies, "errors": errors, "first": first,
                 "seconds": time.perf_counter() - started,
                 "requests": agent.requests - sent})


class NotMeasured(Exception):
    """The operation could not be measured; ``unsupported`` says whether it is not offered."""

    def __init__(self, message: str, unsupported: bool) -> None:
        super().__init__(message)
        self.unsupported = unsupported


def run_load(target: Target, operation: str, *, server_pid: int, clients: int, seconds: float,
             warmup: float, count: int | None = None) -> Result:
    """Drive ``operation`` from ``clients`` processes; raises :class:`NotMeasured`."""
    per_client = math.ceil(count / clients) if count else 10**9
    barrier = _CTX.Barrier(clients + 1)
    results = _CTX.Queue()
    procs = [_CTX.Process(target=_client, daemon=True,
                          args=(target, operation, warmup, seconds, per_client, barrier, results))
             for _ in range(clients)]
    for proc in procs:
        proc.start()
    try:
        return _measure(procs, barrier, results, server_pid, seconds, count)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


def _measure(procs: list[Any], barrier: Any, results: Any, server_pid: int, seconds: float,
             count: int | None) -> Result:
    try:
        barrier.wait(timeout=180)
    except Exception:
        outcome = _first_problem(results)
        raise NotMeasured(outcome.get("unsupported") or outcome.get("failed", "client failed"),
                          unsupported="unsupported" in outcome) from None
    cpu_before = procstat.cpu_seconds(server_pid)
    budget = (seconds if not count else 3600) + 60
    outcomes = [results.get(timeout=budget) for _ in procs]
    cpu_after = procstat.cpu_seconds(server_pid)
    latencies = [x for o in outcomes for x in o.get("latencies", [])]
    errors = sum(o.get("errors", 0) for o in outcomes)
    first = next((o.get("first") or o.get("failed", "") for o in outcomes
                  if o.get("first") or o.get("failed")), "")
    if not latencies:
        raise NotMeasured(first or "no operation completed", unsupported=False)
    memory = procstat.worker_memory(server_pid)
    elapsed = max(o.get("seconds", 0.0) for o in outcomes)
    return Result(
        ops=len(latencies), errors=errors, first_error=first, seconds=elapsed,
        p50_ms=percentile(latencies, 50) * 1e3, p99_ms=percentile(latencies, 99) * 1e3,
        cpu_ms_per_op=(cpu_after - cpu_before) * 1e3 / len(latencies),
        peak_rss=max((m.peak for m in memory), default=0),
        rss=max((m.rss for m in memory), default=0),
        http_requests=sum(o.get("requests", 0) for o in outcomes),
        server_cores=(cpu_after - cpu_before) / elapsed if elapsed else 0.0,
    )


def _first_problem(results: Any) -> dict[str, str]:
    try:
        item: dict[str, str] = results.get(timeout=5)
        return item
    except queue.Empty:
        return {"failed": "a client process died before it was ready"}

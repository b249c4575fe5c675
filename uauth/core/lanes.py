"""A small thread pool that keeps keys (clients) from delaying each other.

Back-channel logout used one queue for every client, so a client whose endpoint hangs could
hold every sender thread and delay everyone else's logout by minutes (issue 17). Here each key
gets a lane:

- at most one job per lane runs at a time, so one key never holds more than one thread;
- a lane runs one job and then goes to the back of the pool's queue, so busy lanes take turns;
- a lane holds at most ``max_queued`` waiting jobs; more are dropped (and reported);
- after ``failures_to_open`` failed jobs in a row the lane's circuit opens for
  ``open_seconds``: its jobs are dropped (and reported) at once instead of tying up a thread.

No Flask here; the caller reports drops through ``on_drop``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field

log = logging.getLogger("uauth.lanes")

Job = Callable[[], bool]


@dataclass
class _Lane:
    waiting: deque[tuple[Job, Future[bool]]] = field(default_factory=deque)
    running: bool = False
    failures: int = 0
    open_until: float = 0.0


class Lanes:
    """Runs ``submit(key, job)`` jobs; a job returns True on success."""

    def __init__(self, workers: int, *, max_queued: int, failures_to_open: int,
                 open_seconds: float, on_drop: Callable[[str, str], None],
                 clock: Callable[[], float] = time.monotonic, name: str = "uauth-lane") -> None:
        self._workers = workers
        self._max_queued = max_queued
        self._failures_to_open = failures_to_open
        self._open_seconds = open_seconds
        self._on_drop = on_drop
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._lanes: dict[str, _Lane] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def _executor(self) -> ThreadPoolExecutor:
        # Called with the lock held. A pool inherited through fork has no threads: start anew.
        if self._pool is None or self._pid != os.getpid():
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
            self._pid = os.getpid()
            self._lanes = {}
        return self._pool

    def submit(self, key: str, job: Job) -> Future[bool]:
        """Queue ``job`` in ``key``'s lane; the future says whether it ran and succeeded (a
        dropped job resolves to False at once)."""
        future: Future[bool] = Future()
        reason = None
        with self._lock:
            pool = self._executor()
            lane = self._lanes.setdefault(key, _Lane())
            if self._clock() < lane.open_until:
                reason = "circuit open after repeated failures"
            elif len(lane.waiting) >= self._max_queued:
                reason = "queue full"
            else:
                lane.waiting.append((job, future))
                if not lane.running:
                    lane.running = True
                    pool.submit(self._turn, key)
        if reason is not None:
            future.set_result(False)
            self._on_drop(key, reason)
        return future

    def _turn(self, key: str) -> None:
        """Run one job of ``key``'s lane, then requeue the lane behind the others."""
        dropped: list[Future[bool]] = []
        with self._lock:
            lane = self._lanes.get(key)
            if lane is None:
                return
            if self._clock() < lane.open_until:
                dropped = [future for _, future in lane.waiting]
                lane.waiting.clear()
                lane.running = False
                item = None
            else:
                item = lane.waiting.popleft() if lane.waiting else None
                if item is None:
                    lane.running = False
        for future in dropped:
            future.set_result(False)
            self._on_drop(key, "circuit open after repeated failures")
        if item is None:
            return
        job, future = item
        ok = False
        try:
            ok = bool(job())
        except Exception:
            log.exception("job for %s failed", key)
        with self._lock:
            if ok:
                lane.failures = 0
            else:
                lane.failures += 1
                if lane.failures >= self._failures_to_open:
                    lane.open_until = self._clock() + self._open_seconds
                    lane.failures = 0
                    log.warning("%s failed %d times in a row; dropping its jobs for %.0f s",
                                key, self._failures_to_open, self._open_seconds)
            if lane.waiting:
                self._executor().submit(self._turn, key)
            else:
                lane.running = False
                if lane.failures == 0 and lane.open_until <= self._clock():
                    self._lanes.pop(key, None)  # nothing to remember about a healthy key
        future.set_result(ok)

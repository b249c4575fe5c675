"""One ``uauth serve`` worker under the bench's load, for tools that watch it from outside
(``bench.spy`` samples it with py-spy, ``bench.syscalls`` counts its system calls)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from . import procstat
from .load import Result
from .load import run_load
from .run import Run
from .run import Settings
from .run import deployment


@dataclass
class Load:
    """The served worker's pid and, once the block ends, the load's result."""

    worker: int
    results: list[Result] = field(default_factory=list)

    @property
    def result(self) -> Result:
        return self.results[0]


@contextmanager
def loaded_worker(store: str, op: str, access_token_format: str, workdir: Path, *,
                  clients: int, seconds: float, warmup: float) -> Iterator[Load]:
    """Serve ``store`` with one worker and drive ``op`` from ``clients`` processes for
    ``seconds`` after a ``warmup``; the block starts once the clients are past it (the steady
    state) and should watch the worker for at most ``seconds``. Raises ``SystemExit`` when the
    store is not available or the load failed."""
    run = Run(Settings(access_token_format=access_token_format))
    with ExitStack() as stack:
        uauth = stack.enter_context(deployment(run, workdir, store, ("RS256",),
                                               access_token_format))
        if uauth is None:
            raise SystemExit(f"{store} is not available here")
        server = uauth.serve(1, 1, ((op, "RS256"),))
        stack.callback(server.stop)
        load = Load(procstat.children(server.pid)[0])
        failed: list[BaseException] = []

        def drive() -> None:
            try:
                load.results.append(run_load(server.targets["RS256"], op,
                                             server_pid=server.pid, clients=clients,
                                             seconds=seconds + 2, warmup=warmup))
            except BaseException as exc:  # noqa: BLE001 - reported by the caller's thread
                failed.append(exc)

        driver = threading.Thread(target=drive)
        driver.start()
        time.sleep(warmup + 1)
        try:
            yield load
        finally:
            driver.join()
        if failed:
            raise SystemExit(f"the bench could not drive {op}: {failed[0]}")

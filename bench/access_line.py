"""What one access line and one audit event cost in-process: through ``logging`` and as
``uauth serve`` writes them.

``python -m bench.access_line`` sets up logging as ``uauth serve`` does (JSON lines from INFO
up), its stream a temporary file, and writes the same lines both ways, timed alternately: the
``uauth.request`` line through ``requestlog.log_access_line`` as a request's end calls it, and a
``token.issued`` event through ``audit`` as every token request calls it. Each is handed to
``logging`` as a LogRecord (what uauth did before, and still does when a handler of yours is on
``uauth``), then to its :class:`uauth.ops.logs.DirectLines`. A loop keeps the code in the
CPU's caches, so a served request pays several times these figures (``python -m bench.spy``
shows what it pays there).

``--op flow`` (or any operation of ``python -m bench.storage``) measures them where they are
paid: it drives the operation through uauth's app in-process, logging set up the same way, and
times batches of it alternately with uauth's loggers at INFO (every line written) and at
WARNING (none), in one process, so that both see the same caches and the same store. The
difference is what the operation's lines cost it, the fields each line is built from included.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from typing import Any

from uauth.core import audit
from uauth.core.opaque import OPAQUE
from uauth.ops.logs import configure_logging
from uauth.web import requestlog

from .instructions import WARM
from .storage import OPS

#: The fields of a served userinfo request's line.
HTTP = {"method": "GET", "path": "/userinfo", "endpoint": "uauth.userinfo.userinfo",
        "status": 200, "duration_ms": 0.31, "remote_addr": "127.0.0.1"}


def _access_line() -> None:
    requestlog.log_access_line("0123456789abcdef", HTTP)


def _audit_event() -> None:
    audit.audit(audit.TOKEN_ISSUED, client_id="bench-client", user_id="bench-user",
                grant="0123abcd", scope="openid profile")


#: What is timed: a line's name, the call that writes it, and where its writer is installed.
LINES: list[tuple[str, Callable[[], None], Callable[[Any], None]]] = [
    ("access line", _access_line, requestlog.write_access_lines),
    ("audit event", _audit_event, audit.write_audit_lines),
]


@contextmanager
def logging_as_served() -> Iterator[IO[str]]:
    """uauth's logging as ``uauth serve`` sets it up, to a temporary file (yielded); put back
    as it was afterwards."""
    saved = {name: (logger.handlers[:], logger.level, logger.propagate)
             for name, logger in ((n, logging.getLogger(n)) for n in ("uauth", "uauth.audit"))}
    stderr, writers = sys.stderr, (requestlog._writer, audit._writer)
    with tempfile.TemporaryFile("w+") as stream:
        sys.stderr = stream
        try:
            configure_logging("json", "INFO")
            sys.stderr = stderr
            if None in (requestlog._writer, audit._writer):
                raise RuntimeError("configure_logging set no direct writer")
            yield stream
        finally:
            sys.stderr = stderr
            requestlog.write_access_lines(writers[0])
            audit.write_audit_lines(writers[1])
            for name, (handlers, level, propagate) in saved.items():
                logger = logging.getLogger(name)
                logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


def measure(lines: int, timings: int) -> dict[str, list[float]]:
    """CPU µs per line, ``timings`` times each way, alternated; logging is left as it was."""
    with logging_as_served():
        installed = (requestlog._writer, audit._writer)
        costs: dict[str, list[float]] = {}
        for _ in range(timings):
            for (label, write, install), direct in zip(LINES, installed, strict=True):
                for way, writer in (("through logging", None), ("written directly", direct)):
                    install(writer)
                    started = time.process_time()
                    for _ in range(lines):
                        write()
                    elapsed = (time.process_time() - started) / lines * 1e6
                    costs.setdefault(f"{label} {way}", []).append(elapsed)
    return costs


def in_operation(op: str, store: str, count: int, timings: int) -> tuple[dict[str, list[float]],
                                                                        float]:
    """App CPU ms per ``op``, ``timings`` batches of ``count`` with uauth's lines written and as
    many without, alternated in one process; and the lines written per operation."""
    from .driver import prepare
    from .profile import InProcess
    from .profile import build
    from .profile import metered

    uauth = logging.getLogger("uauth")
    with logging_as_served() as stream, tempfile.TemporaryDirectory(prefix="uauth-lines-") as tmp:
        app, target = build(store, Path(tmp), None, access_token_format=OPAQUE)
        _, run = prepare(target, op, lambda _: InProcess(app))
        for _ in range(WARM):  # a flow past the grant cap, as at the bench's steady state
            run()
        costs: dict[str, list[float]] = {"lines written": [], "no lines": []}
        written = 0
        for _ in range(timings):
            for way, level in (("lines written", logging.INFO), ("no lines", logging.WARNING)):
                uauth.setLevel(level)
                stream.seek(0, 2)
                before = stream.tell()
                costs[way].append(metered(app, run, count))
                if level == logging.INFO:
                    stream.seek(before)
                    written += sum(1 for _ in stream)
    return costs, written / (timings * count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.access_line",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20000, help="lines per timing")
    parser.add_argument("--timings", type=int, default=7, help="timings of each way")
    parser.add_argument("--op", choices=OPS,
                        help="time the lines where an operation writes them instead")
    parser.add_argument("--store", choices=["memory", "sqlite"], default="memory",
                        help="with --op: where uauth keeps its records")
    parser.add_argument("--count", type=int, default=200,
                        help="with --op: operations per timing")
    args = parser.parse_args(argv)
    if args.op:
        by_way, lines = in_operation(args.op, args.store, args.count, args.timings)
        written, quiet = (statistics.median(by_way[way]) for way in ("lines written", "no lines"))
        print(f"| {args.op} on {args.store}, in-process | median app CPU ms, lines written | "
              "median app CPU ms, no lines | what the lines cost | lines an operation |")
        print("| --- | --- | --- | --- | --- |")
        print(f"| {args.op} | {written:.3f} | {quiet:.3f} | {written - quiet:+.3f} ms "
              f"({(written - quiet) / quiet:+.1%}) | {lines:.1f} |")
        return 0
    costs = measure(args.lines, args.timings)
    print("| one line, in-process | least CPU µs | median CPU µs |")
    print("| --- | --- | --- |")
    for name, each in costs.items():
        ordered = sorted(each)
        print(f"| {name} | {ordered[0]:.2f} | {ordered[len(ordered) // 2]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

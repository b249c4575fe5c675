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
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from uauth.core import audit
from uauth.ops.logs import configure_logging
from uauth.web import requestlog

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


def measure(lines: int, timings: int) -> dict[str, list[float]]:
    """CPU µs per line, ``timings`` times each way, alternated; logging is left as it was."""
    saved = {name: (logger.handlers[:], logger.level, logger.propagate)
             for name, logger in ((n, logging.getLogger(n)) for n in ("uauth", "uauth.audit"))}
    stderr, writers = sys.stderr, (requestlog._writer, audit._writer)
    with tempfile.TemporaryFile("w+") as stream:
        sys.stderr = stream
        try:
            configure_logging("json", "INFO")
            installed = (requestlog._writer, audit._writer)
            if None in installed:
                raise RuntimeError("configure_logging set no direct writer")
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
        finally:
            sys.stderr = stderr
            requestlog.write_access_lines(writers[0])
            audit.write_audit_lines(writers[1])
            for name, (handlers, level, propagate) in saved.items():
                logger = logging.getLogger(name)
                logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate
    return costs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.access_line",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20000, help="lines per timing")
    parser.add_argument("--timings", type=int, default=7, help="timings of each way")
    args = parser.parse_args(argv)
    costs = measure(args.lines, args.timings)
    print("| one line, in-process | least CPU µs | median CPU µs |")
    print("| --- | --- | --- |")
    for name, each in costs.items():
        ordered = sorted(each)
        print(f"| {name} | {ordered[0]:.2f} | {ordered[len(ordered) // 2]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

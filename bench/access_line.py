"""What one access line costs in-process: through ``logging`` and as ``uauth serve`` writes it.

``python -m bench.access_line`` sets up logging as ``uauth serve`` does (JSON lines from INFO
up), its stream a temporary file, and writes the same ``uauth.request`` line both ways, timed
alternately, through ``requestlog.log_access_line`` as a request's end calls it: as a LogRecord
handed to the logger (what uauth did before, and still does when a handler of yours is on
``uauth``), and through :class:`uauth.ops.logs.DirectAccessLines`. A loop
keeps the code in the CPU's caches, so a served request pays several times these figures
(``python -m bench.spy --op userinfo`` shows what it pays there).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time

from uauth.ops.logs import configure_logging
from uauth.web import requestlog
from uauth.web.requestlog import AccessLineWriter

#: The fields of a served userinfo request's line.
HTTP = {"method": "GET", "path": "/userinfo", "endpoint": "uauth.userinfo.userinfo",
        "status": 200, "duration_ms": 0.31, "remote_addr": "127.0.0.1"}


def ways() -> dict[str, AccessLineWriter | None]:
    """The two ways ``requestlog.log_access_line`` writes a line, once logging is set up as
    ``uauth serve`` sets it: through ``logging`` (no writer) and through the direct writer."""
    writer = requestlog._writer
    if writer is None:
        raise RuntimeError("configure_logging set no direct writer")
    return {"through logging": None, "written directly": writer}


def measure(lines: int, timings: int) -> dict[str, list[float]]:
    """CPU µs per line, ``timings`` times each way, alternated; logging is left as it was."""
    saved = {name: (logger.handlers[:], logger.level, logger.propagate)
             for name, logger in ((n, logging.getLogger(n)) for n in ("uauth", "uauth.audit"))}
    stderr, writer = sys.stderr, requestlog._writer
    with tempfile.TemporaryFile("w+") as stream:
        sys.stderr = stream
        try:
            configure_logging("json", "INFO")
            each_way = ways()
            costs: dict[str, list[float]] = {name: [] for name in each_way}
            for _ in range(timings):
                for name, way in each_way.items():
                    requestlog.write_access_lines(way)
                    started = time.process_time()
                    for _ in range(lines):
                        requestlog.log_access_line("0123456789abcdef", HTTP)
                    costs[name].append((time.process_time() - started) / lines * 1e6)
        finally:
            sys.stderr = stderr
            requestlog.write_access_lines(writer)
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
    print("| one access line, in-process | least CPU µs | median CPU µs |")
    print("| --- | --- | --- |")
    for name, each in costs.items():
        ordered = sorted(each)
        print(f"| {name} | {ordered[0]:.2f} | {ordered[len(ordered) // 2]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

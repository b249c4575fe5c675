"""Where a gunicorn worker's CPU goes per operation, sampled by py-spy while the bench drives it.

``python -m bench.profile`` runs the app in-process; this sees what that cannot: gunicorn's HTTP
parsing, socket writes and connection close, and the log lines written to a real stream.
``python -m bench.spy --op cc`` provisions a deployment as ``python -m bench`` does, serves it
with one ``uauth serve`` worker, drives ``--op`` from the bench's client processes and samples
the worker with ``py-spy record`` meanwhile. Each sample is charged to the component of its
innermost Python frame (a C call, such as SQLite's ``execute`` or OpenSSL's signature, to the
Python function that made it). py-spy skips a thread Linux reports as sleeping, and samples one it
reports as running or runnable (``R`` in ``/proc/<tid>/stat``), so the shares are of the time
the worker ran or waited for a core: where the bench's clients preempt it on a small machine, the
code that runs as it wakes for a request gets more than its share of the CPU (opening the cookie
session: 8.6% of a served flow's samples, 1.2% of an in-process flow's CPU; performance-log.md,
the twenty-third part).

Needs ``py-spy`` (installed with the test extra; it reads the worker's memory, so the bench runs
as a user allowed to ptrace it).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from uauth.core.opaque import JWT
from uauth.core.settings import ACCESS_TOKEN_FORMATS

from .load import Result
from .profile import COMPONENTS
from .profile import component
from .run import STORES
from .served import loaded_worker

#: What only a served worker has, before bench.profile's components.
SERVED = (("gunicorn", "gunicorn: HTTP parsing, socket writes, closing"),
          ("logging/", "log lines (logging)"), *COMPONENTS)

#: One frame of py-spy's raw format: ``function (path:line)``.
_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>.*):(?P<line>\d+)\)$")


@dataclass
class Samples:
    """py-spy's samples, counted by the component of their innermost frame and by every frame
    they pass through (a function's inclusive share)."""

    total: int
    by_component: Counter[str]
    by_frame: Counter[str]


def read_raw(lines: Iterable[str]) -> Samples:
    """Parse ``py-spy record --format raw`` output: ``frame;frame;...;innermost count``."""
    by_component: Counter[str] = Counter()
    by_frame: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_FRAME.match(frame) for frame in stack.split(";")]
        # From the worker's per-connection frame in: what encloses it is the same everywhere.
        start = next((i for i, m in enumerate(frames) if m and m["name"].endswith(".handle")
                      and "gunicorn/workers" in m["path"]), 0)
        frames = frames[start:]
        inner = frames[-1]
        by_component[component((inner["path"], int(inner["line"]), inner["name"]), SERVED)
                     if inner else "Python and the rest"] += n
        seen = {f"{m['name']} ({_short(m['path'])})" for m in frames if m}
        by_frame.update(dict.fromkeys(seen, n))
    return Samples(total, by_component, by_frame)


def _short(path: str) -> str:
    """A frame's file as a reader knows it: ``flask/app.py``, ``uauth/core/tokens.py``."""
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            return path.split("/", 1)[1] if marker == "/lib/python3." else path
    return "uauth/" + path.rsplit("/uauth/", 1)[1] if "/uauth/" in path else path


def report(samples: Samples, op: str, store: str, cpu_ms: float, top: int) -> str:
    """Each component's share of the samples, scaled to the CPU an operation cost in the same
    run, and the frames most samples pass through."""
    total = samples.total or 1
    lines = [f"{op} on {store}, one uauth serve worker: {cpu_ms:.2f} CPU ms per operation, "
             f"{samples.total} samples",
             "", "| component (innermost frame) | share | ≈ CPU ms per operation |",
             "| --- | --- | --- |"]
    for label, n in samples.by_component.most_common():
        lines.append(f"| {label} | {100 * n / total:.0f}% | {cpu_ms * n / total:.2f} |")
    lines += ["", "| frame (inclusive) | share |", "| --- | --- |"]
    for frame, n in samples.by_frame.most_common(top):
        lines.append(f"| {frame} | {100 * n / total:.1f}% |")
    return "\n".join(lines)


def spy(store: str, op: str, seconds: float, rate: int, access_token_format: str,
        workdir: Path) -> tuple[Samples, Result]:
    """Serve ``store`` with one worker, drive ``op`` and sample the worker meanwhile."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy (or make .venv/.installed)")
    raw = workdir / "spy.raw"
    with loaded_worker(store, op, access_token_format, workdir, clients=2, seconds=seconds,
                       warmup=3.0) as load:
        recorded = subprocess.run(  # noqa: S603 - py-spy, with our own arguments
            [py_spy, "record", "--pid", str(load.worker), "--duration", str(int(seconds)),
             "--rate", str(rate), "--format", "raw", "--output", str(raw)],
            capture_output=True, text=True, timeout=seconds + 60)
    if recorded.returncode != 0 or not raw.exists():
        raise SystemExit(f"py-spy could not sample the worker: {recorded.stderr.strip()}")
    with raw.open() as handle:
        return read_raw(handle), load.result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.spy", description=__doc__)
    ap.add_argument("--store", choices=STORES, default="sqlite")
    ap.add_argument("--op", choices=["flow", "refresh", "cc", "userinfo"], default="flow")
    ap.add_argument("--seconds", type=float, default=15.0, help="seconds sampled")
    ap.add_argument("--rate", type=int, default=250, help="samples per second")
    ap.add_argument("--top", type=int, default=30, help="frames listed")
    ap.add_argument("--access-token-format", choices=ACCESS_TOKEN_FORMATS, default=JWT)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="uauth-spy-") as tmp:
        samples, result = spy(args.store, args.op, args.seconds, args.rate,
                              args.access_token_format, Path(tmp))
    print(report(samples, args.op, args.store, result.cpu_ms_per_op or 0.0, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())

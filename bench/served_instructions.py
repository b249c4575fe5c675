"""What a served worker runs per operation in instructions: gunicorn, the app and its log lines.

``python -m bench.instructions`` counts inside the WSGI app, in-process, with no log handler: it
leaves out what serving adds, which ``make bench`` measures but in milliseconds that move with
the machine. ``python -m bench.served_instructions`` counts what the one sync worker of each
app runs for its connections, under callgrind: each app is served as the bench serves it (the
stack's floor and the bare endpoint by ``gunicorn``, uauth by ``uauth serve`` with its JSON
access and audit lines), started through this module's ``--serve``, which runs the server with
gunicorn's ``SyncWorker.handle`` called through ``operator.call`` while a flag file exists. The
bench's agent drives each app over HTTP from outside valgrind, warms it up as
``bench.instructions`` does (past the grant cap), creates the flag, runs the counted
operations, removes it and stops the server; callgrind writes the count at the worker's exit.
What is counted per connection: reading and parsing the request, the app, writing the response,
closing. Not counted: the kernel's work and the worker's loop between connections (its
``accept``, its heartbeat).
"""

from __future__ import annotations

import argparse
import operator
import os
import re
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.redis_server import free_port
from uauth.core.opaque import OPAQUE

from .driver import Target
from .driver import Unsupported
from .driver import prepare
from .instructions import COUNTS
from .instructions import SERVERLESS
from .instructions import TOGGLE
from .instructions import WARM
from .instructions import chosen
from .instructions import count_all
from .instructions import options
from .instructions import table
from .servers import CLIENTS_FILE
from .servers import REDIRECT_URI
from .servers import ROOT
from .servers import Uauth
from .servers import floor_target
from .servers import memory_target
from .servers import stop
from .servers import wait_until_up

#: The environment variable naming the flag file: connections are counted while it exists.
FLAG = "BENCH_COUNT_FLAG"  # not UAUTH_*: uauth refuses settings it does not know
#: Seconds a worker may take to start, or to answer, under callgrind (about 50 times slower).
SLOW = 900
_SUMMARY = re.compile(r"^summary: (\d+)$", re.M)


def count_connections(flag: str) -> None:
    """Have gunicorn's sync worker handle each connection through ``operator.call`` (which
    callgrind counts inside) while ``flag`` exists; the check itself is not counted."""
    from gunicorn.workers import sync

    handle = sync.SyncWorker.handle

    def counted(worker: Any, listener: Any, client: Any, addr: Any) -> None:
        if os.path.exists(flag):
            operator.call(handle, worker, listener, client, addr)
        else:
            handle(worker, listener, client, addr)

    sync.SyncWorker.handle = counted


def serve(module: str, args: list[str]) -> None:
    """Run ``python -m module args`` with its connections counted (this process's ``--serve``)."""
    count_connections(os.environ[FLAG])
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _server(app: str, op: str, workdir: Path, port: int) -> tuple[list[str], dict[str, str],
                                                                   str, Callable[[], Target]]:
    """What to serve for ``app`` (module and arguments), its environment, the URL that answers
    once it is up, and how to make its target after that."""
    url = f"http://127.0.0.1:{port}"
    bind = ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", str(SLOW)]
    if op == "bare":
        return (["gunicorn", *bind, "bench.bare:app"], {}, url + "/",
                lambda: Target(url, "", ""))
    if app == "floor":
        env = {"UAUTH_BENCH_FLOOR_ISSUER": url, "UAUTH_BENCH_FLOOR_REDIRECT": REDIRECT_URI}
        return ["gunicorn", *bind, "bench.floor:app"], env, url + "/", lambda: floor_target(url)
    if app == "memory":
        clients = workdir / "memory-clients.json"
        env = {CLIENTS_FILE: str(clients), "UAUTH_ACCESS_TOKEN_FORMAT": OPAQUE,
               "UAUTH_ISSUER": url, "UAUTH_STORAGE": "memory://",
               "UAUTH_INSTANCE": str(workdir / "instance-memory")}
        return (["bench.memory_app", "serve", *bind], env, url + "/healthz",
                lambda: memory_target(url, clients, OPAQUE))
    uauth = Uauth(workdir, "sqlite", access_token_format=OPAQUE)
    uauth.provision()
    env = {**uauth.env, "UAUTH_ISSUER": url, "UAUTH_STORAGE": uauth.storage,
           "UAUTH_INSTANCE": str(uauth.instance)}
    return ["uauth", "serve", *bind], env, url + "/healthz", lambda: uauth.target(url)


def summed(outputs: list[Path]) -> int:
    """The instructions callgrind counted in every process it wrote a file for (the master
    handles no connection: it counts none)."""
    found = [int(m) for path in outputs for m in _SUMMARY.findall(path.read_text(errors="replace"))]
    if not found:
        raise RuntimeError("callgrind wrote no count in " + ", ".join(map(str, outputs)))
    return sum(found)


def count(app: str, op: str, ops: int) -> tuple[float, float] | None:
    """Instructions per ``op`` served by ``app``'s worker, and requests per ``op``; None if
    the app cannot do ``op``."""
    with tempfile.TemporaryDirectory(prefix="uauth-served-") as tmp:
        workdir = Path(tmp)
        flag = workdir / "count"
        command, env, up, make_target = _server(app, op, workdir, free_port())
        log = workdir / "server.log"
        valgrind = ["valgrind", "--tool=callgrind", "--collect-atstart=no",
                    f"--toggle-collect={TOGGLE}", f"--callgrind-out-file={workdir}/callgrind.%p"]
        with open(log, "w") as out:
            process = subprocess.Popen(  # noqa: S603 - valgrind, our interpreter and arguments
                [*valgrind, sys.executable, "-m", "bench.served_instructions", "--serve",
                 *command], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONHASHSEED": "0", FLAG: str(flag), **env})
        try:
            wait_until_up(up, process, log, seconds=SLOW)
            try:
                agent, run = prepare(make_target(), op)
            except Unsupported:
                return None
            for _ in range(WARM if op != "bare" else 10):
                run()
            before = agent.browser.requests + agent.backend.requests
            flag.touch()
            for _ in range(ops):
                run()
            flag.unlink()
            requests = agent.browser.requests + agent.backend.requests - before
        finally:
            stop(process)
        return summed(sorted(workdir.glob("callgrind.*"))) / ops, requests / ops


def main(argv: list[str] | None = None) -> int:
    parser = options("python -m bench.served_instructions", __doc__, SERVERLESS)
    parser.add_argument("--serve", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], args.serve[1:])
        return 0
    apps, ops = chosen(parser, args)
    counts = count_all(count, [(app, op) for op in ops for app in apps] + [("floor", "bare")],
                       args, {**COUNTS, "bare": 120})
    found = counts.pop(("floor", "bare"))
    assert found is not None, "the bare endpoint answers every request"
    bare, _ = found
    print(table({job: None if c is None else c[0] for job, c in counts.items()}, apps, ops,
                what="served, in the worker"))
    requests = {op: sorted({c[1] for (_, each), c in counts.items()
                            if each == op and c is not None}) for op in ops}
    print(f"\nthe bare endpoint: {bare / 1e6:.3f} M instructions a request; requests per "
          "operation: " + ", ".join(f"{op} {' or '.join(f'{n:g}' for n in requests[op])}"
                                    for op in ops))
    return 0


if __name__ == "__main__":
    sys.exit(main())

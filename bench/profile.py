"""Where uauth's CPU goes per operation: the bench's own agent, in-process, under cProfile.

``python -m bench.profile --store sqlite --op flow`` runs the same operations as the load bench
against the WSGI app through Werkzeug's test client (no sockets, no gunicorn: what remains is
uauth, Flask, Authlib, the JOSE library and storage), then prints the functions that cost the most
per operation. Provisioning uses uauth's own API, so the figures match ``uauth serve``'s app.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from tests.postgres_server import SessionDatabase
from tests.redis_server import RedisServer
from uauth import create_app
from uauth.core.opaque import JWT
from uauth.core.settings import ACCESS_TOKEN_FORMATS
from uauth.extension import get_state
from uauth.ops.logs import configure_logging

from .driver import Connection
from .driver import Reply
from .driver import Target
from .driver import prepare
from .provision import provision
from .servers import PASSWORD
from .servers import REDIRECT_URI
from .servers import USERNAME

ISSUER = "http://127.0.0.1:5000"


class InProcess(Connection):
    """The driver's connection, answered by the WSGI app directly (cookies kept the same way)."""

    def __init__(self, app: Flask) -> None:
        super().__init__(ISSUER)
        self._client = app.test_client(use_cookies=False)

    def _exchange(self, method: str, target: str, body: str | None, head: dict[str, str]
                  ) -> tuple[Reply, list[str]]:
        response = self._client.open(target, method=method, data=body, headers=head)
        reply = Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                      response.get_data())
        return reply, response.headers.getlist("Set-Cookie")


def build(store: str, workdir: Path, url: str | None,
          config: dict[str, Any] | None = None, *, access_token_format: str = JWT
          ) -> tuple[Flask, Target]:
    """The app on ``store``: ``url`` (Redis, PostgreSQL, ...) or SQLite in ``workdir``; the bench
    clients get ``access_token_format`` (``jwt`` or ``opaque``)."""
    storage = url or f"sqlite:///{workdir}/uauth.db"
    if store == "memory":
        storage = "memory://"
    app = create_app({"UAUTH_ISSUER": ISSUER, "UAUTH_STORAGE": storage, **(config or {})},
                     instance_path=workdir / "instance")
    spa, service = provision(app, access_token_format)
    target = Target(issuer=ISSUER, spa_client=spa, redirect_uri=REDIRECT_URI,
                    service_client=service,
                    login=(USERNAME, PASSWORD), access_token_format=access_token_format)
    return app, target.discover(InProcess(app))


class Meter:
    """Wraps the WSGI app: CPU time (and, optionally, a profile) of the server side only, so the
    agent's own work and the test client's are not charged to uauth."""

    def __init__(self, app: Flask, profiler: cProfile.Profile | None = None) -> None:
        self.inner = app.wsgi_app
        self.profiler = profiler
        self.cpu = 0.0

    def __call__(self, environ: Any, start_response: Any) -> Any:
        started = time.process_time()
        if self.profiler is not None:
            self.profiler.enable()
        try:
            return self.inner(environ, start_response)
        finally:
            if self.profiler is not None:
                self.profiler.disable()
            self.cpu += time.process_time() - started


def profile(app: Flask, target: Target, op: str, count: int, *, with_profiler: bool
            ) -> tuple[cProfile.Profile, float]:
    """Run ``op`` ``count`` times; the profile and the app's CPU ms per operation."""
    agent, run = prepare(target, op, lambda _: InProcess(app))
    for _ in range(min(200, count)):  # warm: templates compiled, caches filled, connections open
        run()
    profiler = cProfile.Profile()
    return profiler, metered(app, run, count, profiler if with_profiler else None)


def metered(app: Flask, run: Callable[[], object], count: int,
            profiler: cProfile.Profile | None = None) -> float:
    """The app's CPU ms per operation over ``count`` runs of ``run`` (profiled, if given)."""
    meter = Meter(app, profiler)
    app.wsgi_app = meter  # type: ignore[method-assign]
    try:
        for _ in range(count):
            run()
    finally:
        app.wsgi_app = meter.inner  # type: ignore[method-assign]
    return meter.cpu * 1e3 / count


#: Where a function's own time is charged in ``--breakdown``: the first matching part of its
#: file path (site-packages names, then uauth's layers), else "Python and the rest".
COMPONENTS = (
    ("flask_login", "flask-login"), ("flask_wtf", "forms and CSRF (flask-wtf, wtforms)"),
    ("wtforms", "forms and CSRF (flask-wtf, wtforms)"),
    ("flask/", "Flask, Werkzeug, Jinja"), ("werkzeug", "Flask, Werkzeug, Jinja"),
    ("jinja2", "Flask, Werkzeug, Jinja"), ("markupsafe", "Flask, Werkzeug, Jinja"),
    ("itsdangerous", "Flask, Werkzeug, Jinja"), ("blinker", "Flask, Werkzeug, Jinja"),
    ("authlib", "Authlib (OAuth grant machinery)"),
    ("jwt/", "JOSE: PyJWT and signatures"), ("cryptography", "JOSE: PyJWT and signatures"),
    ("sqlite3", "storage driver and server round trips"), ("redis/", "storage driver and "
                                                          "server round trips"),
    ("json/", "JSON (records, bodies)"),
    ("uauth/storage", "uauth storage"), ("uauth/core", "uauth core"),
    ("uauth/oauth", "uauth oauth"), ("uauth/web", "uauth web"),
)
#: C functions whose time belongs to a component though they have no file.
BUILTINS = (("'sign' of", "JOSE: PyJWT and signatures"), ("'verify' of", "JOSE: PyJWT and "
                                                                         "signatures"),
            ("sqlite3", "storage driver and server round trips"),
            ("'execute' of", "storage driver and server round trips"),
            ("'fetch", "storage driver and server round trips"))


def component(where: tuple[str, int, str],
              components: tuple[tuple[str, str], ...] = COMPONENTS) -> str:
    path, _, name = where
    for part, label in components:
        if part in path.replace("\\", "/"):
            return label
    for part, label in BUILTINS:
        if part in name:
            return label
    return "Python and the rest"


def breakdown(profiler: cProfile.Profile, plain_ms: float) -> str:
    """Each component's share of the profiled own time, scaled to the unprofiled CPU per
    operation (the profiler inflates Python code more than C, so shares are approximate)."""
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    shares: dict[str, float] = {}
    for where, (_, _, own, _, _) in stats.items():
        shares[component(where)] = shares.get(component(where), 0.0) + own
    total = sum(shares.values()) or 1.0
    lines = ["| component | share | ≈ CPU ms per operation |", "| --- | --- | --- |"]
    for label, own in sorted(shares.items(), key=lambda item: -item[1]):
        lines.append(f"| {label} | {100 * own / total:.0f}% | {plain_ms * own / total:.2f} |")
    return "\n".join(lines)


def log_to_nowhere() -> None:
    """``uauth serve``'s logging (JSON lines from INFO up), its stream /dev/null."""
    stderr = sys.stderr
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the handler keeps it for the process)
    try:
        configure_logging("json", "INFO")
    finally:
        sys.stderr = stderr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    ap.add_argument("--store", choices=["sqlite", "redis", "postgres", "memory"],
                    default="sqlite", help="postgres: a database of its own on 127.0.0.1:5432 "
                    "(or $UAUTH_TEST_POSTGRES), dropped afterwards")
    ap.add_argument("--op", choices=["flow", "refresh", "cc", "userinfo", "login", "introspect",
                                     "par", "sso"],
                    default="flow")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1,
                    help="time COUNT operations this many times and print the least CPU (on a "
                         "shared machine the least disturbed run)")
    ap.add_argument("--each", action="store_true",
                    help="also print each of the REPEAT timings in order, one store throughout: "
                         "a cost that grows with what the store holds shows as a rising series")
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    ap.add_argument("--output", type=Path, help="also save the raw profile (for snakeviz etc.)")
    ap.add_argument("--breakdown", action="store_true",
                    help="print CPU per operation by component instead of the function list")
    ap.add_argument("--access-token-format", choices=ACCESS_TOKEN_FORMATS, default=JWT,
                    help="access tokens of the bench clients (opaque: stored, not signed)")
    ap.add_argument("--access-log", action="store_true",
                    help="log as `uauth serve` does (a JSON line per request, written to "
                         "/dev/null), so the log line's cost is counted too")
    ap.add_argument("--config", action="append", default=[], metavar="KEY=JSON",
                    help="app setting to try, e.g. UAUTH_SIGNING_ALG='\"ES256\"' (repeatable)")
    args = ap.parse_args(argv)
    if args.access_log:
        log_to_nowhere()
    with tempfile.TemporaryDirectory(prefix="uauth-profile-") as tmp:
        redis = database = None
        url = None
        if args.store == "redis":
            redis = RedisServer(Path(tmp) / "redis")
            redis.start()
            url = redis.url
        elif args.store == "postgres":
            database = SessionDatabase()
            database.create()
            url = database.url
        try:
            config = {k: json.loads(v) for k, _, v in (c.partition("=") for c in args.config)}
            app, target = build(args.store, Path(tmp), url, config,
                                access_token_format=args.access_token_format)
            try:
                # Timed once without the profiler: the profiler itself roughly doubles the cost.
                timings = [profile(app, target, args.op, args.count, with_profiler=False)[1]
                           for _ in range(max(1, args.repeat))]
                plain_ms = min(timings)
                if args.each:
                    print(f"{args.op} on {args.store}, CPU ms per operation, each timing of "
                          f"{args.count}: " + " ".join(f"{t:.2f}" for t in timings))
                profiler, _ = profile(app, target, args.op, args.count, with_profiler=True)
            finally:
                with app.app_context():
                    get_state().store.close()  # before a DROP DATABASE ends its connections
        finally:
            if redis is not None:
                redis.stop()
            if database is not None:
                database.drop()
    if args.output:
        profiler.dump_stats(str(args.output))
    if args.breakdown:
        print(f"{args.op} on {args.store} ({args.access_token_format} access tokens): "
              f"{plain_ms:.3f} CPU ms per operation in-process ({args.count} operations)")
        print(breakdown(profiler, plain_ms))
        return 0
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
    print(f"{args.op} on {args.store} ({args.access_token_format} access tokens): "
          f"{plain_ms:.2f} CPU ms per operation in-process (the WSGI app only: no HTTP "
          f"server, {'the access log to /dev/null' if args.access_log else 'no access log'}), "
          f"{args.count} operations; profile "
          "follows (per-call times are inflated by the profiler, proportions hold)")
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())

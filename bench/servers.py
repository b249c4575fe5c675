"""The servers a bench run starts: uauth under gunicorn, the bare Flask baseline under the same
gunicorn settings, a private redis-server, and (when installed) the reference provider.

uauth is started and provisioned the way an operator does it: ``uauth init``, ``uauth client add
--json``, ``uauth user add --password-stdin``, ``uauth serve --workers N``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import IO
from typing import Any
from typing import cast
from urllib.error import URLError
from urllib.request import urlopen

from tests.live_server import LiveServer
from tests.redis_server import RedisServer
from tests.redis_server import free_port
from uauth.core.opaque import JWT
from uauth.core.opaque import OPAQUE

from .driver import Target

ROOT = Path(__file__).resolve().parent.parent
REDIRECT_URI = "http://127.0.0.1:8399/cb"
USERNAME = "bench"
PASSWORD = "bench-password-1"  # noqa: S105 - a throwaway user in a throwaway instance

#: Where the reference provider is installed (outside the project; see docs/performance.md).
REFERENCE_DIR = Path(os.environ.get("UAUTH_BENCH_REFERENCE", "/tmp/node-op"))  # noqa: S108
#: The shared bench anchor holding the reference's start script (never copied into the project).
ANCHOR_DIR = Path(os.environ.get("UAUTH_BENCH_ANCHOR",
                                 str(ROOT.parent / "shared" / "bench-anchor")))
#: The reference's fixed clients (its provider.mjs); the secret is its published bench secret.
REFERENCE_SPA = "pub"
REFERENCE_SERVICE = ("conf", "conf-secret-0123456789abcdef0123456789abcdef")
#: The environment variable naming the file where ``bench.memory_app`` writes its clients.
CLIENTS_FILE = "BENCH_MEMORY_CLIENTS"  # not UAUTH_*: uauth refuses settings it does not know


def wait_until_up(url: str, process: subprocess.Popen[Any], log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited: {log.read_text()[-1500:]}")
        try:
            with urlopen(url, timeout=1) as response:  # noqa: S310 - loopback only
                if response.status == 200:
                    return
        except (URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def stop(process: subprocess.Popen[Any] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


#: An operation and the algorithm of the ID tokens it gets, e.g. ("flow", "ES256").
Op = tuple[str, str]


@dataclass
class Server:
    """One running server process to measure: what it is, where, and its master's pid."""

    provider: str  #: "bare", "reference", "floor", "uauth" or "uauth-memory"
    store: str
    workers: int
    ops: tuple[Op, ...]
    #: Who to drive per ID-token algorithm (a different client, or a different server).
    targets: dict[str, Target]
    process: subprocess.Popen[Any]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop(self.process)


class _Serve(LiveServer):
    """``uauth serve`` as the tests start it, plus the gunicorn thread count; ``command`` is the
    module that is the ``uauth`` command (``bench.memory_app``: the same, provisioning itself)."""

    def __init__(self, instance: Path, *, storage: str, workers: int, threads: int,
                 env: dict[str, str], command: str = "uauth") -> None:
        super().__init__(instance, storage=storage, workers=workers, env=env)
        self.threads = threads
        self.command = command

    def _spawn(self, log: object) -> subprocess.Popen[str]:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", self.command, "serve", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(self.workers), "--threads", str(self.threads)],
            cwd=ROOT, env=self.env(), stdout=cast(IO[str], log), stderr=subprocess.STDOUT,
            text=True,
        )


class Uauth:
    """One uauth deployment (instance folder + storage), provisioned once, served by any number
    of ``uauth serve`` processes at once. It has a signing key for every algorithm in ``algs``
    and one browser-app client per algorithm for its ID tokens (access tokens stay RS256, or
    are opaque with ``access_token_format="opaque"``)."""

    def __init__(self, workdir: Path, store: str, redis: RedisServer | None = None,
                 algs: tuple[str, ...] = ("RS256",), storage: str | None = None,
                 access_token_format: str = JWT) -> None:
        self.store = store
        self.instance = workdir / f"instance-{store}"
        self.storage = storage or (redis.url if redis else f"sqlite:///{self.instance}/uauth.db")
        self.algs = tuple(dict.fromkeys(("RS256", *algs)))
        # Read by `uauth client add` too: the bench clients get this access token format.
        self.env = {"UAUTH_SIGNING_ALGS": json.dumps(list(self.algs)),
                    "UAUTH_ACCESS_TOKEN_FORMAT": access_token_format}
        self.access_token_format = access_token_format
        self.spa_clients: dict[str, str] = {}
        self.service_client: tuple[str, str] | None = None

    def _cli(self, *args: str, stdin: str | None = None) -> str:
        live = LiveServer(self.instance, storage=self.storage, env=self.env)
        done = live.cli(*args, stdin=stdin)
        if done.returncode != 0:
            raise RuntimeError(f"uauth {' '.join(args[:2])} failed: {done.stderr.strip()}")
        return done.stdout

    def provision(self) -> None:
        """``uauth init``, a first-party public client (PKCE, no consent page), a confidential
        client allowed client_credentials that may introspect any access token (a resource
        server, as ``bench.provision`` registers it in-process), and a user with a password."""
        self._cli("init")
        for alg in self.algs:
            spa = json.loads(self._cli(
                "client", "add", "--name", f"bench-spa-{alg}", "--public", "--first-party",
                "--redirect-uri", REDIRECT_URI, "--id-token-signed-response-alg", alg, "--json"))
            self.spa_clients[alg] = spa["client_id"]
        service = json.loads(self._cli("client", "add", "--name", "bench-service",
                                       "--grant-type", "client_credentials",
                                       "--introspect-any-token", "--json"))
        self.service_client = (service["client_id"], service["client_secret"])
        self._cli("user", "add", USERNAME, "--password-stdin", "--email", "bench@example.com",
                  "--email-verified", "--name", "Bench User", stdin=PASSWORD + "\n")

    def target(self, url: str) -> Target:
        """The provisioned clients and user on this deployment served at ``url``, discovered."""
        return Target(issuer=url, spa_client=self.spa_clients["RS256"],
                      redirect_uri=REDIRECT_URI, service_client=self.service_client,
                      login=(USERNAME, PASSWORD),
                      access_token_format=self.access_token_format).discover()

    def serve(self, workers: int, threads: int, ops: tuple[Op, ...]) -> Server:
        live = _Serve(self.instance, storage=self.storage, workers=workers, threads=threads,
                      env=self.env)
        live.start()
        assert live.process is not None
        first = self.target(live.url)
        targets = {alg: replace(first, spa_client=client)
                   for alg, client in self.spa_clients.items()}
        return Server("uauth", self.store, workers, ops, targets, live.process)


def serve_in_memory(workdir: Path, threads: int, ops: tuple[Op, ...],
                    access_token_format: str = JWT) -> Server:
    """uauth with ``memory://`` storage under ``uauth serve`` (``bench/memory_app.py``): one
    worker, its records in its memory as the reference and the floor keep theirs, so that
    beside uauth on SQLite it measures what durable storage costs served. Its clients are
    those ``Uauth.provision`` registers (the RS256 browser app and the service client); the
    password login is left out (argon2id costs the same wherever records are kept)."""
    instance = workdir / "instance-memory"
    clients = workdir / "memory-clients.json"
    live = _Serve(instance, storage="memory://", workers=1, threads=threads,
                  env={CLIENTS_FILE: str(clients),
                       "UAUTH_ACCESS_TOKEN_FORMAT": access_token_format},
                  command="bench.memory_app")
    live.start()
    assert live.process is not None
    target = memory_target(live.url, clients, access_token_format)
    measured = tuple(op for op in ops if op[1] == "RS256" and op[0] != "login")
    return Server("uauth-memory", "memory", 1, measured, {"RS256": target}, live.process)


def memory_target(url: str, clients: Path, access_token_format: str) -> Target:
    """The clients and user ``bench.memory_app`` provisioned (their ids in ``clients``) on the
    server at ``url``, discovered."""
    ids = json.loads(clients.read_text())
    return Target(issuer=url, spa_client=ids["spa"], redirect_uri=REDIRECT_URI,
                  service_client=(str(ids["service"][0]), str(ids["service"][1])),
                  login=(USERNAME, PASSWORD), access_token_format=access_token_format).discover()


def serve_bare(workdir: Path, workers: int, threads: int) -> Server:
    """A one-route Flask app under ``gunicorn`` with the settings ``uauth serve`` uses (sync
    worker, gunicorn's access log off: uauth writes its own request log line, which is part of
    what it costs)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / f"bare-{port}.log"
    with open(log, "w") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--threads", str(threads),
             "--name", "uauth-bench-bare", "bench.bare:app"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )
    wait_until_up(url + "/", process, log)
    return Server("bare", "-", workers, (("bare", "-"),), {"-": Target(url, "", "")}, process)


#: The operations the stack's floor (bench/floor.py) answers.
FLOOR_OPS = ("flow", "refresh", "cc", "userinfo", "sso")


def serve_floor(workdir: Path, ops: tuple[str, ...], store: str = "memory") -> Server:
    """Authlib's Flask provider and nothing else (``bench/floor.py``), one sync worker under
    ``uauth serve``'s gunicorn settings, as bare is; one process, since it keeps its tokens in
    memory, as the reference does, or (``store="sqlite"``) in a SQLite file of its own in
    ``workdir``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / f"floor-{store}-{port}.log"
    env = {**os.environ, "UAUTH_BENCH_FLOOR_ISSUER": url,
           "UAUTH_BENCH_FLOOR_REDIRECT": REDIRECT_URI}
    if store == "sqlite":
        env["UAUTH_BENCH_FLOOR_DB"] = str(workdir / f"floor-{port}.db")
    elif store != "memory":
        raise ValueError(f"the floor keeps its records in memory or in SQLite, not {store}")
    with open(log, "w") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "--name", f"uauth-bench-floor-{store}", "bench.floor:app"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    wait_until_up(url + "/", process, log)
    return Server("floor", store, 1, tuple((op, "RS256") for op in ops),
                  {"RS256": floor_target(url)}, process)


def floor_target(url: str) -> Target:
    """The stack's floor's fixed clients on the server at ``url``, discovered."""
    from .floor import PUBLIC_CLIENT
    from .floor import SERVICE_CLIENT

    return Target(issuer=url, spa_client=PUBLIC_CLIENT, redirect_uri=REDIRECT_URI,
                  service_client=SERVICE_CLIENT, access_token_format=OPAQUE).discover()


def reference_problem() -> str | None:
    """Why the reference provider cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (REFERENCE_DIR / "node_modules" / "oidc-provider").is_dir():
        return f"oidc-provider is not installed in {REFERENCE_DIR} (see docs/performance.md)"
    if not (REFERENCE_DIR / "provider.mjs").exists() and not (ANCHOR_DIR / "provider.mjs").exists():
        return f"no provider.mjs in {REFERENCE_DIR} or {ANCHOR_DIR}"
    return None


def serve_reference(workdir: Path, ops: tuple[str, ...], alg: str = "RS256",
                    at_format: str = "opaque") -> Server:
    """panva's oidc-provider (one Node process, in-memory storage) from the bench anchor's
    ``provider.mjs``; ``at_format="jwt"`` makes it issue JWT access tokens signed with ``alg``."""
    script = REFERENCE_DIR / "provider.mjs"
    if not script.exists():  # ES modules resolve imports from their own folder
        shutil.copy(ANCHOR_DIR / "provider.mjs", script)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / f"reference-{port}.log"
    env = {**os.environ, "OP_PORT": str(port), "OP_ALG": alg, "OP_AT_FORMAT": at_format,
           "OP_ROTATE_RT": "always", "OP_REDIRECT": REDIRECT_URI}
    with open(log, "w") as out:
        process = subprocess.Popen(["node", str(script)],  # noqa: S603,S607 - node from PATH
                                   cwd=REFERENCE_DIR, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    wait_until_up(url + "/.well-known/openid-configuration", process, log)
    target = Target(issuer=url, spa_client=REFERENCE_SPA, redirect_uri=REDIRECT_URI,
                    service_client=REFERENCE_SERVICE)
    return Server("reference", "memory", 1, tuple((op, alg) for op in ops),
                  {alg: target.discover()}, process)

"""A running provider per storage backend, provisioned through the store it serves from.

SQLite and Redis run under real gunicorn (2 workers); memory, which cannot be shared across
processes, runs under werkzeug's threaded HTTP server inside the test process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.chromium import DESKTOP
from tests.chromium import new_page
from tests.conftest import unique_prefix
from tests.http_stub import serve
from tests.live_server import LiveServer
from tests.redis_server import RedisServer
from tests.redis_server import free_port
from uauth import create_app
from uauth.core.claims import pairwise_subject
from uauth.core.claims import sector_of
from uauth.core.claims import shared_salt
from uauth.core.clients import Registration
from uauth.core.clients import RegistrationRules
from uauth.core.clients import register_client
from uauth.core.models import Client
from uauth.core.models import User
from uauth.core.users import StoreUsers
from uauth.storage import Store
from uauth.storage import open_store
from uauth.storage.memory import MemoryStore
from uauth.storage.redis import RedisStore
from uauth.storage.sqlite import SQLiteStore

PASSWORD = "password123"
REDIRECT = "http://127.0.0.1:8399/cb"


@dataclass
class Provider:
    backend: str
    url: str
    store: Store
    instance: Path
    live: LiveServer | None = None
    _n: list[int] = field(default_factory=lambda: [0])

    @property
    def users(self) -> StoreUsers:
        import time

        return StoreUsers(self.store, time.time)

    def add_user(self, username: str | None = None, **profile: Any) -> User:
        self._n[0] += 1
        name = username or f"user{self._n[0]}-{unique_prefix()[1:7]}"
        profile.setdefault("email", f"{name}@example.com")
        profile.setdefault("name", name.title())
        return self.users.create(name, PASSWORD, profile)

    def add_client(self, **kwargs: Any) -> tuple[Client, str | None]:
        kwargs.setdefault("name", "Test App")
        kwargs.setdefault("redirect_uris", [REDIRECT])
        # the provider's UAUTH_FETCH_ALLOWED_HOSTS, as its config below says
        rules = RegistrationRules(fetch_allowed_hosts=["127.0.0.1"])
        return register_client(self.store, Registration(**kwargs), rules)

    def sub(self, user: User, client: Client) -> str:
        """The ``sub`` the client should see, computed as a relying party never could: from the
        provider's secret pairwise salt in storage."""
        if client.subject_type == "public":
            return user.id
        return pairwise_subject(shared_salt(self.store), sector_of(client), user.id)

    @property
    def discovery(self) -> dict[str, Any]:
        import requests

        data: dict[str, Any] = requests.get(
            self.url + "/.well-known/openid-configuration", timeout=5).json()
        return data


def _memory_provider(tmp: Path, config: dict[str, Any] | None = None) -> Iterator[Provider]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    store = MemoryStore()
    app = create_app({"UAUTH_ISSUER": url, **(config or {})}, store=store,
                     instance_path=tmp / "instance")
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Provider("memory", url, store, tmp / "instance")
    server.shutdown()
    thread.join()


def _gunicorn_provider(tmp: Path, backend: str, redis: RedisServer | None,
                       config: dict[str, Any] | None = None,
                       scale_out_url: str | None = None) -> Iterator[Provider]:
    instance = tmp / "instance"
    env = {k: str(v) for k, v in (config or {}).items()}
    if backend == "redis":
        assert redis is not None
        prefix = unique_prefix()
        storage = redis.url
        env["UAUTH_REDIS_PREFIX"] = prefix
        store: Store = RedisStore(redis.url, prefix=prefix)
    elif backend in ("postgres", "redis-cluster"):
        assert scale_out_url is not None
        storage = scale_out_url
        prefix = unique_prefix()
        env["UAUTH_REDIS_PREFIX"] = prefix
        store = open_store(storage, redis_prefix=prefix)
    else:
        storage = f"sqlite:///{instance}/uauth.db"
        store = SQLiteStore(instance / "uauth.db")
    live = LiveServer(instance, storage=storage, env=env)
    init = live.cli("init")
    assert init.returncode == 0, init.stderr
    live.start()
    yield Provider(backend, live.url, store, instance, live)
    live.stop()
    store.close()


@contextmanager
def localhost_provider(tmp: Path, env: dict[str, str] | None = None
                       ) -> Iterator[tuple[LiveServer, SQLiteStore]]:
    """A provider under gunicorn on SQLite with ``http://localhost:<port>`` as its issuer, for
    passkeys: browsers refuse an IP address as a passkey's relying party ID."""
    instance = tmp / "instance"
    live = LiveServer(instance, storage=f"sqlite:///{instance}/uauth.db", env=env)
    live.extra_env["UAUTH_ISSUER"] = f"http://localhost:{live.port}"
    assert live.cli("init").returncode == 0
    live.start()
    store = SQLiteStore(instance / "uauth.db")
    try:
        yield live, store
    finally:
        live.stop()
        store.close()


@contextmanager
def app_page(title: str, heading: str) -> Iterator[str]:
    """A relying party's redirect URI: a real page on loopback that the browser lands on."""
    page = f"<!doctype html><title>{title}</title><h1>{heading}</h1>".encode()
    with serve({"/callback": page}, "text/html; charset=utf-8") as url:
        yield url + "/callback"


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A desktop-sized page in a context of its own."""
    with new_page(chromium, **DESKTOP) as page:
        yield page


def sign_in(page: Any, username: str, password: str = PASSWORD) -> None:
    """Fill in the login page and press its password button (not "Sign in with a passkey")."""
    page.fill("#username", username)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def start_provider(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                   backend: str, config: dict[str, Any] | None = None) -> Iterator[Provider]:
    """A provider on ``backend`` with extra settings (environment variables under gunicorn)."""
    tmp = tmp_path_factory.mktemp(f"provider-{backend}")
    # The tests' back-channel logout receivers listen on loopback: allow-list it, as an operator
    # would for a development receiver (uauth.core.fetcher refuses internal addresses otherwise).
    config = {"UAUTH_FETCH_ALLOWED_HOSTS": "127.0.0.1", **(config or {})}
    if backend == "memory":
        yield from _memory_provider(tmp, config)
    else:
        redis = request.getfixturevalue("redis_server") if backend == "redis" else None
        url = None
        if backend == "postgres":
            url = request.getfixturevalue("postgres_database").schema_url()
        elif backend == "redis-cluster":
            url = request.getfixturevalue("redis_cluster").url
        yield from _gunicorn_provider(tmp, backend, redis, config, url)


#: Every backend a deployment may use; the scale-out ones only in the slow run (CI), which
#: keeps the everyday run short.
PROVIDER_BACKENDS = ["memory", "sqlite", "redis",
                     pytest.param("postgres", marks=pytest.mark.slow),
                     pytest.param("redis-cluster", marks=pytest.mark.slow)]


@pytest.fixture(scope="session", params=PROVIDER_BACKENDS)
def provider(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Provider]:
    yield from start_provider(request, tmp_path_factory, request.param)

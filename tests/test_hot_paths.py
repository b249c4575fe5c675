"""Issue 10's known traps, pinned without timing anything: what must be built once per worker
is built once (parsed keys, discovery and JWKS documents, storage connections, clients)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.extension import get_state
from uauth.storage.memory import MemoryStore
from uauth.storage.sqlite import SQLiteStore


def test_signing_keys_are_parsed_once_and_reused(tmp_path: Path, clock: FakeClock) -> None:
    app = make_app(tmp_path, MemoryStore(clock=clock), clock)
    with app.app_context():
        state = get_state()
        first = state.keys.signing_key("RS256", clock())
        assert state.keys.signing_key("RS256", clock()) is first
        assert not isinstance(first.private, (str, bytes)), "a key object, never a PEM per call"


def test_discovery_and_jwks_are_built_once(tmp_path: Path, clock: FakeClock) -> None:
    app = make_app(tmp_path, MemoryStore(clock=clock), clock)
    http = app.test_client()
    for path in ("/.well-known/openid-configuration", "/jwks.json"):
        assert http.get(path).status_code == 200
    with app.app_context():
        cache = get_state().cache
        built = {name: cache[name] for name in ("discovery", "jwks")}
    for path in ("/.well-known/openid-configuration", "/jwks.json"):
        http.get(path)
    with app.app_context():
        assert all(get_state().cache[name] is body for name, body in built.items())


def test_a_worker_reuses_its_storage_connection(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.sqlite3")
    store.save("client", "c", {"n": 1}, ttl=None)
    connection = store._conn()
    store.find("client", "c")
    assert store._conn() is connection


def test_a_sqlite_worker_loads_no_other_database_driver(tmp_path: Path) -> None:
    """Each driver costs a worker's memory (psycopg and its pool about 12 MB): only the storage
    in use is imported, whatever the app and its CLI commands could reach."""
    script = ("import sys; from uauth import create_app; "
              f"create_app({{'UAUTH_STORAGE': 'sqlite:///{tmp_path}/u.db'}}, "
              f"instance_path={str(tmp_path / 'instance')!r}); "
              "print(sorted(m for m in ('psycopg', 'psycopg_pool') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

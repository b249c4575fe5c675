"""Issue 10's known traps, pinned without timing anything: what must be built once per worker
is built once (parsed keys, discovery and JWKS documents, storage connections, clients)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import werkzeug.exceptions
from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from flask import Flask
from flask import request
from flask import session
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import Signer
from werkzeug.datastructures import MultiDict

from tests.app_driver import Driver
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.app import _KeyOnceSigner
from uauth.extension import get_state
from uauth.oauth import server
from uauth.oauth.parameters import Parameters
from uauth.oauth.server import UAuthRequest
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
    in use is imported, whatever the app and its CLI commands could reach. So are py_webauthn
    (5 MB) and segno, until a passkey ceremony or a TOTP enrolment needs them."""
    script = ("import sys; from uauth import create_app; "
              f"create_app({{'UAUTH_STORAGE': 'sqlite:///{tmp_path}/u.db'}}, "
              f"instance_path={str(tmp_path / 'instance')!r}); "
              "print(sorted(m for m in ('psycopg', 'psycopg_pool', 'redis', 'webauthn', 'segno')"
              " if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


_PASSWORD_CHECKS = """
import sys
from argon2 import PasswordHasher
if sys.argv[1] == "fixed":
    from uauth.ops.malloc import return_large_blocks
    assert return_large_blocks()
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) // 1024
if sys.argv[1] == "wsgi":  # what gunicorn 'uauth.wsgi:app' runs in each worker
    from uauth.app import create_app
    from uauth.ops.wsgi import load
    load(lambda overrides: create_app(overrides, instance_path=sys.argv[2]))
hasher = PasswordHasher(memory_cost=19456, time_cost=2, parallelism=1)
hashed = hasher.hash("pw")
before = rss()
for _ in range(3):
    hasher.verify(hashed, "pw")
print(rss() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists() or platform.libc_ver()[0] != "glibc",
                    reason="glibc's mmap threshold, read from /proc")
def test_a_worker_returns_the_memory_of_a_password_check(tmp_path: Path) -> None:
    """argon2id borrows 19 MiB per check; glibc would keep it resident in every worker after
    the first (its mmap threshold adapts), unless it is fixed, as ``uauth.wsgi`` does (``uauth
    serve``: tests/e2e/test_worker_memory.py)."""
    growth = {}
    for mode in ("default", "fixed", "wsgi"):
        done = subprocess.run([sys.executable, "-c", _PASSWORD_CHECKS, mode,
                               str(tmp_path / mode)], capture_output=True, text=True,
                              check=False, timeout=60, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        growth[mode] = int(done.stdout.split()[-1])
    assert growth["default"] >= 15, growth  # the problem is real on this libc
    assert growth["fixed"] <= 2 and growth["wsgi"] <= 2, growth


def test_a_request_without_cookies_opens_no_cookie_session(tmp_path: Path, clock: FakeClock,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The back channel never carries the browser's cookie: its empty session is made without
    parsing cookies or building the session's signer. A request with the cookie still reads it."""
    app = make_app(tmp_path, MemoryStore(clock=clock), clock)
    signers: list[object] = []
    interface = app.session_interface
    assert isinstance(interface, SecureCookieSessionInterface)
    original = interface.get_signing_serializer

    def signer(of: Flask) -> Any:
        signers.append(of)
        return original(of)

    monkeypatch.setattr(interface, "get_signing_serializer", signer)
    machine = app.test_client(use_cookies=False)
    assert machine.get("/.well-known/openid-configuration").status_code == 200
    assert signers == []
    browser = app.test_client()
    with browser.session_transaction() as stored:
        stored["probe"] = "kept"
    signers.clear()
    with browser:
        browser.get("/login")
        assert session.get("probe") == "kept"
    assert signers, "a request with the cookie is read through the signer"


def test_the_cookie_key_is_derived_once_and_cookies_read_as_flask_signs_them(
        tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's signing key is derived once per secret, not for every cookie; cookies are
    Flask's own (HMAC-SHA1 of the same derived key), so an upgrade signs nobody out, and one
    signed with a retired secret (``SECRET_KEY_FALLBACKS``) still opens."""
    derived: list[bytes] = []
    derive = Signer.derive_key

    def counted(self: Signer, secret_key: str | bytes | None = None) -> bytes:
        key = derive(self, secret_key)
        if self.salt == b"cookie-session":  # flask-wtf's CSRF tokens have a signer of their own
            derived.append(key)
        return key

    monkeypatch.setattr(Signer, "derive_key", counted)
    # The derived keys are kept per process: start from none, whatever apps ran before.
    monkeypatch.setattr(_KeyOnceSigner, "_derived", {})
    app = make_app(tmp_path, MemoryStore(clock=clock), clock, SECRET_KEY="current-secret",
                   SECRET_KEY_FALLBACKS=["retired-secret"])
    flask_signed = SecureCookieSessionInterface().get_signing_serializer(app)
    before = make_app(tmp_path / "before", MemoryStore(clock=clock), clock,
                      SECRET_KEY="retired-secret")
    old = SecureCookieSessionInterface().get_signing_serializer(before)
    assert flask_signed is not None and old is not None
    name = app.config["SESSION_COOKIE_NAME"]
    cookies = {"flask": flask_signed.dumps({"probe": "flask"}),
               "retired": old.dumps({"probe": "retired"})}
    derived.clear()
    for probe, value in cookies.items():
        client = app.test_client()
        client.set_cookie(name, value)
        for _ in range(3):
            with client:
                client.get("/login")
                assert session.get("probe") == probe, "each cookie opens as what it holds"
    assert len(derived) == 2, "one key per secret, for six requests"
    ours = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    assert flask_signed.loads(ours.dumps({"probe": "ours"})) == {"probe": "ours"}


class _NoLength(dict[str, str]):
    """Headers that must not be walked: ``len`` (``headers or {}``) fails the test."""

    def __len__(self) -> int:
        raise AssertionError("the request's headers were walked")


def test_an_oauth_request_has_authlibs_fields_without_walking_the_headers() -> None:
    """UAuthRequest sets OAuth2Request's fields itself (Authlib's __init__ re-checks the
    transport and tests ``headers or {}`` on every request): the same fields, the same values."""
    theirs = OAuth2Request("POST", "https://id.example.com/token?x=1", headers={"A": "b"})
    ours = UAuthRequest("POST", "/token?x=1", _NoLength(A="b"), MultiDict({"k": "v"}),
                        "https://id.example.com")
    assert set(vars(ours)) == set(vars(theirs)), "an Authlib upgrade changed the fields"
    for name, value in vars(theirs).items():
        if name not in ("headers", "payload"):
            assert getattr(ours, name) == value, name
    assert ours.form["k"] == "v" and ours.payload.data["k"] == "v"


def test_an_oauth_request_still_refuses_an_insecure_issuer() -> None:
    """The transport check is Authlib's, made once per issuer; a refusal is never remembered
    as a pass."""
    for _ in range(2):
        with pytest.raises(InsecureTransportError):
            UAuthRequest("POST", "/token", {}, MultiDict(), "http://id.example.com")
    assert UAuthRequest("POST", "/token", {}, MultiDict(), "http://127.0.0.1:5000").uri == (
        "http://127.0.0.1:5000/token")


@pytest.mark.parametrize("direct", [True, False], ids=["context-variables", "proxies"])
def test_the_state_and_the_request_are_read_from_flasks_context(
        tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, direct: bool) -> None:
    """``get_state``, ``current_request``, ``request_globals``, ``request_or_none`` and
    ``app_or_none`` read Flask's context variables, not its proxies, and answer as the proxies
    would: the app's state, the request and its ``g``, Flask's own error (or None) outside a
    context and uauth's outside an initialised app.
    A Flask without those variables gets the proxies' answers."""
    from flask import g
    from flask import request

    from uauth.web import state as web_state

    if not direct:
        monkeypatch.setattr(web_state, "_APP_CONTEXT", None)
        monkeypatch.setattr(web_state, "_REQUEST_CONTEXT", None)
    app = make_app(tmp_path, MemoryStore(clock=clock), clock)
    with pytest.raises(RuntimeError, match="application context"):
        web_state.get_state()
    with pytest.raises(RuntimeError, match="request context"):
        web_state.current_request()
    assert web_state.request_or_none() is None and web_state.app_or_none() is None
    with app.app_context():
        assert web_state.app_or_none() is app and web_state.request_or_none() is None
    with app.test_request_context("/userinfo"):
        assert web_state.request_or_none() is request._get_current_object()  # type: ignore[attr-defined]
        assert web_state.app_or_none() is app
        assert web_state.get_state() is app.extensions["uauth"]
        assert web_state.current_request() is request._get_current_object()  # type: ignore[attr-defined]
        assert web_state.request_globals() is g._get_current_object()
        if direct:  # inside a context, the proxies are never consulted
            expected = (app, request._get_current_object(), g._get_current_object())  # type: ignore[attr-defined]
            with monkeypatch.context() as untouchable:  # the proxies come back at its end only
                for proxy in ("current_app", "request", "g"):
                    untouchable.setattr(web_state, proxy, _Untouchable())
                assert (web_state.app_or_none(), web_state.current_request(),
                        web_state.request_globals()) == expected
                assert web_state.get_state() is app.extensions["uauth"]
                assert web_state.request_or_none() is expected[1]
    with Flask("host").app_context(), pytest.raises(RuntimeError, match="not initialised"):
        web_state.get_state()
    other = make_app(tmp_path / "other", MemoryStore(clock=clock), clock)
    with app.app_context(), other.app_context():
        assert web_state.get_state() is other.extensions["uauth"], "the innermost app's"


class _Untouchable:
    """Stands in for a Flask proxy that must not be read."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a proxy was read ({name}) where the context variable serves")


def test_oauth_parameters_answer_as_a_multidict_without_an_exception_per_miss(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``Parameters.get`` answers every read as ``MultiDict.get`` does, and a miss builds no
    ``BadRequestKeyError`` (an HTTPException: 0.8 µs, about fourteen a code flow)."""
    pairs = [("scope", "openid"), ("resource", "a"), ("resource", "b"), ("max_age", "60"),
             ("state", "")]
    theirs: MultiDict[str, str] = MultiDict(pairs)
    ours = Parameters(pairs)
    theirs.setlist("emptied", [])
    ours.setlist("emptied", [])
    reads: list[tuple[Any, ...]] = [
        ("scope",), ("resource",), ("state",), ("state", "d"), ("absent",), ("absent", "d"),
        ("emptied",), ("emptied", "d"), ("max_age", None, int), ("scope", 5, int),
        ("absent", 7, int)]
    for read in reads:
        assert ours.get(*read) == theirs.get(*read), read
    assert ours.getlist("resource") == ["a", "b"] and isinstance(ours.copy(), Parameters)

    def refused(key: str) -> Exception:
        raise AssertionError(f"an exception was built for the absent {key!r}")

    monkeypatch.setattr(werkzeug.exceptions, "BadRequestKeyError", refused)
    assert ours.get("absent") is None and ours.get("emptied", "d") == "d"
    with pytest.raises(AssertionError):
        theirs.get("absent")  # the patch reaches MultiDict's own misses


def test_the_views_hand_authlib_parameters_read_without_exceptions(
        tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """/authorize and /token build their OAuth requests on :class:`Parameters`."""
    seen: list[tuple[str, type]] = []
    original = server._Payload.__init__

    def payload(self: Any, data: Any) -> None:
        seen.append((request.path, type(data)))
        original(self, data)

    monkeypatch.setattr(server._Payload, "__init__", payload)
    driver = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    driver.user()
    client, secret = driver.client()
    driver.login()
    code = driver.code(client.client_id)
    assert driver.token(client.client_id, secret, code=code).status_code == 200
    assert {path for path, _ in seen} == {"/authorize", "/token"}, seen
    assert {kind for _, kind in seen} == {Parameters}, seen


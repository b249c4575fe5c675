"""The admin CLI, run as an operator runs it (a subprocess), against a real SQLite instance."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def uauth(instance: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uauth", "--instance", str(instance), *args],
                          input=stdin, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "instance"
    assert uauth(path, "init").returncode == 0
    return path


def test_user_add_list_disable(instance: Path) -> None:
    added = uauth(instance, "user", "add", "carol", "--password-stdin", "--email",
                  "carol@example.com", "--name", "Carol C", "--given-name", "Carol",
                  stdin="correct horse\n")
    assert added.returncode == 0 and "created user carol" in added.stdout
    listed = uauth(instance, "user", "list")
    assert "carol" in listed.stdout and "active" in listed.stdout
    dup = uauth(instance, "user", "add", "CAROL", "--password-stdin", stdin="whatever123\n")
    assert dup.returncode == 1 and dup.stderr.strip() == "error: user 'CAROL' already exists"
    assert uauth(instance, "user", "disable", "carol").returncode == 0
    assert "disabled" in uauth(instance, "user", "list").stdout
    missing = uauth(instance, "user", "disable", "nobody")
    assert missing.returncode == 1 and "no user 'nobody'" in missing.stderr


def test_client_add_json_list_remove(instance: Path) -> None:
    added = uauth(instance, "client", "add", "--name", "Web", "--redirect-uri",
                  "https://app.example.com/cb", "--json")
    assert added.returncode == 0, added.stderr
    created = json.loads(added.stdout)
    assert set(created) == {"client_id", "client_secret"} and len(created["client_secret"]) >= 43
    db = (instance / "uauth.db").read_bytes()
    assert created["client_secret"].encode() not in db, "secrets are stored hashed"
    assert created["client_id"] in uauth(instance, "client", "list").stdout
    public = json.loads(uauth(instance, "client", "add", "--name", "SPA", "--public",
                              "--redirect-uri", "http://localhost:3000/cb", "--json").stdout)
    assert public["client_secret"] is None
    assert uauth(instance, "client", "remove", created["client_id"]).returncode == 0
    assert created["client_id"] not in uauth(instance, "client", "list").stdout


@pytest.mark.parametrize(("uri", "reason"), [
    ("http://app.example.com/cb", "uses http on a non-loopback host"),
    ("https://app.example.com/cb#frag", "must not contain a fragment"),
    ("javascript:alert(1)", "forbidden scheme"),
    ("myapp:/cb", "reverse domain name"),
    ("/relative", "must be absolute"),
])
def test_client_add_refuses_bad_redirect_uris_with_the_reason(instance: Path, uri: str,
                                                               reason: str) -> None:
    result = uauth(instance, "client", "add", "--name", "Bad", "--redirect-uri", uri)
    assert result.returncode == 1 and reason in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_client_add_accepts_native_and_loopback_uris(instance: Path) -> None:
    for uri in ("com.example.app:/oauth2redirect", "http://127.0.0.1:8400/cb",
                "http://[::1]:8400/cb", "http://localhost/cb"):
        assert uauth(instance, "client", "add", "--name", "N", "--public",
                     "--redirect-uri", uri).returncode == 0, uri


def test_client_add_machine_client_and_resource_server(instance: Path) -> None:
    from uauth.clients import get_client
    from uauth.storage.sqlite import SQLiteStore

    added = uauth(instance, "client", "add", "--name", "Billing job", "--grant-type",
                  "client_credentials", "--scope", "profile", "--audience",
                  "https://orders.example.com", "--introspect-any-token", "--json")
    assert added.returncode == 0, added.stderr
    client_id = json.loads(added.stdout)["client_id"]
    store = SQLiteStore(instance / "uauth.db")
    client = get_client(store, client_id)
    store.close()
    assert client is not None and client.grant_types == ["client_credentials"]
    assert client.audiences == ["https://orders.example.com"] and client.introspect_any_token
    fragment = uauth(instance, "client", "add", "--name", "M", "--grant-type",
                     "client_credentials", "--audience", "https://api.example.com/#x")
    assert fragment.returncode == 1 and "without a fragment" in fragment.stderr
    public = uauth(instance, "client", "add", "--name", "SPA", "--public", "--redirect-uri",
                   "http://localhost:3000/cb", "--introspect-any-token")
    assert public.returncode == 1 and "only confidential clients" in public.stderr


def test_client_add_registers_for_logout(instance: Path) -> None:
    from uauth.clients import get_client
    from uauth.storage.sqlite import SQLiteStore

    added = uauth(instance, "client", "add", "--name", "RP", "--redirect-uri",
                  "https://rp.example.com/cb", "--post-logout-redirect-uri",
                  "https://rp.example.com/bye", "--post-logout-redirect-uri",
                  "com.example.app:/bye", "--backchannel-logout-uri",
                  "https://rp.example.com/logout?x=1", "--backchannel-logout-session-required",
                  "--json")
    assert added.returncode == 0, added.stderr
    store = SQLiteStore(instance / "uauth.db")
    client = get_client(store, json.loads(added.stdout)["client_id"])
    store.close()
    assert client is not None
    assert client.post_logout_redirect_uris == ["https://rp.example.com/bye",
                                                "com.example.app:/bye"]
    assert client.backchannel_logout_uri == "https://rp.example.com/logout?x=1"
    assert client.backchannel_logout_session_required is True


@pytest.mark.parametrize(("settings", "reason"), [
    ({"post_logout_redirect_uris": ["https://rp.example.com/bye#x"]},
     "post-logout redirect URI 'https://rp.example.com/bye#x' must not contain a fragment"),
    ({"post_logout_redirect_uris": ["http://rp.example.com/bye"]}, "non-loopback host"),
    ({"backchannel_logout_uri": "http://rp.example.com/logout"}, "must use https"),
    ({"backchannel_logout_uri": "https://rp.example.com/logout#f"}, "without a fragment"),
    ({"backchannel_logout_uri": "/logout"}, "must be an absolute URL"),
    ({"backchannel_logout_session_required": True}, "needs a --backchannel-logout-uri"),
])
def test_client_add_refuses_bad_logout_settings(settings: dict[str, Any], reason: str) -> None:
    from uauth.clients import RegistrationError
    from uauth.clients import register_client
    from uauth.storage.memory import MemoryStore

    with pytest.raises(RegistrationError, match=re.escape(reason)):
        register_client(MemoryStore(), name="Bad", redirect_uris=["https://rp.example.com/cb"],
                        **settings)


def test_environment_names_the_instance(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "UAUTH_INSTANCE": str(tmp_path / "env-instance")}
    result = subprocess.run([sys.executable, "-m", "uauth", "init"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and (tmp_path / "env-instance" / "uauth.db").exists()


def test_the_same_commands_run_under_flask(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "UAUTH_INSTANCE": str(tmp_path / "i"), "FLASK_APP": "wsgi"}
    flask = [sys.executable, "-m", "flask", "uauth"]
    cwd = Path(__file__).parent.parent
    added = subprocess.run([*flask, "user", "add", "erin", "--password-stdin"], env=env, cwd=cwd,
                           input="password123\n", capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    listed = subprocess.run([sys.executable, "-m", "uauth", "user", "list"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert "erin" in listed.stdout, "flask uauth and uauth share the instance"


def test_client_add_response_types_and_default_mode(instance: Path) -> None:
    from uauth.clients import get_client
    from uauth.storage.sqlite import SQLiteStore

    added = uauth(instance, "client", "add", "--name", "Hybrid", "--redirect-uri",
                  "https://app.example.com/cb", "--response-type", "code",
                  "--response-type", "id_token code", "--default-response-mode", "form_post",
                  "--json")
    assert added.returncode == 0, added.stderr
    store = SQLiteStore(instance / "uauth.db")
    client = get_client(store, json.loads(added.stdout)["client_id"])
    store.close()
    assert client is not None and client.default_response_mode == "form_post"
    assert client.response_types == ["code", "code id_token"]
    bad = uauth(instance, "client", "add", "--name", "X", "--redirect-uri",
                "https://app.example.com/cb", "--default-response-mode", "web_message")
    assert bad.returncode == 2 and "web_message" in bad.stderr

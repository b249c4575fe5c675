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
    from uauth.core.clients import get_client
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
    from uauth.core.clients import get_client
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
    from uauth.core.clients import Registration
    from uauth.core.clients import RegistrationError
    from uauth.core.clients import register_client
    from uauth.storage.memory import MemoryStore

    with pytest.raises(RegistrationError, match=re.escape(reason)):
        register_client(MemoryStore(), Registration(
            name="Bad", redirect_uris=["https://rp.example.com/cb"], **settings))


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
    from uauth.core.clients import get_client
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


def test_client_add_subject_types_and_required_attributes(instance: Path) -> None:
    pairwise = json.loads(uauth(instance, "client", "add", "--name", "P", "--redirect-uri",
                                "https://p.example.com/cb", "--require-attribute", "birthdate",
                                "--json").stdout)
    public = json.loads(uauth(instance, "client", "add", "--name", "Q", "--redirect-uri",
                              "https://q.example.com/cb", "--subject-type", "public",
                              "--json").stdout)
    listed = uauth(instance, "client", "list").stdout
    assert f"{pairwise['client_id']}\tP\tconfidential\thttps://p.example.com/cb\tsub:pairwise" in listed
    assert f"{public['client_id']}\tQ\tconfidential\thttps://q.example.com/cb\tsub:public" in listed
    unknown = uauth(instance, "client", "add", "--name", "U", "--redirect-uri",
                    "https://u.example.com/cb", "--require-attribute", "shoe_size")
    assert unknown.returncode == 1 and "unknown attribute(s) shoe_size" in unknown.stderr
    hosts = uauth(instance, "client", "add", "--name", "H", "--redirect-uri",
                  "https://a.example.com/cb", "--redirect-uri", "https://b.example.com/cb")
    assert hosts.returncode == 1 and "--sector-identifier-uri" in hosts.stderr
    unreachable = uauth(instance, "client", "add", "--name", "S", "--redirect-uri",
                        "https://a.example.com/cb", "--sector-identifier-uri",
                        "https://127.0.0.1:9/sector.json")
    assert unreachable.returncode == 1 and "cannot fetch sector_identifier_uri" in unreachable.stderr
    assert "non-public address" in unreachable.stderr, "loopback is refused before connecting"


def test_user_set_writes_operator_attributes_and_verification(instance: Path) -> None:
    from uauth.storage.sqlite import SQLiteStore

    added = uauth(instance, "user", "add", "dora", "--password-stdin", "--email",
                  "dora@example.com", "--email-verified", stdin="password123\n")
    user_id = added.stdout.strip().split("(")[1].rstrip(")")
    store = SQLiteStore(instance / "uauth.db")
    assert store.find("user", user_id)["profile"]["email_verified"] is True  # type: ignore[index]
    changed = uauth(instance, "user", "set", "dora", 'groups=["staff", "admins"]',
                    "email=dora@new.example", "phone_number=+44 20 7946 0958")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == ("updated user dora: groups, email, phone_number, "
                                      "email_verified")
    profile = store.find("user", user_id)["profile"]  # type: ignore[index]
    assert profile["groups"] == ["staff", "admins"] and "email_verified" not in profile
    assert profile["phone_number"] == "+44 20 7946 0958", "text stays text"
    assert uauth(instance, "user", "set", "dora", "phone_number_verified=true").returncode == 0
    assert store.find("user", user_id)["profile"]["phone_number_verified"] is True  # type: ignore[index]
    for bad, message in (("sub=x", "'sub' is not a profile attribute"),
                         ("email_verified=yes", "email_verified is true or false"),
                         ("Groups=x", "lower-case attribute name"),
                         ("groups=[x", "does not parse")):
        result = uauth(instance, "user", "set", "dora", bad)
        assert result.returncode == 1 and message in result.stderr, bad
    store.close()


def test_flask_uauth_errors_are_one_line_too(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "UAUTH_INSTANCE": str(tmp_path / "i"), "FLASK_APP": "wsgi",
           "UAUTH_STORAGE": "redis://127.0.0.1:1/0"}
    result = subprocess.run([sys.executable, "-m", "flask", "uauth", "client", "list"], env=env,
                            cwd=Path(__file__).parent.parent, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: redis unavailable")


def test_client_add_stores_what_its_flags_say(instance: Path) -> None:
    from uauth.core.clients import get_client
    from uauth.storage.sqlite import SQLiteStore

    added = uauth(instance, "client", "add", "--name", "Flags", "--redirect-uri",
                  "https://app.example.com/cb", "--allow-origin", "https://app.example.com",
                  "--first-party", "--token-endpoint-auth-method", "client_secret_post",
                  "--scope", "openid profile", "--json")
    assert added.returncode == 0, added.stderr
    client_id = json.loads(added.stdout)["client_id"]
    client = get_client(SQLiteStore(instance / "uauth.db"), client_id)
    assert client is not None
    assert client.allowed_origins == ["https://app.example.com"] and client.first_party
    assert client.token_endpoint_auth_method == "client_secret_post"
    assert client.scope == "openid profile"


def test_client_add_registers_keys_and_request_policies(instance: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    from uauth.core.clients import get_client
    from uauth.storage.sqlite import SQLiteStore

    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps({"keys": [jwk]}))
    added = uauth(instance, "client", "add", "--name", "Signed", "--redirect-uri",
                  "https://app.example.com/cb", "--jwks", str(keys), "--require-par",
                  "--allow-unsigned-request-objects", "--json")
    assert added.returncode == 0, added.stderr
    client = get_client(SQLiteStore(instance / "uauth.db"), json.loads(added.stdout)["client_id"])
    assert client is not None and client.jwks == {"keys": [jwk]}
    assert client.require_pushed_authorization_requests and client.allow_unsigned_request_objects
    keys.write_text("{not json")
    refused = uauth(instance, "client", "add", "--name", "Bad", "--redirect-uri",
                    "https://app.example.com/cb", "--jwks", str(keys))
    assert refused.returncode == 1 and "--jwks" in refused.stderr


def test_client_access_token_format(instance: Path) -> None:
    created = json.loads(uauth(instance, "client", "add", "--name", "Opaque", "--redirect-uri",
                               "https://o.example.com/cb", "--access-token-format", "opaque",
                               "--json").stdout)
    client_id = created["client_id"]
    assert f"{client_id}\tOpaque\tconfidential\thttps://o.example.com/cb\tsub:pairwise\tat:opaque" \
        in uauth(instance, "client", "list").stdout
    assert re.search(r"^access_token_format:\s+opaque$",
                     uauth(instance, "client", "show", client_id).stdout, re.M)
    updated = uauth(instance, "client", "update", client_id, "--access-token-format", "jwt")
    assert updated.returncode == 0 and "access_token_format" in updated.stdout
    assert re.search(r"^access_token_format:\s+jwt$",
                     uauth(instance, "client", "show", client_id).stdout, re.M)
    bad = uauth(instance, "client", "add", "--name", "B", "--redirect-uri",
                "https://b.example.com/cb", "--access-token-format", "paseto")
    assert bad.returncode == 2 and "paseto" in bad.stderr

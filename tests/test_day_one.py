"""Issue 18: first run and day one. A newcomer and an operator never hit a wall."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uauth.core.clients import get_client
from uauth.core.models import Client
from uauth.core.models import User
from uauth.core.users import StoreUsers
from uauth.storage import StorageError
from uauth.storage import hash_key
from uauth.storage.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]


def test_sample_access_log_lines_in_the_docs_agree_with_themselves() -> None:
    """Item 14: a documented request line says the method it logged (POST /token, not GET)."""
    samples = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]:
        for line in doc.read_text().splitlines():
            if '"logger": "uauth.request"' in line:
                samples.append(json.loads(line))
    assert samples, "docs/operations.md shows a sample request line"
    for sample in samples:
        assert sample["msg"] == f"{sample['method']} {sample['path']} {sample['status']}"
        assert re.fullmatch(r"[0-9a-f]{16}", sample["request_id"])


def make_dry_run(*args: str) -> str:
    import subprocess

    done = subprocess.run(["make", "-n", "-B", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_installs_what_running_needs_and_make_test_adds_the_test_extras() -> None:
    """Item 8: ``make run`` installs the package alone, ``make test`` adds ``.[test]``."""
    run = make_dry_run("run")
    assert "pip install --quiet -e .\n" in run and "[test]" not in run
    assert "uauth --instance instance serve" in run
    test = make_dry_run("test")
    assert "pip install --quiet -e '.[test]'" in test and "pytest" in test


def test_the_license_is_an_spdx_string_so_setuptools_does_not_warn() -> None:
    """Item 8: ``license = "MIT"`` (setuptools >= 77), not the deprecated table."""
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"
    assert "setuptools>=77" in meta["build-system"]["requires"]


def test_make_example_serves_on_the_port_it_is_given_and_says_so(tmp_path: Path) -> None:
    """Item 10: ``make example PORT=…`` serves there, and the URLs it prints are that port's."""
    import os
    import subprocess
    import sys

    commands = make_dry_run("example", "PORT=5123")
    assert "run --port 5123" in commands and "5001" not in commands
    env = {**os.environ, "NOTES_INSTANCE": str(tmp_path / "notes"),
           "NOTES_UAUTH_ISSUER": "http://127.0.0.1:5123/auth"}
    demo = subprocess.run([sys.executable, "-m", "flask", "--app", "examples/embedded/notes",
                           "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert demo.returncode == 0, demo.stderr
    assert "http://127.0.0.1:5123/api/notes" in demo.stdout and "5001" not in demo.stdout


def uauth(*args: str, stdin: str | None = None, cwd: Path | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it: a subprocess, without UAUTH_INSTANCE unless given."""
    base = {k: v for k, v in os.environ.items() if k != "UAUTH_INSTANCE"}
    return subprocess.run([sys.executable, "-m", "uauth", *args], input=stdin, cwd=cwd,
                          env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=60)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [("user", "list"), ("user", "add", "bob", "--password-stdin"),
                                     ("client", "list"), ("keys", "list"), ("check",)])
def test_admin_commands_in_the_wrong_folder_create_nothing(tmp_path: Path,
                                                           command: tuple[str, ...]) -> None:
    """Item 3: only ``init`` (and ``serve``) may create an instance."""
    result = uauth(*command, stdin="password123\n", cwd=tmp_path)
    line = one_error_line(result)
    assert line == (f"error: no instance at {tmp_path.resolve()}/instance; run `uauth init` or "
                    "pass `--instance` (or set UAUTH_INSTANCE)")
    assert list(tmp_path.iterdir()) == [], "nothing created"
    elsewhere = uauth("--instance", str(tmp_path / "nope"), *command, stdin="password123\n")
    assert "no instance at" in one_error_line(elsewhere) and not (tmp_path / "nope").exists()


def test_init_creates_the_instance_the_other_commands_then_use(tmp_path: Path) -> None:
    assert uauth("init", cwd=tmp_path).returncode == 0
    assert uauth("user", "add", "bob", "--password-stdin", stdin="password123\n",
                 cwd=tmp_path).returncode == 0
    assert "bob" in uauth("user", "list", cwd=tmp_path).stdout


def test_an_unwritable_instance_fails_at_once_with_the_path_and_the_fix(tmp_path: Path) -> None:
    """Item 6: one line naming the path, no traceback, no 20-second wait."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    started = time.monotonic()
    line = one_error_line(uauth("--instance", str(blocker / "instance"), "init"))
    assert f"cannot write {blocker}/instance" in line and "writable" in line
    missing_dir = tmp_path / "gone" / "uauth.db"
    env = {"UAUTH_STORAGE": f"sqlite:///{missing_dir}"}
    line = one_error_line(uauth("--instance", str(tmp_path / "i"), "init", env=env))
    assert f"sqlite database {missing_dir} cannot be written" in line
    assert "writable by the user uauth runs as" in line
    assert time.monotonic() - started < 8, "no busy-timeout retries for a file that cannot open"


def test_a_read_only_database_is_not_retried_as_if_it_were_locked(tmp_path: Path) -> None:
    """Item 6: only SQLITE_BUSY/LOCKED are waited for; read-only fails at once, with the fix."""
    import sqlite3


    path = tmp_path / "u.db"
    SQLiteStore(path).ping()
    readonly = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    store = SQLiteStore(path)
    store._local.pid, store._local.conn = os.getpid(), readonly  # what a read-only file opens as
    started = time.monotonic()
    with pytest.raises(StorageError, match="cannot be written: attempt to write a readonly"):
        store.save("client", "c1", {"x": 1}, None)
    assert time.monotonic() - started < 1


def test_redis_down_is_one_error_line(tmp_path: Path) -> None:
    """Item 11: no second copy of the error from a log warning."""
    from tests.redis_server import free_port

    assert uauth("--instance", str(tmp_path / "i"), "init").returncode == 0
    env = {"UAUTH_STORAGE": f"redis://127.0.0.1:{free_port()}/0"}
    line = one_error_line(uauth("--instance", str(tmp_path / "i"), "user", "list", env=env))
    assert line.startswith("error: redis unavailable")


def test_help_lists_every_command_with_its_whole_first_sentence() -> None:
    """Item 11: no summary cut off with "..."."""
    for group in ((), ("user",), ("client",), ("keys",)):
        shown = uauth(*group, "--help")
        commands = shown.stdout.split("Commands:")[1]
        assert shown.returncode == 0 and "..." not in commands, shown.stdout
    text = " ".join(uauth("--help").stdout.split())
    assert "Copy the SQLite database to DEST while uauth keeps running (online backup)." in text
    assert "e.g. groups='[\"staff\"]' email_verified=true (empty removes)." in " ".join(
        uauth("user", "--help").stdout.split())


@pytest.mark.parametrize(("url", "message"), [
    ("redis://localhost:notaport/0", "the port in redis://localhost:notaport is not a number"),
    ("redis://:s3cret@localhost:notaport/0", "the port in redis://localhost:notaport is not"),
    ("redis://localhost:6379/abc", "the database in redis://localhost:6379/abc must be a number"),
    ("redis://localhost/0?db=x", "must be a number"),
])
def test_bad_redis_urls_are_refused_at_start_up_in_one_line(tmp_path: Path, url: str,
                                                            message: str) -> None:
    """Item 7: validated before anything connects; a password is never echoed."""
    line = one_error_line(uauth("--instance", str(tmp_path / "i"), "init",
                                env={"UAUTH_STORAGE": url}))
    assert line.startswith("error: UAUTH_STORAGE: ") and message in line, line
    assert "s3cret" not in line


def test_a_redis_database_the_server_lacks_is_named(tmp_path: Path, redis_url: str) -> None:
    """Item 7: ``/99`` says which database and what to change, not just ``ResponseError``."""
    url = redis_url.rsplit("/", 1)[0] + "/99"
    line = one_error_line(uauth("--instance", str(tmp_path / "i"), "init",
                                env={"UAUTH_STORAGE": url}))
    assert "has no database 99" in line and "`databases` setting" in line, line


def test_serve_on_a_public_bind_without_an_issuer_refuses_with_the_line_to_set(
        tmp_path: Path) -> None:
    """Item 2: ``make run BIND=0.0.0.0:8000`` never publishes http://127.0.0.1:5000."""
    from tests.redis_server import free_port

    instance = tmp_path / "instance"
    assert uauth("--instance", str(instance), "init").returncode == 0
    bind = f"0.0.0.0:{free_port()}"
    line = one_error_line(uauth("--instance", str(instance), "serve", "--bind", bind))
    assert f"uauth listens on {bind}, which is not a loopback address" in line
    assert "`UAUTH_ISSUER=https://id.example.com`" in line and str(instance / "config.py") in line
    assert not list(tmp_path.glob("**/prometheus*")), "no metrics directory left behind"


def test_serve_says_who_holds_the_port_instead_of_pretending_to_serve(tmp_path: Path) -> None:
    """Item 9: checked before the banner; names the process when /proc shows it."""
    import socket

    instance = tmp_path / "instance"
    assert uauth("--instance", str(instance), "init").returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = uauth("--instance", str(instance), "serve", "--bind", f"127.0.0.1:{port}")
    line = one_error_line(result)
    assert line.startswith(f"error: 127.0.0.1:{port} is in use by pid {os.getpid()} (")
    assert "--bind HOST:PORT" in line and result.stdout == "", "no banner"


def gunicorn(tmp_path: Path, app: str, bind: str, env: dict[str, str],
             python: str = sys.executable, cwd: Path = ROOT) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("UAUTH_")}
    return subprocess.Popen(
        [python, "-m", "gunicorn", "-b", bind, "-w", "1", "--no-control-socket", app],
        cwd=cwd, env={**base, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


def wait_for(url: str, process: subprocess.Popen[str]) -> None:
    import requests

    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "gunicorn did not answer"
        time.sleep(0.1)


@pytest.mark.slow
def test_plain_gunicorn_on_a_public_bind_refuses_and_on_loopback_follows_it(
        tmp_path: Path) -> None:
    """Item 2 for ``gunicorn -b … wsgi:app``: the same rule as ``uauth serve``."""
    import requests

    from tests.redis_server import free_port

    env = {"UAUTH_INSTANCE": str(tmp_path / "instance")}
    assert uauth("init", env=env).returncode == 0
    refused = gunicorn(tmp_path, "wsgi:app", f"0.0.0.0:{free_port()}", env)
    out = refused.communicate(timeout=60)[0]
    assert refused.returncode != 0 and "which is not a loopback address" in out, out
    assert "Traceback" not in out
    port = free_port()
    served = gunicorn(tmp_path, "wsgi:app", f"127.0.0.1:{port}", env)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", served)
        meta = requests.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration",
                            timeout=5).json()
        assert meta["issuer"] == f"http://127.0.0.1:{port}"
    finally:
        served.terminate()
        served.communicate(timeout=30)


@pytest.fixture(scope="module")
def day_one(tmp_path_factory: pytest.TempPathFactory) -> Path:
    instance = tmp_path_factory.mktemp("day-one") / "instance"
    assert uauth("--instance", str(instance), "init").returncode == 0
    return instance


def test_empty_lists_say_so(tmp_path: Path) -> None:
    """Item 4: an empty list is not silence."""
    instance = tmp_path / "instance"
    assert uauth("--instance", str(instance), "init").returncode == 0
    users = uauth("--instance", str(instance), "user", "list")
    assert users.returncode == 0 and users.stdout == "" and "no users yet" in users.stderr
    clients = uauth("--instance", str(instance), "client", "list")
    assert clients.returncode == 0 and "no clients yet" in clients.stderr


def test_day_one_user_tasks(day_one: Path) -> None:
    """Item 4: reset a password, disable and re-enable, remove; ``user set`` refuses what is
    not a profile attribute and names the command instead."""

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return uauth("--instance", str(day_one), *args, stdin=stdin)

    assert cli("user", "add", "carol", "--password-stdin", stdin="first-password\n").returncode == 0
    changed = cli("user", "set-password", "carol", "--password-stdin", stdin="second-password\n")
    assert changed.returncode == 0 and changed.stdout == (
        "password of carol changed; ended 0 session(s) and the access of 0 app(s)\n")
    users = StoreUsers(SQLiteStore(day_one / "uauth.db"), time.time)
    assert users.authenticate("carol", "second-password") is not None
    assert users.authenticate("carol", "first-password") is None
    short = cli("user", "set-password", "carol", "--password-stdin", stdin="short\n")
    assert "at least 8 characters" in one_error_line(short)
    refused = cli("user", "set", "carol", "disabled=false")
    assert one_error_line(refused) == ("error: 'disabled' is not a profile attribute; use "
                                       "`uauth user disable NAME / uauth user enable NAME`")
    assert "set-password" in one_error_line(cli("user", "set", "carol", "password=x"))
    def carol() -> User:
        found = users.find_by_username("carol")
        assert found is not None
        return found

    assert "disabled" not in carol().profile
    assert cli("user", "disable", "carol").returncode == 0
    assert carol().disabled
    enabled = cli("user", "enable", "carol")
    assert enabled.stdout == "enabled user carol\n" and not carol().disabled
    removed = cli("user", "remove", "carol")
    assert removed.returncode == 0 and removed.stdout.startswith("removed user carol")
    assert users.find_by_username("carol") is None
    assert "no user 'carol'" in one_error_line(cli("user", "remove", "carol"))
    again = cli("user", "add", "carol", "--password-stdin", stdin="third-password\n")
    assert again.returncode == 0, "the username is free again"


def test_day_one_client_tasks(day_one: Path) -> None:
    """Item 4: show, update (same options as add), rotate the secret, remove."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return uauth("--instance", str(day_one), *args)

    created = json.loads(cli("client", "add", "--name", "Web", "--redirect-uri",
                             "https://app.example.com/cb", "--json").stdout)
    client_id, secret = created["client_id"], created["client_secret"]
    shown = cli("client", "show", client_id)
    assert shown.returncode == 0 and re.search(r"name:\s+Web\n", shown.stdout)
    assert "client_secret:" in shown.stdout and secret not in shown.stdout
    updated = cli("client", "update", client_id, "--name", "Web 2", "--redirect-uri",
                  "https://app.example.com/cb2", "--first-party", "--scope", "openid email")
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout == (f"updated client {client_id}: first_party, name, redirect_uris, "
                              "scope\n")
    store = SQLiteStore(day_one / "uauth.db")
    after = get_client(store, client_id)
    assert after is not None and after.name == "Web 2" and after.first_party
    assert after.redirect_uris == ["https://app.example.com/cb2"]
    assert after.secret_hash == hash_key(secret), "the secret is kept"
    assert "uses http on a non-loopback host" in one_error_line(
        cli("client", "update", client_id, "--redirect-uri", "http://app.example.com/cb"))
    assert cli("client", "update", client_id, "--no-first-party").returncode == 0
    def stored() -> Client:
        found = get_client(store, client_id)
        assert found is not None
        return found

    assert not stored().first_party
    rotated = json.loads(cli("client", "rotate-secret", client_id, "--json").stdout)
    assert rotated["client_id"] == client_id and rotated["client_secret"] != secret
    assert stored().secret_hash == hash_key(rotated["client_secret"])
    public = json.loads(cli("client", "add", "--name", "SPA", "--public", "--redirect-uri",
                            "http://localhost:3000/cb", "--json").stdout)
    assert "no secret to rotate" in one_error_line(
        cli("client", "rotate-secret", public["client_id"]))
    assert cli("client", "remove", client_id).returncode == 0
    assert "no client" in one_error_line(cli("client", "show", client_id))


def test_version() -> None:
    from importlib.metadata import version

    shown = uauth("--version")
    assert shown.returncode == 0 and shown.stdout == f"uauth, version {version('uauth')}\n"


def records(db: Path) -> set[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return set(conn.execute("SELECT kind, key FROM records"))


def test_check_leaves_nothing_behind(tmp_path: Path) -> None:
    """Item 12: not the grant and session tombstones, not a pairwise salt."""
    instance = tmp_path / "instance"
    assert uauth("--instance", str(instance), "init").returncode == 0
    before = records(instance / "uauth.db")
    checked = uauth("--instance", str(instance), "check")
    assert checked.returncode == 0 and "deployment works" in checked.stdout, checked.stdout
    assert records(instance / "uauth.db") == before
    assert checked.stderr == "", "no audit lines on stderr"


def test_check_works_and_leaves_nothing_with_opaque_access_tokens(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    env = {"UAUTH_ACCESS_TOKEN_FORMAT": "opaque"}
    assert uauth("--instance", str(instance), "init", env=env).returncode == 0
    before = records(instance / "uauth.db")
    checked = uauth("--instance", str(instance), "check", env=env)
    assert checked.returncode == 0 and "deployment works" in checked.stdout, checked.stdout
    assert "the access token is opaque (checked at /userinfo)" in checked.stdout
    assert records(instance / "uauth.db") == before, "the opaque token's record went too"


def test_check_refuses_storage_that_was_never_initialised(tmp_path: Path) -> None:
    """Item 12: it would create signing keys there; nothing is created."""
    instance = tmp_path / "instance"
    assert uauth("--instance", str(instance), "init").returncode == 0
    other = tmp_path / "other.db"
    refused = uauth("--instance", str(instance), "check",
                    env={"UAUTH_STORAGE": f"sqlite:///{other}"})
    assert "holds no signing keys" in one_error_line(refused) and not other.exists()


@pytest.mark.slow
def test_check_without_url_finds_the_server_uauth_serve_runs(tmp_path: Path) -> None:
    """Item 12: the server runs on another port than 5000 and publishes that issuer."""
    from tests.live_server import LiveServer

    live = LiveServer(tmp_path / "instance", storage=f"sqlite:///{tmp_path}/u.db", workers=1)
    env = live.env()
    del env["UAUTH_ISSUER"]
    live.env = lambda: env  # type: ignore[method-assign]
    assert live.cli("init").returncode == 0
    live.start()
    try:
        checked = live.cli("check")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        issuer = live.url.replace("127.0.0.1", "localhost")  # a loopback bind's issuer
        assert f"uauth serve runs this instance at {live.url} (issuer {issuer})" in checked.stdout
        assert f"issuer {issuer}" in checked.stdout.splitlines()[1]
    finally:
        live.stop()
    assert not (tmp_path / "instance" / "serving.json").exists()

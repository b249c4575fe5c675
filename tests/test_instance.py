"""Instance bootstrap: first run creates, later runs never overwrite, workers never race."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

from uauth.instance import init_instance
from uauth.keys import KeySet


def test_first_run_creates_private_files(tmp_path: Path) -> None:
    path = tmp_path / "inst"
    created = init_instance(path)
    assert any("secret_key" in c for c in created) and any("RS256" in c for c in created)
    assert (path / "secret_key").stat().st_mode & 0o777 == 0o600
    key_files = list((path / "keys").glob("*.pem"))
    assert len(key_files) == 1 and key_files[0].stat().st_mode & 0o777 == 0o600
    assert (path / "keys").stat().st_mode & 0o777 == 0o700
    assert "# UAUTH_ISSUER = " in (path / "config.py").read_text()


def test_later_runs_overwrite_nothing(tmp_path: Path) -> None:
    init_instance(tmp_path)
    (tmp_path / "config.py").write_text("UAUTH_CODE_TTL = 30\n")
    secret = (tmp_path / "secret_key").read_text()
    keys = KeySet.load(tmp_path / "keys").jwks()
    assert init_instance(tmp_path) == []
    assert (tmp_path / "config.py").read_text() == "UAUTH_CODE_TTL = 30\n"
    assert (tmp_path / "secret_key").read_text() == secret
    assert KeySet.load(tmp_path / "keys").jwks() == keys


def test_workers_starting_together_create_one_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=init_instance, args=(tmp_path,)) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert len(list((tmp_path / "keys").glob("*.pem"))) == 1


def test_cli_init_reports_and_is_idempotent(tmp_path: Path) -> None:
    uauth = [sys.executable, "-m", "uauth", "--instance", str(tmp_path / "i")]
    first = subprocess.run([*uauth, "init"], capture_output=True, text=True, check=True)
    assert "created" in first.stdout and (tmp_path / "i" / "uauth.db").exists()
    second = subprocess.run([*uauth, "init"], capture_output=True, text=True, check=True)
    assert "nothing to create" in second.stdout


def test_cli_config_error_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.py").write_text("UAUTH_ISSUER = 'http://id.example.com'\n")
    result = subprocess.run([sys.executable, "-m", "uauth", "--instance", str(tmp_path), "init"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("error: UAUTH_ISSUER uses http on the non-loopback host")
    assert "Traceback" not in result.stderr

"""Instance bootstrap: first run creates, later runs never overwrite, workers never race."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import run_in_processes
from uauth.ops.instance import init_instance


def test_first_run_creates_private_files(tmp_path: Path) -> None:
    path = tmp_path / "inst"
    created = init_instance(path)
    assert any("secret_key" in c for c in created)
    assert (path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert path.stat().st_mode & 0o777 == 0o700
    assert not (path / "keys").exists(), "signing keys live in storage now"
    assert "# UAUTH_ISSUER = " in (path / "config.py").read_text()


def test_later_runs_overwrite_nothing(tmp_path: Path) -> None:
    init_instance(tmp_path)
    (tmp_path / "config.py").write_text("UAUTH_CODE_TTL = 30\n")
    secret = (tmp_path / "secret_key").read_text()
    assert init_instance(tmp_path) == []
    assert (tmp_path / "config.py").read_text() == "UAUTH_CODE_TTL = 30\n"
    assert (tmp_path / "secret_key").read_text() == secret


def test_workers_starting_together_create_one_secret(tmp_path: Path) -> None:
    run_in_processes(init_instance, tmp_path)
    assert len((tmp_path / "secret_key").read_text().strip()) >= 64


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

"""Issue 18: first run and day one. A newcomer and an operator never hit a wall."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sample_access_log_lines_in_the_docs_agree_with_themselves() -> None:
    """Item 14: a documented request line says the method it logged (POST /token, not GET)."""
    samples = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]:
        for line in doc.read_text().splitlines():
            if '"logger": "uauth.request"' in line:
                samples.append(json.loads(line))
    assert samples, "docs/deploy.md shows a sample request line"
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

"""Issue 18 item 1: README's quickstart runs as written.

The runnable blocks of the quickstart carry a second word in their fence info string
(```` ```sh quickstart ````, ```` ```python quickstart ````). They are taken from README.md in
order and run against a provider started as README says (``make run``, on a free port with a
temporary instance), with only the host:port and the instance folder changed; the reader's
"same folder" (where ``my-app.json`` lands) is a temporary one. The person's part (open the
printed URL, sign in, allow, paste the URL landed on) is played over HTTP with the login and
consent forms.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.browser import Browser
from tests.browser import location
from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DEFAULT_ORIGIN = "http://127.0.0.1:5000"
FENCE = re.compile(r"^```(\w+)[ \t]+quickstart[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def quickstart_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every block tagged ``quickstart``, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def test_the_readme_tags_a_runnable_quickstart() -> None:
    """Fast guard: the tags are there, in a shell-then-Python order the slow test can run."""
    blocks = quickstart_blocks(README.read_text())
    languages = [language for language, _ in blocks]
    assert "sh" in languages and "python" in languages, languages
    assert languages.index("sh") < languages.index("python")
    python = "\n".join(code for language, code in blocks if language == "python")
    compile(python, "README quickstart", "exec")  # every Python block parses
    assert 'code_challenge_method="S256"' in python, "PKCE S256, or /token refuses the verifier"


def venv_bin() -> Path:
    """Where README's ``.venv/bin`` commands are in this run (CI: the same .venv)."""
    readme_bin = ROOT / ".venv" / "bin"
    return readme_bin if (readme_bin / "uauth").exists() else Path(sys.executable).parent


def localise(code: str, origin: str) -> str:
    return code.replace(DEFAULT_ORIGIN, origin).replace(".venv/bin/", f"{venv_bin()}/")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``make run INSTANCE=… BIND=127.0.0.1:PORT``: the commands make runs (its install step,
    already done for this test run, assumed), on a free port; (origin, instance)."""
    port = free_port()
    instance = tmp_path / "instance"
    planned = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed-run", "-o", ".venv/.installed", "run",
         f"INSTANCE={instance}", f"BIND=127.0.0.1:{port}", "WORKERS=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert planned.returncode == 0, planned.stderr
    commands = [localise(line, "") for line in planned.stdout.splitlines() if line.strip()]
    assert len(commands) == 2 and " init" in commands[0] and " serve " in commands[1], commands
    env = {k: v for k, v in os.environ.items() if not k.startswith("UAUTH_")}
    first = subprocess.run(shlex.split(commands[0]), cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(shlex.split(commands[1]), cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    origin = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(origin + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert f"uauth issuer:    {origin}" in log.read_text()
        yield origin, instance
    finally:
        server.terminate()
        server.wait(timeout=30)


def read_line(process: subprocess.Popen[str], pattern: str, seen: list[str],
              timeout: float = 60) -> re.Match[str]:
    """The next stdout line matching ``pattern`` (the earlier ones land in ``seen``)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if not ready:
            assert process.poll() is None, "".join(seen) + process.stderr.read()  # type: ignore
            continue
        line = process.stdout.readline()
        assert line, "".join(seen) + process.stderr.read()  # type: ignore[union-attr]
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"no line matching {pattern!r}: {''.join(seen)}")


@pytest.mark.slow
def test_the_readme_quickstart_runs_as_written(served: tuple[str, Path], tmp_path: Path) -> None:
    origin, instance = served
    here = tmp_path / "reader"  # the reader's folder: my-app.json is written here
    here.mkdir()
    blocks = quickstart_blocks(README.read_text())
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("UAUTH_")},
           "UAUTH_INSTANCE": str(instance)}  # README's ./instance is this run's instance
    shell = "\n".join(localise(code, origin) for language, code in blocks if language == "sh")
    python = "\n".join(localise(code, origin) for language, code in blocks
                       if language == "python")
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c", shell], cwd=here, env=env,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    saved = here / "my-app.json"
    registered = json.loads(saved.read_text()) if saved.exists() else next(
        json.loads(line) for line in ran.stdout.splitlines()
        if line.startswith("{") and "client_id" in line)
    person = re.search(r"echo '([^']+)' \| \S+ user add (\S+)", shell)
    assert person, "the quickstart adds a user with a password on stdin"
    password, username = person.groups()

    python = (python.replace("<client_id>", registered["client_id"])
              .replace("<client_secret>", registered["client_secret"]))
    client = subprocess.Popen([sys.executable, "-u", "-c", python], cwd=here, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        url = read_line(client, rf"^({re.escape(origin)}/authorize\?\S+)$", seen).group(1)
        # The person: opens the URL, signs in, allows, and pastes the address they land on.
        browser = Browser(origin)
        landed = location(browser.authorize(url, username=username, password=password))
        assert landed.startswith("http://127.0.0.1:8399/cb?"), landed
        assert client.stdin is not None
        client.stdin.write(landed + "\n")
        client.stdin.flush()
        out, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, "".join(seen) + out + err
    userinfo = next((line for line in out.splitlines() if "'sub': '" in line), "")
    assert "'email': '" in userinfo, out
    assert any(urlsplit(page).path == "/login" for page in browser.pages), "signed in"

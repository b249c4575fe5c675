"""The embedding example runs the way docs/embedding.md says (``make example`` runs these two commands)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from tests.browser import Browser
from tests.browser import location
from tests.redis_server import free_port

ROOT = Path(__file__).parent.parent.parent
APP = "examples/embedded/notes"
REDIRECT = "http://127.0.0.1:8399/cb"


def flask_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", APP, *args]


@pytest.fixture
def notes(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The example served on a free port with its own instance folder; (base URL, client id)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "NOTES_INSTANCE": str(tmp_path / "instance"),
           "NOTES_UAUTH_ISSUER": f"{base}/auth"}
    demo = subprocess.run(flask_cli("demo"), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert demo.returncode == 0, demo.stderr
    found = re.search(r"demo client:\s+(\S+)", demo.stdout)
    assert found, demo.stdout
    log = open(tmp_path / "notes.log", "w")  # noqa: SIM115
    server = subprocess.Popen(flask_cli("run", "--port", str(port)), cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(base + "/auth/.well-known/openid-configuration", timeout=1)
                break
            except requests.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "notes.log").read_text()
                time.sleep(0.1)
        yield base, found.group(1)
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


@pytest.mark.slow
def test_the_example_logs_alice_in_and_serves_her_notes(notes: tuple[str, str]) -> None:
    base, client_id = notes
    meta = requests.get(base + "/auth/.well-known/openid-configuration", timeout=5).json()
    session = OAuth2Session(client_id, scope="openid profile notes", redirect_uri=REDIRECT,
                            token_endpoint_auth_method="none", code_challenge_method="S256")
    verifier = secrets.token_urlsafe(48)
    url, _ = session.create_authorization_url(meta["authorization_endpoint"],
                                              code_verifier=verifier)
    browser = Browser(base)
    callback = location(browser.authorize(url, username="alice@example.com",
                                          password="wonderland-demo",
                                          login_fields=("email", "password")))
    assert any(urlsplit(page).path == "/login" for page in browser.pages)  # Notes' own page
    assert parse_qs(urlsplit(callback).query)["iss"] == [base + "/auth"]
    token = session.fetch_token(meta["token_endpoint"], authorization_response=callback,
                                code_verifier=verifier)
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    added = requests.post(base + "/api/notes", json={"text": "tea at four"}, headers=auth,
                          timeout=5)
    assert added.status_code == 201
    listed = requests.get(base + "/api/notes", headers=auth, timeout=5)
    assert listed.json()["user"] == "alice@example.com"
    assert listed.json()["notes"][-1]["text"] == "tea at four"
    assert requests.get(base + "/api/notes", timeout=5).status_code == 401

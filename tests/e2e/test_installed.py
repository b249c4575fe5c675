"""Issue 18 item 5: ``pip install`` then ``gunicorn 'uauth.wsgi:app'`` works (not a checkout).

The package is built and installed non-editable into a fresh virtualenv, offline: no
dependencies are installed (``--no-deps``), they come from the test venv's site-packages through
a plain ``.pth`` line (which does not run that venv's editable-install hook, so ``import uauth``
can only find the installed copy). Gunicorn runs from a folder without the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import requests

from tests.redis_server import free_port
from tests.test_day_one import gunicorn
from tests.test_day_one import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a venv holding a non-editable install of this checkout."""
    base = tmp_path_factory.mktemp("installed")
    source = base / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", ".pytest-tmp", "instance", "build", "*.egg-info", "__pycache__",
        "tests", "bench", "examples", "docs"))
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    target = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                             "['purelib'])"], capture_output=True, text=True, check=True)
    purelib = Path(target.stdout.strip())
    (purelib / "test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-build-isolation", "--no-index", str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deprecat" not in (done.stdout + done.stderr).lower(), done.stderr
    return python


@pytest.mark.slow
def test_gunicorn_serves_the_installed_package(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run([str(installed), "-c", "import uauth, uauth.wsgi; print(uauth.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True,
                           env={**os.environ, "UAUTH_INSTANCE": str(tmp_path / "i")})
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(installed.parent.parent) + "/lib/"), where.stdout
    instance = tmp_path / "instance"
    cli = installed.parent / "uauth"
    assert subprocess.run([str(cli), "--instance", str(instance), "init"], cwd=tmp_path,
                          capture_output=True, timeout=60).returncode == 0
    port = free_port()
    server = gunicorn(tmp_path, "uauth.wsgi:app", f"127.0.0.1:{port}",
                      {"UAUTH_INSTANCE": str(instance)}, python=str(installed), cwd=tmp_path)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", server)
        meta = requests.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration",
                            timeout=5).json()
        assert meta["issuer"] == f"http://127.0.0.1:{port}"
        login = requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
        assert login.status_code == 200 and "<form" in login.text, "templates are installed"
        assert requests.get(f"http://127.0.0.1:{port}/static/uauth/uauth.css",
                            timeout=5).status_code == 200, "static files are installed"
    finally:
        server.terminate()
        out = server.communicate(timeout=30)[0]
    assert '"logger": "uauth.request"' in out, "uauth's own logging is configured"
    assert sys.executable != str(installed)


@pytest.mark.slow
def test_every_template_and_static_file_is_installed(installed: Path, tmp_path: Path) -> None:
    """The admin console's and the mails' templates live in subfolders: a wheel that left them
    out would serve sign-in and fail on the console or the first mail."""
    listing = ("import pathlib, uauth; root = pathlib.Path(uauth.__file__).parent; "
               "print('\\n'.join(sorted(str(p.relative_to(root)) for d in ('templates', "
               "'static') for p in (root / d).rglob('*') if p.is_file())))")
    done = subprocess.run([str(installed), "-c", listing], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    source = ROOT / "uauth"
    expected = sorted(str(p.relative_to(source)) for d in ("templates", "static")
                      for p in (source / d).rglob("*") if p.is_file())
    assert "templates/uauth/admin/people.html" in expected
    assert done.stdout.split() == expected

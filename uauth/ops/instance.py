"""The instance folder: where a deployment's secrets, keys, config and SQLite file live.

``--instance`` / ``UAUTH_INSTANCE`` name it; otherwise it is ``./instance`` under the current
directory. That is deliberate: Flask would put an installed package's instance folder under
``<prefix>/var/uauth-instance``, which is invisible and differs between a checkout and a wheel;
uauth always uses the folder you can see from where you run it.

Initialisation is idempotent and takes a file lock, so several gunicorn workers starting at once
create exactly one secret, and nothing existing is ever overwritten. Signing keys live in the
configured storage (:mod:`uauth.core.keyring`); ``keys/`` is only read to import keys from before.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from uauth.core.settings import SETTINGS

SECRET_FILE = "secret_key"
#: Where uauth before 0.2 kept the pairwise salt; it now lives in storage
#: (:func:`uauth.core.claims.shared_salt`), which imports this file once if it exists.
SALT_FILE = "pairwise_salt"
CONFIG_FILE = "config.py"
KEYS_DIR = "keys"


def resolve_instance_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit``, else ``$UAUTH_INSTANCE``, else ``./instance``; always absolute."""
    chosen = explicit or os.environ.get("UAUTH_INSTANCE") or "instance"
    return Path(chosen).expanduser().resolve()


def example_config() -> str:
    """The commented config written on first run (and committed as config.example.py)."""
    lines = [
        '"""uauth instance configuration: uncomment and change what you need.',
        "",
        "Loaded after the built-in defaults and before UAUTH_* environment variables.",
        "Flask settings (e.g. SESSION_COOKIE_NAME) may be set here too.",
        '"""',
        "",
    ]
    for setting in SETTINGS:
        lines.append(f"# {setting.doc}")
        lines.append(f"# {setting.name} = {setting.default!r}")
        lines.append("")
    return "\n".join(lines)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path / ".init.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def init_instance(path: Path) -> list[str]:
    """Create what is missing in the instance folder; returns what was created."""
    created: list[str] = []
    if not path.exists():
        # Workers starting together on a fresh instance race here: exist_ok, then the lock.
        path.mkdir(parents=True, mode=0o700, exist_ok=True)
        created.append(str(path))
    with _locked(path):
        secret = path / SECRET_FILE
        if not secret.exists():
            _write_private(secret, secrets.token_urlsafe(48))
            created.append(str(secret))
        config = path / CONFIG_FILE
        if not config.exists():
            config.write_text(example_config())
            created.append(str(config))
    return created


def read_secret_key(path: Path) -> str:
    return (path / SECRET_FILE).read_text().strip()

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
from uauth.core.settings import ConfigError
from uauth.storage.filemodes import create_private_file
from uauth.storage.filemodes import make_private_dir
from uauth.storage.filemodes import write_private_file

SECRET_FILE = "secret_key"
#: Where uauth before 0.2 kept the pairwise salt; it now lives in storage
#: (:func:`uauth.core.claims.shared_salt`), which imports this file once if it exists.
SALT_FILE = "pairwise_salt"
CONFIG_FILE = "config.py"
KEYS_DIR = "keys"
#: Where the admin CLI appends its audit events (``uauth user add`` …), one JSON line each.
AUDIT_LOG = "audit.log"


def resolve_instance_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit``, else ``$UAUTH_INSTANCE``, else ``./instance``; always absolute."""
    chosen = explicit or os.environ.get("UAUTH_INSTANCE") or "instance"
    return Path(chosen).expanduser().resolve()


def example_config() -> str:
    """The commented config written on first run (and committed as docs/config.example.py)."""
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
    create_private_file(path / ".init.lock")
    with open(path / ".init.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class MissingInstance(ConfigError):
    """An admin command pointed at a folder that ``uauth init`` never initialised."""


def is_initialised(path: Path) -> bool:
    """True once ``uauth init`` (or a first ``serve``) has written the instance's secret key."""
    return (path / SECRET_FILE).is_file()


def require_instance(path: Path) -> None:
    """Admin commands never create a provider: run from the wrong folder, they would add users
    where the server never looks."""
    if not is_initialised(path):
        raise MissingInstance(f"no instance at {path}; run `uauth init` or pass `--instance` "
                              "(or set UAUTH_INSTANCE)")


def unwritable(path: Path, exc: OSError) -> ConfigError:
    """One line naming the path and the fix, instead of a traceback."""
    reason = exc.strerror or type(exc).__name__
    return ConfigError(f"cannot write {exc.filename or path}: {reason}; make the instance folder "
                       "writable by the user uauth runs as (chown/chmod), or pass `--instance` "
                       "with a folder it may write")


def init_instance(path: Path) -> list[str]:
    """Create what is missing in the instance folder; returns what was created.

    :raises ConfigError: the folder or a file in it cannot be written (one line, with the fix).
    """
    try:
        return _init_instance(path)
    except OSError as exc:
        raise unwritable(path, exc) from None


def _init_instance(path: Path) -> list[str]:
    created: list[str] = []
    # Workers starting together on a fresh instance race here: each mkdir tolerates the other.
    if make_private_dir(path):
        created.append(str(path))
    with _locked(path):
        secret = path / SECRET_FILE
        if not secret.exists():
            write_private_file(secret, secrets.token_urlsafe(48))
            created.append(str(secret))
        config = path / CONFIG_FILE
        if not config.exists():
            write_private_file(config, example_config())
            created.append(str(config))
    return created


def read_secret_key(path: Path) -> str:
    return (path / SECRET_FILE).read_text().strip()

"""The WSGI entry of an installed uauth: ``gunicorn 'uauth.wsgi:app'``.

The instance folder is ``$UAUTH_INSTANCE`` (else ``./instance``), as for the CLI, and uauth's
logging is configured as under ``uauth serve``. Under gunicorn, a ``UAUTH_ISSUER`` left unset
follows a single loopback ``--bind``; any other bind refuses to start with the line to set
(:mod:`uauth.bind`). The ``wsgi.py`` of a checkout imports this module.

For metrics under plain gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory and add
the ``child_exit`` hook shown in docs/deploy.md; ``uauth serve`` does both itself.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from flask import Flask

from .app import create_app
from .bind import issuer_from_config_file
from .bind import loopback_origin
from .bind import no_issuer
from .instance import CONFIG_FILE
from .instance import resolve_instance_path
from .logs import configure_logging


def gunicorn_binds() -> list[str] | None:
    """The addresses gunicorn listens on, when gunicorn is loading this module (its argv,
    ``GUNICORN_CMD_ARGS`` and config file already merged); None under anything else."""
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:  # pragma: no cover - gunicorn is a dependency
        return None
    frame: Any = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, BaseApplication) and candidate.cfg is not None:
            return [str(b) for b in candidate.cfg.bind]
        frame = frame.f_back
    return None


def build(binds: list[str] | None) -> Flask:
    """The provider for an instance served on ``binds`` (None: not known, e.g. ``flask``)."""
    overrides: dict[str, Any] = {}
    config_file = resolve_instance_path() / CONFIG_FILE
    if binds is not None and not os.environ.get("UAUTH_ISSUER") and not (
            config_file.exists() and issuer_from_config_file(config_file)):
        origin = loopback_origin(binds)
        if origin is None:
            raise no_issuer(binds, config_file)
        overrides["UAUTH_ISSUER"] = origin
    built = create_app(overrides)
    configure_logging(built.config["UAUTH_LOG_FORMAT"], built.config["UAUTH_LOG_LEVEL"])
    return built


def _load() -> Flask:
    from .config import ConfigError

    try:
        return build(gunicorn_binds())
    except ConfigError as exc:
        try:  # gunicorn prints an AppImportError as one line and stops, no traceback
            from gunicorn.errors import AppImportError
        except ImportError:  # pragma: no cover
            raise exc from None
        raise AppImportError(f"error: {exc}") from None


app = _load()

"""The WSGI app of an installed uauth, built for :mod:`uauth.wsgi` (``gunicorn 'uauth.wsgi:app'``).

The instance folder is ``$UAUTH_INSTANCE`` (else ``./instance``), as for the CLI, and uauth's
logging is configured as under ``uauth serve``. Under gunicorn, a ``UAUTH_ISSUER`` left unset
follows a single loopback ``--bind``; any other bind refuses to start with the line to set
(:mod:`uauth.ops.bind`). The ``wsgi.py`` of a checkout imports :mod:`uauth.wsgi`.
Ops never imports the wiring: :mod:`uauth.wsgi` passes ``create_app`` as the factory.

For metrics under plain gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory and add
the ``child_exit`` hook shown in docs/operations.md; ``uauth serve`` does both itself.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.errors import AppImportError

from uauth.core.settings import ConfigError
from uauth.ops.bind import issuer_from_config_file
from uauth.ops.bind import loopback_origin
from uauth.ops.bind import no_issuer
from uauth.ops.context import AppFactory
from uauth.ops.instance import CONFIG_FILE
from uauth.ops.instance import resolve_instance_path
from uauth.ops.logs import configure_logging
from uauth.ops.malloc import return_large_blocks


def gunicorn_binds() -> list[str] | None:
    """The addresses gunicorn listens on, when gunicorn is loading this module (its argv,
    ``GUNICORN_CMD_ARGS`` and config file already merged); None under anything else."""
    frame: Any = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, BaseApplication) and candidate.cfg is not None:
            return [str(b) for b in candidate.cfg.bind]
        frame = frame.f_back
    return None


def build(factory: AppFactory, binds: list[str] | None) -> Flask:
    """The provider for an instance served on ``binds`` (None: not known, e.g. ``flask``)."""
    overrides: dict[str, Any] = {}
    config_file = resolve_instance_path() / CONFIG_FILE
    if binds is not None and not os.environ.get("UAUTH_ISSUER") and not (
            config_file.exists() and issuer_from_config_file(config_file)):
        origin = loopback_origin(binds)
        if origin is None:
            raise no_issuer(binds, config_file)
        overrides["UAUTH_ISSUER"] = origin
    built = factory(overrides)
    configure_logging(built.config["UAUTH_LOG_FORMAT"], built.config["UAUTH_LOG_LEVEL"])
    return built


def load(factory: AppFactory) -> Flask:
    """The app gunicorn (or any WSGI server) serves; a bad config is one line, no traceback."""
    return_large_blocks()
    try:
        return build(factory, gunicorn_binds())
    except ConfigError as exc:
        # gunicorn prints an AppImportError as one line and stops, no traceback
        raise AppImportError(f"error: {exc}") from None


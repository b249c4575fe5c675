"""uauth with its records in its worker's memory, served by ``uauth serve`` for the bench.

The reference provider and the stack's floor keep their tokens in the process's memory; uauth
writes them to storage that other workers and a restart see. To measure what that durable
storage costs served, ``make bench BENCH_ARGS="--uauth-in-memory"`` also serves uauth with
``memory://`` storage: this module is the ``uauth`` command with an app factory that provisions
the bench's clients and user into each app it builds (a memory store starts empty in every
process, so ``uauth client add`` from another process cannot reach it) and writes their ids to
``$BENCH_MEMORY_CLIENTS``. The worker builds its app last, so the file names the worker's
clients once it answers. Never serve it for anything else: a restart forgets every grant.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flask import Flask

from uauth.app import create_app
from uauth.core.opaque import JWT
from uauth.ops.cli import run_cli

from .provision import provision
from .servers import CLIENTS_FILE


def provisioned_app(instance_path: str | os.PathLike[str] | None = None) -> Flask:
    """uauth's standalone app, with the bench's clients and user in its memory store."""
    app = create_app(instance_path=instance_path)
    spa, service = provision(app, os.environ.get("UAUTH_ACCESS_TOKEN_FORMAT", JWT))
    Path(os.environ[CLIENTS_FILE]).write_text(json.dumps({"spa": spa, "service": service}))
    return app


if __name__ == "__main__":
    run_cli(provisioned_app)

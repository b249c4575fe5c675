"""Entry point for ``gunicorn wsgi:app`` (the standalone provider).

For metrics under plain gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory and add
the ``child_exit`` hook shown in docs/deploy.md; ``uauth serve`` does both itself.
"""

from __future__ import annotations

from uauth import create_app
from uauth.ops.logs import configure_logging

app = create_app()
configure_logging(app.config["UAUTH_LOG_FORMAT"], app.config["UAUTH_LOG_LEVEL"])

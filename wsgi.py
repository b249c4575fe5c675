"""Entry point for ``gunicorn wsgi:app`` from a checkout; an installed uauth is served with
``gunicorn 'uauth.wsgi:app'`` (the same app: :mod:`uauth.wsgi`)."""

from __future__ import annotations

from uauth.wsgi import app

__all__ = ["app"]

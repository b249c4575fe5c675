"""Entry point for ``gunicorn wsgi:app`` (the standalone provider)."""

from __future__ import annotations

from uauth import create_app

app = create_app()

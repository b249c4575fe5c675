"""Blueprints. All endpoints are namespaced under ``uauth.``, e.g. ``url_for("uauth.ui.login")``."""

from __future__ import annotations

from flask import Blueprint
from flask import Flask

from . import discovery
from . import health

bp = Blueprint("uauth", __name__)
bp.register_blueprint(discovery.bp)
bp.register_blueprint(health.bp)


def register_blueprints(app: Flask, url_prefix: str) -> None:
    app.register_blueprint(bp, url_prefix=url_prefix or None)

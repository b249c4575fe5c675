"""The blueprint of the pages a person sees: ``url_for("uauth.ui.login")`` and friends."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("ui", __name__)

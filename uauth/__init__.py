"""uauth: a lightweight, standards-correct OpenID Connect provider on Flask."""

from __future__ import annotations

from .app import create_app
from .extension import UAuth
from .extension import get_state

__all__ = ["UAuth", "create_app", "get_state"]

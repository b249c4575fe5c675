"""uauth: a lightweight, standards-correct OpenID Connect provider on Flask."""

from __future__ import annotations

from .app import create_app
from .extension import UAuth
from .extension import get_state
from .resource import ResourceProtector
from .resource import current_token

__all__ = ["ResourceProtector", "UAuth", "create_app", "current_token", "get_state"]

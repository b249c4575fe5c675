"""uauth: a lightweight, standards-correct OpenID Connect provider on Flask."""

from __future__ import annotations

from uauth.web.resource import ResourceProtector
from uauth.web.resource import current_token

from .app import create_app
from .extension import UAuth
from .extension import get_state

__all__ = ["ResourceProtector", "UAuth", "create_app", "current_token", "get_state"]

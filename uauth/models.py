"""The models an embedding app sees (``uauth.models.User``); defined in :mod:`uauth.core.models`."""

from __future__ import annotations

from uauth.core.models import Client
from uauth.core.models import LoginSession
from uauth.core.models import User

__all__ = ["Client", "LoginSession", "User"]

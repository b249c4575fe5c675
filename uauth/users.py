"""The user-directory protocols an embedding app implements; defined in :mod:`uauth.core.users`."""

from __future__ import annotations

from uauth.core.users import EditableDirectory
from uauth.core.users import StoreUsers
from uauth.core.users import UserDirectory
from uauth.core.users import UserExists

__all__ = ["EditableDirectory", "StoreUsers", "UserDirectory", "UserExists"]

"""Bearer-token protection for resource servers and host views; defined in
:mod:`uauth.web.resource`."""

from __future__ import annotations

from uauth.web.resource import AccessToken
from uauth.web.resource import IssuerKeys
from uauth.web.resource import KeysUnavailable
from uauth.web.resource import ResourceProtector
from uauth.web.resource import TokenValidator
from uauth.web.resource import current_token

__all__ = ["AccessToken", "IssuerKeys", "KeysUnavailable", "ResourceProtector", "TokenValidator",
           "current_token"]

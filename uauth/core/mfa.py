"""When a second factor is asked for, and what a login says about itself (``acr``/``amr``).

No Flask: the authorization step (:mod:`uauth.views.mfa`) calls :func:`asked_for` with what it
parsed. ``UAUTH_MFA``: ``off`` never asks; ``optional`` asks whoever has a second factor, and
clients, ``acr_values`` and an essential ``acr`` claim can ask anyone (they then enrol one);
``required`` asks everyone.

Two authentication context classes are offered (OIDC Core §2 ``acr``): :data:`ACR_MFA` when the
session's ``amr`` (RFC 8176) holds ``mfa``, :data:`ACR_SFA` for one factor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ACR_SFA = "urn:uauth:acr:sfa"
ACR_MFA = "urn:uauth:acr:mfa"
ACR_VALUES = [ACR_SFA, ACR_MFA]


def acr_for(amr: Iterable[str]) -> str | None:
    """The context class a login with these methods meets; None when nothing is known of it
    (a host app's own login page, before any second factor)."""
    methods = set(amr)
    if "mfa" in methods:
        return ACR_MFA
    return ACR_SFA if methods else None


def elevated(amr: Iterable[str], methods: Iterable[str]) -> list[str]:
    """A session's ``amr`` after a second factor: the first factor's methods, the second's,
    and ``mfa`` (RFC 8176 §2), each once."""
    return list(dict.fromkeys([*amr, *methods, "mfa"]))


@dataclass(frozen=True)
class AcrRequest:
    """What an authorization request asks of the authentication context."""

    values: tuple[str, ...] = ()
    essential: bool = False

    @property
    def wants_mfa(self) -> bool:
        # Our classes are ordered: asking for either, the person gets the strongest they can.
        return ACR_MFA in self.values and ACR_SFA not in self.values


def requested_acr(params: Any) -> AcrRequest:
    """``acr_values`` (voluntary, OIDC Core §3.1.2.1) and the ``claims`` parameter's
    ``id_token.acr`` (essential or not, §5.5.1.1). The claims parameter was validated as JSON
    by :mod:`uauth.authrequest` already; anything unreadable here counts as absent."""
    values = list((params.get("acr_values") or "").split())
    essential = False
    try:
        claims = json.loads(params.get("claims") or "null")
    except ValueError:
        claims = None
    spec = claims.get("id_token", {}) if isinstance(claims, dict) else None
    acr = spec.get("acr") if isinstance(spec, dict) else None
    if isinstance(acr, dict):
        essential = acr.get("essential") is True
        if isinstance(acr.get("value"), str):
            values.append(acr["value"])
        if isinstance(acr.get("values"), list):
            values.extend(v for v in acr["values"] if isinstance(v, str))
    return AcrRequest(tuple(dict.fromkeys(values)), essential)


def asked_for(policy: str, *, has_factor: bool, client_requires: bool, acr: AcrRequest
              ) -> bool:
    """Whether this sign-in must include a second factor."""
    if policy == "off":
        return False
    return policy == "required" or has_factor or client_requires or acr.wants_mfa

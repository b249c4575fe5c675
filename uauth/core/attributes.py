"""Profile attributes: what a user's profile may hold, how each is asked for and checked.

The catalogue is the standard OpenID Connect claims uauth asks people for (name, email, phone,
birthdate, …) plus the operator's own (``UAUTH_ATTRIBUTES``). The same definitions drive the
required-attributes step of ``/authorize`` and the profile form on ``/account`` (the forms are
web code: :mod:`uauth.web.attribute_forms`); WTForms does the validation, and values are stored
in ``User.profile`` under the attribute's name (the claim name).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

TYPES = ("text", "email", "phone", "date", "choice")
#: Form fields of attribute forms are named ``attr-<name>``, never clashing with OAuth parameters.
FORM_PREFIX = "attr"
#: Claims that describe the token or are derived, never a profile attribute a person fills in.
RESERVED = frozenset({
    "sub", "iss", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", "acr", "amr", "azp",
    "at_hash", "c_hash", "sid", "scope", "client_id", "cnf", "updated_at", "preferred_username",
    "email_verified", "phone_number_verified", "password", "username", "id", "csrf_token",
})
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: E.164 with readable separators: "+44 20 7946 0958", "+1 (425) 555-1212" (OIDC Core §5.1).
_LOCALE = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"


@dataclass(frozen=True)
class Attribute:
    """One profile attribute: how it is labelled, entered and validated."""

    name: str
    label: str
    type: str = "text"
    #: ``(value, label)`` pairs for ``choice``.
    choices: tuple[tuple[str, str], ...] = ()
    #: A regular expression a ``text`` value must match in full.
    pattern: str | None = None
    max_length: int = 200
    #: Shown under the field, and in the error when ``pattern`` does not match.
    help: str | None = None
    #: False: only the operator sets it (``uauth user set``); people see it read-only.
    editable: bool = True
    #: Dates only: must lie in the past (birthdate).
    past: bool = False
    #: Text only: a multi-line box (postal address).
    multiline: bool = False


@lru_cache(maxsize=1)
def _standard() -> Mapping[str, Attribute]:
    """The standard claims uauth asks people for (built on first use: it lists time zones)."""
    zones = sorted(zoneinfo.available_timezones())
    zone = (Attribute("zoneinfo", "Time zone", "choice", tuple((z, z) for z in zones))
            if zones else Attribute("zoneinfo", "Time zone", pattern=r"^[A-Za-z_+\-/0-9]+$",
                                    help="For example Europe/Paris"))
    return {a.name: a for a in (
        Attribute("name", "Full name"),
        Attribute("given_name", "First name", max_length=100),
        Attribute("family_name", "Last name", max_length=100),
        Attribute("nickname", "Nickname", max_length=100),
        Attribute("email", "Email address", "email", max_length=254),
        Attribute("phone_number", "Phone number", "phone", max_length=32,
                  help="In international format, for example +44 20 7946 0958"),
        Attribute("birthdate", "Date of birth", "date", past=True),
        Attribute("locale", "Language", pattern=_LOCALE, max_length=35,
                  help="A language tag, for example en-GB or fr"),
        zone,
        Attribute("address", "Postal address", max_length=500, multiline=True),
    )}


class DefinitionError(ValueError):
    """An attribute definition in the config is unusable; the message says which and why."""


def parse_definition(raw: Any) -> Attribute:
    """Validate one ``UAUTH_ATTRIBUTES`` entry (a mapping) into an :class:`Attribute`."""
    if isinstance(raw, Attribute):
        return raw
    if not isinstance(raw, Mapping):
        raise DefinitionError(f"each attribute is a mapping with at least a name, got {raw!r}")
    unknown = set(raw) - {"name", "label", "type", "choices", "pattern", "max_length", "help",
                          "editable"}
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise DefinitionError(f"attribute name {name!r} must be lower-case letters, digits and _")
    if unknown:
        raise DefinitionError(f"attribute {name!r} has unknown keys: {', '.join(sorted(unknown))}")
    if name in RESERVED:
        raise DefinitionError(f"attribute name {name!r} is reserved")
    kind = raw.get("type", "text")
    if kind not in TYPES:
        raise DefinitionError(
            f"attribute {name!r} has type {kind!r}; use one of {', '.join(TYPES)}")
    choices = _choices(name, raw.get("choices"), kind)
    pattern = raw.get("pattern")
    if pattern is not None:
        if kind != "text" or not isinstance(pattern, str):
            raise DefinitionError(f"attribute {name!r}: a pattern is a string, for text only")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise DefinitionError(f"attribute {name!r} has a bad pattern: {exc}") from None
    max_length = raw.get("max_length", 200)
    if (isinstance(max_length, bool) or not isinstance(max_length, int)
            or not 0 < max_length <= 10000):
        raise DefinitionError(f"attribute {name!r}: max_length is a number from 1 to 10000")
    standard = _standard().get(name)
    return Attribute(
        name=name,
        label=str(raw.get("label") or (standard.label if standard else
                                       name.replace("_", " ").capitalize())),
        type=kind,
        choices=choices,
        pattern=pattern,
        max_length=max_length,
        help=str(raw["help"]) if raw.get("help") else None,
        editable=bool(raw.get("editable", True)),
        past=name == "birthdate",
        multiline=name == "address",
    )


def _choices(name: str, raw: Any, kind: str) -> tuple[tuple[str, str], ...]:
    if kind != "choice":
        if raw:
            raise DefinitionError(f"attribute {name!r}: choices are for type 'choice' only")
        return ()
    if not isinstance(raw, (list, tuple)) or not raw:
        raise DefinitionError(f"attribute {name!r} of type 'choice' needs a list of choices")
    pairs = []
    for item in raw:
        if isinstance(item, str):
            pairs.append((item, item))
        elif (isinstance(item, (list, tuple)) and len(item) == 2
              and all(isinstance(part, str) for part in item)):
            pairs.append((item[0], item[1]))
        else:
            raise DefinitionError(
                f"attribute {name!r}: each choice is a string or a [value, label] pair")
    return tuple(pairs)


@lru_cache(maxsize=16)
def catalogue(custom: tuple[Attribute, ...] = ()) -> Mapping[str, Attribute]:
    """Every attribute uauth knows: the standard ones, then the operator's (which may redefine
    a standard one). Cached: the input is the validated, immutable ``UAUTH_ATTRIBUTES``."""
    known = dict(_standard())
    known.update((a.name, a) for a in custom)
    return known


def is_present(profile: Mapping[str, Any], name: str) -> bool:
    value = profile.get(name)
    if isinstance(value, Mapping):  # address: an object (OIDC Core §5.1.1)
        return any(str(v).strip() for v in value.values() if v is not None)
    if isinstance(value, (list, tuple)):
        return bool(value)
    return value is not None and str(value).strip() != ""


def missing(profile: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    """The required attribute names the profile has no value for, in order, once each."""
    return [n for n in dict.fromkeys(names) if not is_present(profile, n)]


def display(profile: Mapping[str, Any], attribute: Attribute) -> str:
    """A value as a person reads it (lists joined, address formatted, choices by label)."""
    value = profile.get(attribute.name)
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return str(value.get("formatted") or ", ".join(str(v) for v in value.values() if v))
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return dict(attribute.choices).get(str(value), str(value))

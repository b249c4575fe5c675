"""What our endpoints accept: bounded, well-formed text, before any view or Authlib sees it.

Every request to a uauth endpoint is checked once, up front, so no view can meet input that makes
it fail: a body over ``UAUTH_MAX_BODY_BYTES`` (werkzeug refuses it unread, 413), more than
:data:`MAX_PARAMS` parameters, a value over ``UAUTH_MAX_PARAM_LENGTH`` characters, a NUL or
other C0 control character (tab, CR and LF aside), bytes that are not UTF-8, a protocol
parameter (``response_type``, ``scope``, …) outside its ASCII grammar, and, at the back
channel, a parameter sent twice (RFC 6749 §3.1, §3.2) or a malformed ``Authorization: Basic``
header. Each is ``invalid_request`` (``invalid_client`` for Basic): JSON on the back channel, a
400 page on pages. The limits apply to uauth's blueprints only, never to a host app's views.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from flask import Request
from werkzeug.datastructures import MultiDict

#: More parameters than any OAuth or OpenID request has.
MAX_PARAMS = 100
#: Back-channel parameters that may repeat: RFC 8707 resource indicators (and ``audience``).
REPEATABLE = frozenset({"resource", "audience"})
#: Parameters whose grammar is printable ASCII without ``"`` or ``\\`` (RFC 6749 Appendix A,
#: NQSCHAR; RFC 7636 §4.1-4.2). Authlib echoes some of them into error descriptions, which
#: must be such text, so anything else must never reach it.
NQSCHAR_PARAMS = frozenset({"response_type", "grant_type", "scope", "response_mode",
                            "token_type_hint", "code_challenge_method", "code_challenge",
                            "code_verifier"})
_NQSCHAR = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
#: C0 controls but tab, LF and CR (which a ``claims`` JSON or an address may hold), DEL,
#: lone surrogates (from JSON ``\ud800``), and U+FFFD, which stands for bytes that were not UTF-8.
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffd]")


class BadInput(Exception):
    """The request cannot be read; ``str()`` is a public description (ASCII, no quotes)."""

    error = "invalid_request"
    status = 400

    def __init__(self, description: str, *, param: str | None = None) -> None:
        super().__init__(description)
        #: The parameter at fault, when one is.
        self.param = param


class BadClientAuth(BadInput):
    """A malformed ``Authorization: Basic`` header (RFC 6749 §2.3.1)."""

    error = "invalid_client"
    status = 401


def check_text(name: str, value: str, max_length: int) -> None:
    if len(value) > max_length:
        raise BadInput(f"The parameter {_safe(name)} is too long.", param=name)
    if _BAD_TEXT.search(value) or _BAD_TEXT.search(name):
        raise BadInput(f"The parameter {_safe(name)} holds characters that are not allowed "
                       "(control characters, or bytes that are not UTF-8).", param=name)


def check_params(params: Iterable[tuple[str, str]], max_length: int, *, unique: bool) -> None:
    """Bounds, characters and (``unique``) repetitions of a request's parameters."""
    seen: set[str] = set()
    for n, (name, value) in enumerate(params):
        if n >= MAX_PARAMS:
            raise BadInput("The request has too many parameters.")
        check_text(name, value, max_length)
        if name in NQSCHAR_PARAMS and not _NQSCHAR.fullmatch(value):
            raise BadInput(f"The parameter {name} must be printable ASCII without quotes or "
                           "backslashes.", param=name)
        if unique and name in seen and name not in REPEATABLE:
            raise BadInput(f"The parameter {_safe(name)} is repeated.")
        seen.add(name)


def check_basic_auth(req: Request) -> None:
    """Authlib decodes Basic credentials assuming valid base64 of UTF-8, and a header with a
    space as a scheme and a value; anything else is ours to refuse, as ``invalid_client`` (the
    client failed to authenticate). Split as Authlib splits it, so it reads what we checked."""
    header = req.headers.get("Authorization", "")
    if " " not in header:
        return  # Authlib reads no credentials from it
    parts = header.split(None, 1)
    if len(parts) < 2:  # blank, or a scheme alone ("Bearer "): Authlib would fail on it
        raise BadClientAuth("The authorization header is malformed.")
    scheme, token = parts
    if scheme.lower() != "basic":
        return
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise BadClientAuth("The Basic authorization header is malformed.") from None
    if ":" not in decoded or _BAD_TEXT.search(decoded):
        raise BadClientAuth("The Basic authorization header is malformed.")


def check_request(req: Request, max_length: int, *, unique: bool, basic: bool) -> None:
    """Everything a uauth endpoint reads from the request, checked before the view runs.

    :raises BadInput: with the public description.
    """
    if req.query_string:
        check_params(req.args.items(multi=True), max_length, unique=unique)
    if req.method == "POST" and req.mimetype in (
            "application/x-www-form-urlencoded", "multipart/form-data"):
        form: MultiDict[str, str] = req.form
        check_params(form.items(multi=True), max_length, unique=unique)
    if basic:
        check_basic_auth(req)


def _safe(name: str) -> str:
    """A parameter name fit for an OAuth error description (ASCII, no quote or backslash)."""
    cleaned = "".join(ch for ch in name[:40] if 0x20 <= ord(ch) < 0x7F and ch not in "\"\\")
    return cleaned or "(unnamed)"

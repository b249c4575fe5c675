"""JSON parsing with a bound on nesting depth, for every document an outsider controls.

Python's ``json`` module recurses once per nesting level, so a body nested a few thousand levels
deep raises ``RecursionError`` (a 500 and a traceback) instead of a clean ``ValueError``. The
check here scans the text once (strings skipped) before ``json.loads`` ever sees it.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Deepest nesting any document uauth reads needs (a ``claims`` request is three levels).
MAX_DEPTH = 32

_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class TooDeep(ValueError):
    """The document nests arrays or objects deeper than allowed."""


def check_depth(text: str | bytes, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`TooDeep` if ``text`` nests more than ``max_depth`` levels."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8", "replace")
    if text.count("[") + text.count("{") <= max_depth:
        return  # cannot nest deeper than it has brackets
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > max_depth:
                raise TooDeep(f"JSON nested deeper than {max_depth} levels")
        elif token in ("]", "}"):
            depth -= 1


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that raises ``ValueError`` (never ``RecursionError``) on deep nesting."""
    check_depth(text, max_depth)
    return json.loads(text)

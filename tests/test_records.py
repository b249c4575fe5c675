"""core/records.py is the one map of what storage holds: every kind any module stores is there."""

from __future__ import annotations

import ast
from pathlib import Path

from uauth.core import records

PACKAGE = Path(__file__).parent.parent / "uauth"
STORE_CALLS = {"save", "add", "find", "find_many", "consume", "incr", "delete", "scan"}


def stored_kinds() -> set[str]:
    """The first argument of every Store call in the package, by constant name."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if "storage" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in STORE_CALLS and "store" in ast.unparse(node.func.value)
                    and node.args and isinstance(node.args[0], ast.Name)
                    and node.args[0].id.isupper()):
                found.add(node.args[0].id)
    return found


def test_every_stored_kind_is_listed_with_its_key_and_lifetime() -> None:
    listed = {kind.name for kind in records.RECORDS}
    used = stored_kinds()
    assert used, "the scan found the store calls"
    for name in used:
        assert getattr(records, name, None) in listed, f"{name} is stored but not in RECORDS"
    assert all(kind.key and kind.lifetime and kind.module for kind in records.RECORDS)
    assert len(listed) == len(records.RECORDS), "each kind once"

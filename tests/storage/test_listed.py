"""Listed records kept by their stored text: a caller must never see another caller's changes,
and the kept records must stay bounded."""

from __future__ import annotations

import json

from uauth.storage.listed import KEPT_LENGTH
from uauth.storage.listed import ListedRecords


def test_the_same_text_decodes_to_equal_records_each_callers_own() -> None:
    listed = ListedRecords()
    text = json.dumps({"client_id": "c", "offline": True, "started": 1.5, "sid": None, "n": 3})
    first = listed.decode(text)
    assert first == {"client_id": "c", "offline": True, "started": 1.5, "sid": None, "n": 3}
    assert len(listed) == 1, "a plain record is kept"
    first["client_id"] = "changed"
    first["added"] = 1
    second = listed.decode(text)
    assert second == {"client_id": "c", "offline": True, "started": 1.5, "sid": None, "n": 3}
    assert second is not listed.decode(text)
    assert listed.decode(text.encode()) == second, "stored bytes decode the same"


def test_a_record_with_nested_values_is_decoded_afresh_each_time() -> None:
    listed = ListedRecords()
    text = json.dumps({"client_id": "c", "scopes": ["openid"], "claims": {"a": 1}})
    first = listed.decode(text)
    first["scopes"].append("email")
    first["claims"]["a"] = 2
    assert listed.decode(text) == {"client_id": "c", "scopes": ["openid"], "claims": {"a": 1}}
    assert len(listed) == 0


def test_a_long_record_is_not_kept() -> None:
    listed = ListedRecords()
    text = json.dumps({"blob": "x" * KEPT_LENGTH})
    assert listed.decode(text) == {"blob": "x" * KEPT_LENGTH}
    assert len(listed) == 0


def test_the_kept_records_are_bounded() -> None:
    listed = ListedRecords(kept=3)
    for n in range(10):
        assert listed.decode(json.dumps({"n": n})) == {"n": n}
        assert len(listed) <= 3
    assert listed.decode(json.dumps({"n": 9})) == {"n": 9}

"""Listed records kept by their stored text: a caller must never see another caller's changes,
and the kept records must stay bounded."""

from __future__ import annotations

import json
import secrets

import pytest

from uauth.storage import Store
from uauth.storage.listed import KEPT_LENGTH
from uauth.storage.listed import ListedRecords
from uauth.storage.memory import MemoryStore


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


def test_a_listing_read_again_decodes_only_what_changed(store: Store,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the stores with stored text (all but memory) save by keeping listed records: the
    grant cap's next listing of the same notes decodes only the one that changed. The kept
    records are the process's, so each run's records are its own (``run``)."""
    run = secrets.token_hex(8)
    for n in range(3):
        store.save("app_grant", f"u:c:{n}", {"client_id": "c", "n": n, "run": run}, ttl=3600,
                   grant_id="apps-of:decoded-once")
    store.grant_records("apps-of:decoded-once")
    decoded: list[object] = []
    real = json.loads

    def counted(text: str | bytes) -> object:
        decoded.append(text)
        return real(text)

    monkeypatch.setattr(json, "loads", counted)
    store.save("app_grant", "u:c:1", {"client_id": "c", "n": 10, "run": run}, ttl=3600,
               grant_id="apps-of:decoded-once")
    assert sorted(r["n"] for _, _, r in store.grant_records("apps-of:decoded-once")) == [0, 2, 10]
    if isinstance(store, MemoryStore):
        assert decoded == [], "the memory store keeps records, not text"
    else:
        assert len(decoded) == 1, "only the changed record is decoded again"

"""``Store.dump``: every live record with its expiry, grant and consumed count, per backend
(what ``uauth migrate`` copies)."""

from __future__ import annotations

from tests.conftest import FakeClock
from uauth.storage import Entry
from uauth.storage import Store


def test_dump_yields_live_records_with_their_bookkeeping(store: Store, clock: FakeClock) -> None:
    now = clock()
    store.save("client", "c1", {"name": "App"}, ttl=None)
    store.save("consent", "u1:c1", {"scopes": ["openid"]}, ttl=600)
    store.save("refresh_token", "d1", {"n": 1}, ttl=300, grant_id="g1")
    store.save("refresh_token", "d2", {"n": 2}, ttl=300, grant_id="g1")
    store.consume("refresh_token", "d2")
    store.save("revoked", "jti:abc", {"exp": 1}, ttl=5)
    clock.advance(10)
    entries = sorted(store.dump(), key=lambda e: (e.kind, e.key))
    assert entries == [
        Entry("client", "c1", {"name": "App"}, None, None, 0),
        Entry("consent", "u1:c1", {"scopes": ["openid"]}, now + 600, None, 0),
        Entry("refresh_token", "d1", {"n": 1}, now + 300, "g1", 0),
        Entry("refresh_token", "d2", {"n": 2}, now + 300, "g1", 1),
    ], "keys may hold ':'; expired records are left out"

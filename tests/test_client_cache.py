"""The per-worker client cache: no storage read per request, removals reach every worker."""

from __future__ import annotations

from uauth.core.clients import ClientCache
from uauth.core.clients import Registration
from uauth.core.clients import origin_allowed
from uauth.core.clients import register_client
from uauth.core.clients import remove_client
from uauth.core.records import CLIENT
from uauth.core.records import ORIGIN
from uauth.storage import Store


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_removed_client_stops_working_within_the_ttl(store: Store) -> None:
    ticks = Ticks()
    cache = ClientCache(store, ttl=5, clock=ticks)
    client, _ = register_client(store, Registration(name="App", redirect_uris=["https://app.example/cb"]))
    assert cache.get(client.client_id) == client
    remove_client(store, client.client_id)  # e.g. the CLI, talking to storage, not this worker
    assert cache.get(client.client_id) == client, "cached within the ttl"
    ticks.now += 5
    assert cache.get(client.client_id) is None, "gone once the ttl has passed"


def test_cached_answers_only_what_the_worker_holds_without_reading_storage(
        store: Store) -> None:
    """What /authorize asks before the session is read (is the client first party?): never
    a storage read, nothing once the ttl has passed."""
    ticks = Ticks()
    cache = ClientCache(store, ttl=5, clock=ticks)
    client, _ = register_client(store, Registration(name="App", redirect_uris=["https://app.example/cb"]))
    assert cache.cached(client.client_id) is None, "not looked up yet: not read either"
    assert cache.get(client.client_id) == client
    remove_client(store, client.client_id)
    assert cache.cached(client.client_id) == client, "held within the ttl"
    ticks.now += 5
    assert cache.cached(client.client_id) is None, "not once the ttl has passed"


def test_new_clients_are_found_at_once_and_ttl_zero_never_caches(store: Store) -> None:
    cache = ClientCache(store, ttl=5, clock=Ticks())
    assert cache.get("not-yet") is None
    client, _ = register_client(store, Registration(name="App", redirect_uris=["https://app.example/cb"]))
    assert cache.get(client.client_id) == client, "a miss is never remembered"
    uncached = ClientCache(store, ttl=0)
    assert uncached.get(client.client_id) == client
    remove_client(store, client.client_id)
    assert uncached.get(client.client_id) is None
    assert cache.get("") is None and cache.get(None) is None


def test_clients_sharing_an_origin_each_keep_their_own_entry(store: Store) -> None:
    origin = "https://spa.example"
    first, _ = register_client(store, Registration(
        name="A", redirect_uris=["https://spa.example/cb"], allowed_origins=[origin]))
    second, _ = register_client(store, Registration(
        name="B", redirect_uris=["https://spa.example/cb"], allowed_origins=[origin]))
    assert origin_allowed(store, origin)
    remove_client(store, first.client_id)
    assert origin_allowed(store, origin), "the other client still lists it"
    remove_client(store, second.client_id)
    assert not origin_allowed(store, origin)


def test_an_origin_index_written_before_per_client_records_still_counts(store: Store) -> None:
    origin = "https://old.example"
    registered = [register_client(store, Registration(
        name=name, redirect_uris=[], grant_types=["client_credentials"]))[0] for name in "AB"]
    for client in registered:  # as stored then: the client lists the origin, and one index
        client.allowed_origins = [origin]
        store.save(CLIENT, client.client_id, client.to_record(), ttl=None)
    first, second = registered
    store.save(ORIGIN, origin, {"clients": sorted([first.client_id, second.client_id])}, ttl=None)
    assert origin_allowed(store, origin)
    remove_client(store, first.client_id)
    assert origin_allowed(store, origin) and store.find(ORIGIN, origin) is None
    remove_client(store, second.client_id)
    assert not origin_allowed(store, origin)

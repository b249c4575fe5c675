"""Fixtures of the storage tests beyond the contract's ``store`` (``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import unique_prefix
from uauth.core.records import CODE
from uauth.storage.redis import RedisStore


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisStore]:
    """A single-Redis store on a key prefix of its own; the codes it saved are deleted after."""
    made = RedisStore(redis_url, prefix=unique_prefix())
    yield made
    for key, _ in list(made.scan(CODE)):  # nothing left behind
        made.delete(CODE, key)
    made.close()

"""The read cache in front of storage, over the real SQLite backend, and
over PostgreSQL, whose reads wait for the network, so that a test can act
while a read is still running.

Writing to the SQLite backend behind the cache's back shows whether a read
was served from the cache (the old value) or from storage (the new one).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mssm.core.config import ConfigError, parse_config
from mssm.storage.base import StorageError
from mssm.storage.cache import MAX_VALUE_BYTES, CachedBackend
from mssm.storage.postgresql import PostgreSQLBackend
from mssm.storage.sqlite import SQLiteBackend
from tests.storage.postgresql_scratch import scratch_schema, storage_url

NO_TLS = {"listener": {"tls_disable": True}}


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    store = SQLiteBackend(str(tmp_path / "cache.db"))
    yield store
    await store.close()


@pytest.fixture
async def postgresql() -> AsyncIterator[PostgreSQLBackend]:
    """A backend whose reads wait for the network, so reads can overlap."""
    with scratch_schema() as schema:
        store = PostgreSQLBackend(storage_url(schema))
        await store.open()
        yield store
        await store.close()


async def test_read_is_served_from_the_cache(sqlite: SQLiteBackend) -> None:
    cache = CachedBackend(sqlite)
    await cache.put("k", b"one")
    await sqlite.put("k", b"behind")
    assert await cache.get("k") == b"one"


async def test_cache_keeps_misses(sqlite: SQLiteBackend) -> None:
    cache = CachedBackend(sqlite)
    assert await cache.get("k") is None
    await sqlite.put("k", b"behind")
    assert await cache.get("k") is None


async def test_write_through_the_cache_replaces_the_cached_value(
    sqlite: SQLiteBackend,
) -> None:
    cache = CachedBackend(sqlite)
    await cache.put("k", b"one")
    assert await cache.get("k") == b"one"
    await cache.put("k", b"two")
    assert await cache.get("k") == b"two"
    assert await sqlite.get("k") == b"two"


async def test_delete_is_seen_at_once(sqlite: SQLiteBackend) -> None:
    cache = CachedBackend(sqlite)
    await cache.put("k", b"one")
    await cache.delete("k")
    assert await cache.get("k") is None
    assert await sqlite.get("k") is None


async def test_delete_prefix_forgets_only_keys_under_it(sqlite: SQLiteBackend) -> None:
    cache = CachedBackend(sqlite)
    for key in ("a/1", "a/2", "ab", "b/1"):
        await cache.put(key, b"v")
    await cache.delete_prefix("a/")
    assert await cache.get("a/1") is None
    assert await cache.get("a/2") is None
    await sqlite.put("ab", b"behind")
    # "ab" is not under "a/": it stays cached.
    assert await cache.get("ab") == b"v"
    assert await cache.get("b/1") == b"v"


async def test_put_if_caches_only_a_write_that_happened(sqlite: SQLiteBackend) -> None:
    cache = CachedBackend(sqlite)
    await cache.put("k", b"one")
    assert not await cache.put_if("k", b"two", expected=b"wrong")
    assert await cache.get("k") == b"one"
    assert await cache.put_if("k", b"three", expected=b"one")
    await sqlite.put("k", b"behind")
    assert await cache.get("k") == b"three"


async def test_failed_write_leaves_no_cached_value(tmp_path: Path) -> None:
    sqlite = SQLiteBackend(str(tmp_path / "closed.db"))
    cache = CachedBackend(sqlite)
    await cache.put("k", b"one")
    await sqlite.close()
    with pytest.raises(StorageError):
        await cache.put("k", b"two")
    # The cached b"one" went with the failed write: the read goes to the
    # closed backend and fails instead of returning a stale value.
    with pytest.raises(StorageError):
        await cache.get("k")


async def test_concurrent_writes_leave_the_last_value(sqlite: SQLiteBackend) -> None:
    cache = CachedBackend(sqlite)
    await asyncio.gather(*(cache.put("k", str(n).encode()) for n in range(20)))
    stored = await sqlite.get("k")
    assert await cache.get("k") == stored


async def test_least_recently_used_entry_is_evicted(sqlite: SQLiteBackend) -> None:
    cache = CachedBackend(sqlite, max_entries=2)
    await cache.put("a", b"a1")
    await cache.put("b", b"b1")
    assert await cache.get("a") == b"a1"
    await cache.put("c", b"c1")
    await sqlite.put("a", b"a2")
    await sqlite.put("b", b"b2")
    # "b" was the least recently used when "c" came in.
    assert await cache.get("a") == b"a1"
    assert await cache.get("b") == b"b2"


async def test_byte_budget_evicts(sqlite: SQLiteBackend) -> None:
    cache = CachedBackend(sqlite, max_bytes=10)
    await cache.put("a", b"x" * 6)
    await cache.put("b", b"y" * 6)
    await sqlite.put("a", b"behind")
    assert await cache.get("a") == b"behind"


async def test_byte_budget_counts_keys_of_misses(sqlite: SQLiteBackend) -> None:
    # A miss caches no value, but its key can be as long as a request path,
    # so reads of many long missing paths must stay within the budget too.
    cache = CachedBackend(sqlite, max_bytes=1000)
    first, second = "a" * 600, "b" * 600
    assert await cache.get(first) is None
    assert await cache.get(second) is None
    await sqlite.put(first, b"behind")
    assert await cache.get(first) == b"behind"


async def test_large_value_is_not_cached(sqlite: SQLiteBackend) -> None:
    cache = CachedBackend(sqlite)
    await cache.put("big", b"x" * (MAX_VALUE_BYTES + 1))
    await sqlite.put("big", b"behind")
    assert await cache.get("big") == b"behind"


async def test_clear_drops_every_entry(sqlite: SQLiteBackend) -> None:
    cache = CachedBackend(sqlite)
    await cache.put("k", b"one")
    cache.clear()
    await sqlite.put("k", b"restored")
    assert await cache.get("k") == b"restored"


async def test_read_in_flight_at_clear_fills_nothing(
    postgresql: PostgreSQLBackend,
) -> None:
    # The core clears the cache at seal, and a read still running then must
    # not put its value back: storage may be restored before the unseal.
    cache = CachedBackend(postgresql)
    await postgresql.put("k", b"one")
    reading = asyncio.create_task(cache.get("k"))
    await asyncio.sleep(0)
    cache.clear()
    assert await reading == b"one"
    await postgresql.put("k", b"restored")
    assert await cache.get("k") == b"restored"


async def test_write_in_flight_at_clear_fills_nothing(
    postgresql: PostgreSQLBackend,
) -> None:
    cache = CachedBackend(postgresql)
    writing = asyncio.create_task(cache.put("k", b"one"))
    await asyncio.sleep(0)
    cache.clear()
    await writing
    await postgresql.put("k", b"restored")
    assert await cache.get("k") == b"restored"


def test_config_reads_cache_settings() -> None:
    config = parse_config({**NO_TLS, "disable_cache": True, "cache_size": 500})
    assert config.disable_cache is True
    assert config.cache_size == 500
    assert parse_config(NO_TLS).cache_size == 131072


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"cache_size": 0}, "cache_size must be a positive number of entries"),
        ({"cache_size": "10"}, "cache_size must be a positive number of entries"),
        ({"cache_size": True}, "cache_size must be a positive number of entries"),
        ({"disable_cache": "yes"}, "disable_cache must be true or false"),
    ],
)
def test_config_rejects_bad_cache_settings(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**NO_TLS, **raw})

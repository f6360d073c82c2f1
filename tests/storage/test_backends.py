"""One contract for every storage backend: the barrier relies on each of
these behaviours, whichever backend the operator configures."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mssm.storage.base import Backend, StorageError
from mssm.storage.inmem import InmemBackend
from mssm.storage.postgresql import PostgreSQLBackend
from mssm.storage.sqlite import SQLiteBackend
from tests.storage.postgresql_scratch import scratch_schema, storage_url


@pytest.fixture(params=["inmem", "sqlite", "postgresql"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Backend]:
    if request.param == "postgresql":
        with scratch_schema() as schema:
            store = PostgreSQLBackend(storage_url(schema))
            await store.open()
            yield store
            await store.close()
        return
    if request.param == "inmem":
        store: Backend = InmemBackend()
    else:
        store = SQLiteBackend(str(tmp_path / "contract.db"))
    yield store
    await store.close()


async def test_get_missing_key_is_none(backend: Backend) -> None:
    assert await backend.get("nothing/here") is None


async def test_put_then_get_returns_exact_bytes(backend: Backend) -> None:
    value = bytes(range(256))
    await backend.put("a/b", value)
    assert await backend.get("a/b") == value


async def test_put_overwrites(backend: Backend) -> None:
    await backend.put("k", b"one")
    await backend.put("k", b"two")
    assert await backend.get("k") == b"two"


async def test_delete_removes_key(backend: Backend) -> None:
    await backend.put("k", b"v")
    await backend.delete("k")
    assert await backend.get("k") is None


async def test_delete_missing_key_is_no_error(backend: Backend) -> None:
    await backend.delete("never/written")
    assert await backend.get("never/written") is None


async def test_list_gives_direct_children_and_folders(backend: Backend) -> None:
    for key in ("app/a", "app/b", "app/sub/c", "app/sub/d/e", "apple", "other/x"):
        await backend.put(key, b"v")
    assert await backend.list("app/") == ["a", "b", "sub/"]
    assert await backend.list("app/sub/") == ["c", "d/"]


async def test_list_of_root_prefix(backend: Backend) -> None:
    for key in ("app/a", "apple", "other/x"):
        await backend.put(key, b"v")
    assert await backend.list("") == ["app/", "apple", "other/"]


async def test_list_key_and_folder_of_same_name(backend: Backend) -> None:
    await backend.put("p/a", b"key")
    await backend.put("p/a/b", b"under")
    assert await backend.list("p/") == ["a", "a/"]


async def test_list_empty_prefix_is_empty(backend: Backend) -> None:
    await backend.put("x/y", b"v")
    assert await backend.list("nothing/") == []


async def test_keys_under_every_depth_only_inside_prefix(backend: Backend) -> None:
    for key in ("m/a", "m/b/c", "m/b/d/e", "mm/x", "l/m/a"):
        await backend.put(key, b"v")
    assert sorted(await backend.keys_under("m/")) == ["m/a", "m/b/c", "m/b/d/e"]


async def test_put_if_absent_creates(backend: Backend) -> None:
    assert await backend.put_if("lock", b"mine", None) is True
    assert await backend.get("lock") == b"mine"


async def test_put_if_absent_fails_when_present(backend: Backend) -> None:
    await backend.put("lock", b"theirs")
    assert await backend.put_if("lock", b"mine", None) is False
    assert await backend.get("lock") == b"theirs"


async def test_put_if_matching_value_replaces(backend: Backend) -> None:
    await backend.put("counter", b"1")
    assert await backend.put_if("counter", b"2", b"1") is True
    assert await backend.get("counter") == b"2"


async def test_put_if_stale_value_fails(backend: Backend) -> None:
    await backend.put("counter", b"2")
    assert await backend.put_if("counter", b"3", b"1") is False
    assert await backend.get("counter") == b"2"


async def test_put_if_expected_but_missing_fails(backend: Backend) -> None:
    assert await backend.put_if("gone", b"v", b"old") is False
    assert await backend.get("gone") is None


async def test_put_if_concurrent_writers_one_wins(backend: Backend) -> None:
    await backend.put("race", b"0")
    writers = [backend.put_if("race", f"w{i}".encode(), b"0") for i in range(20)]
    results = await asyncio.gather(*writers)
    assert results.count(True) == 1
    winner = results.index(True)
    assert await backend.get("race") == f"w{winner}".encode()


async def test_delete_prefix_removes_only_that_subtree(backend: Backend) -> None:
    for key in ("mount/a", "mount/b/c", "mounted/x"):
        await backend.put(key, b"v")
    await backend.delete_prefix("mount/")
    assert await backend.keys_under("mount/") == []
    assert await backend.get("mounted/x") == b"v"


async def test_sqlite_second_backend_rejected(tmp_path: Path) -> None:
    path = str(tmp_path / "locked.db")
    first = SQLiteBackend(path)
    try:
        with pytest.raises(StorageError, match="is in use by another MSSM server"):
            SQLiteBackend(path)
    finally:
        await first.close()
    reopened = SQLiteBackend(path)
    await reopened.close()


async def test_sqlite_symlinked_path_rejected(tmp_path: Path) -> None:
    # A symlink names the same database, so it must meet the same lock.
    path = tmp_path / "real.db"
    link = tmp_path / "link.db"
    first = SQLiteBackend(str(path))
    try:
        link.symlink_to(path)
        with pytest.raises(StorageError, match="is in use by another MSSM server"):
            SQLiteBackend(str(link))
    finally:
        await first.close()


async def test_sqlite_missing_directory_is_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "mssm.db"
    message = f"cannot open the lock file {path}.lock: No such file"
    with pytest.raises(StorageError, match=re.escape(message)):
        SQLiteBackend(str(path))


async def test_sqlite_unopenable_database_releases_lock(tmp_path: Path) -> None:
    path = tmp_path / "mssm.db"
    path.mkdir()
    message = f"cannot open the database {path}: unable to open database file"
    with pytest.raises(StorageError, match=re.escape(message)):
        SQLiteBackend(str(path))
    # The failed attempt let go of the lock: the path works once it is fixed.
    path.rmdir()
    store = SQLiteBackend(str(path))
    await store.close()


async def test_sqlite_value_survives_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "durable.db")
    first = SQLiteBackend(path)
    await first.put("k", b"kept")
    await first.close()

    second = SQLiteBackend(path)
    try:
        assert await second.get("k") == b"kept"
    finally:
        await second.close()


async def test_sqlite_uses_wal_and_full_sync(tmp_path: Path) -> None:
    store = SQLiteBackend(str(tmp_path / "pragmas.db"))
    try:
        conn = store._write_conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # 2 is FULL: every commit is fsynced before it returns.
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        await store.close()


async def test_sqlite_failed_write_fails_alone(tmp_path: Path) -> None:
    store = SQLiteBackend(str(tmp_path / "group.db"))
    try:
        # The three writes share one transaction; a value SQLite cannot bind
        # fails in its own savepoint without taking the others with it.
        results = await asyncio.gather(
            store.put("a", b"1"),
            store.put("bad", object()),  # type: ignore[arg-type]
            store.put("c", b"3"),
            return_exceptions=True,
        )
        assert results[0] is None
        assert isinstance(results[1], StorageError)
        assert results[2] is None
        assert await store.get("a") == b"1"
        assert await store.get("bad") is None
        assert await store.get("c") == b"3"
    finally:
        await store.close()


async def test_sqlite_write_after_close_fails(tmp_path: Path) -> None:
    store = SQLiteBackend(str(tmp_path / "closed.db"))
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.put("k", b"v")

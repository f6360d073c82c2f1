"""The PostgreSQL backend beyond the common contract: literal prefixes, the
node lock, redacted errors and recovery from lost connections, against the
real server at 127.0.0.1:5432."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg import sql

from mssm.core.config import parse_config
from mssm.core.core import Core
from mssm.core.errors import APIError, PermissionDenied
from mssm.core.request import READ, Request
from mssm.storage.base import StorageError
from mssm.storage.postgresql import LOCK_KEY, NodeLockHeldError, PostgreSQLBackend
from tests.storage.postgresql_scratch import (
    ADMIN_DSN,
    admin_query,
    scratch_schema,
    storage_url,
)

PASSWORD = "Sw0rdf1sh-not-for-logs"


@pytest.fixture
def schema() -> Iterator[str]:
    with scratch_schema() as name:
        yield name


@pytest.fixture
async def backend(schema: str) -> AsyncIterator[PostgreSQLBackend]:
    store = PostgreSQLBackend(storage_url(schema))
    await store.open()
    yield store
    await store.close()


class OutageProxy:
    """A TCP relay to PostgreSQL that can go down and come back on its port.

    Stopping it resets every relayed connection and refuses new ones, as a
    restarting server does.
    """

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._relays: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        await asyncio.gather(*self._relays, return_exceptions=True)
        await self._server.wait_closed()

    async def _relay(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        relay = asyncio.current_task()
        assert relay is not None
        self._relays.add(relay)
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", 5432)
        self._writers |= {client_writer, server_writer}
        await asyncio.gather(
            _pipe(client_reader, server_writer),
            _pipe(server_reader, client_writer),
            return_exceptions=True,
        )
        self._relays.discard(relay)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()


def terminate_sessions(schema: str, lock_holder: bool) -> int:
    """Terminate the backend's pooled sessions, or the one holding the lock.

    Waits until each session has ended; returns how many were terminated.
    """
    holders = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
    membership = "IN" if lock_holder else "NOT IN"
    rows = admin_query(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
        f"WHERE application_name = %s AND pid {membership} ({holders})",
        (schema,),
    )
    return sum(1 for (ended,) in rows if ended)


def lock_holders(schema: str) -> int:
    rows = admin_query(
        "SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid) "
        "WHERE locktype = 'advisory' AND granted AND application_name = %s",
        (schema,),
    )
    return rows[0][0]


async def eventually_get(store: PostgreSQLBackend, key: str) -> bytes | None:
    """Read key until the backend works again; every failure is a StorageError."""
    for _ in range(100):
        try:
            return await store.get(key)
        except StorageError:
            await asyncio.sleep(0.1)
    raise AssertionError("the backend did not recover within 10 s")


async def test_like_wildcards_in_keys_are_literal(backend: PostgreSQLBackend) -> None:
    keys = ["a%/1", "a_/2", "a\\/3", "ab/4", "a%b/5", "az/6", "a\\\\/7"]
    for key in keys:
        await backend.put(key, b"v")
    assert await backend.list("a%/") == ["1"]
    assert await backend.list("a_/") == ["2"]
    assert await backend.list("a\\/") == ["3"]
    assert await backend.keys_under("a%") == ["a%/1", "a%b/5"]
    assert await backend.keys_under("a\\") == ["a\\/3", "a\\\\/7"]
    assert await backend.list("") == [
        "a%/",
        "a%b/",
        "a\\/",
        "a\\\\/",
        "a_/",
        "ab/",
        "az/",
    ]


async def test_delete_prefix_with_wildcard_is_literal(
    backend: PostgreSQLBackend,
) -> None:
    for key in ("a_/1", "ab/2", "a%/3", "axyz/4"):
        await backend.put(key, b"v")
    await backend.delete_prefix("a_/")
    await backend.delete_prefix("a%")
    assert await backend.keys_under("") == ["ab/2", "axyz/4"]


async def test_keys_sorted_by_code_point(backend: PostgreSQLBackend) -> None:
    for key in ("p/z", "p/é", "p/B", "p/a", "p/_"):
        await backend.put(key, b"v")
    assert await backend.list("p/") == ["B", "_", "a", "z", "é"]


async def test_prefix_ending_in_max_code_point(backend: PostgreSQLBackend) -> None:
    top = "\U0010ffff"
    for key in (f"x{top}", f"x{top}/1", f"x{top}{top}", "y", "x/1"):
        await backend.put(key, b"v")
    assert await backend.keys_under(f"x{top}") == [
        f"x{top}",
        f"x{top}/1",
        f"x{top}{top}",
    ]
    assert await backend.keys_under(top) == []


async def test_prefix_before_surrogates(backend: PostgreSQLBackend) -> None:
    # The code point after U+D7FF is a surrogate, so the range must skip them.
    for key in ("k\ud7ff/1", "k\ue000/2", "k\ud7fe/3"):
        await backend.put(key, b"v")
    assert await backend.keys_under("k\ud7ff") == ["k\ud7ff/1"]


async def test_put_if_absent_concurrent_one_wins(backend: PostgreSQLBackend) -> None:
    writers = [backend.put_if("claim", f"w{i}".encode(), None) for i in range(20)]
    results = await asyncio.gather(*writers)
    assert results.count(True) == 1
    assert await backend.get("claim") == f"w{results.index(True)}".encode()


async def test_put_if_rounds_one_winner_each(
    backend: PostgreSQLBackend,
) -> None:
    await backend.put("counter", b"0")
    for round_number in range(1, 4):
        expected = str(round_number - 1).encode()
        new = str(round_number).encode()
        results = await asyncio.gather(
            *(backend.put_if("counter", new, expected) for _ in range(20))
        )
        assert results.count(True) == 1
        assert await backend.get("counter") == new


async def test_value_stored_byte_for_byte(
    backend: PostgreSQLBackend, schema: str
) -> None:
    value = bytes(range(256)) * 4
    await backend.put("blob", value)
    rows = admin_query(f"SELECT value FROM {schema}.mssm_entries WHERE key = 'blob'")
    assert rows == [(value,)]


async def test_second_backend_on_same_table_rejected(
    backend: PostgreSQLBackend, schema: str
) -> None:
    second = PostgreSQLBackend(storage_url(schema))
    with pytest.raises(NodeLockHeldError) as caught:
        await second.open()
    assert "another MSSM node holds the lock on table mssm_entries" in str(caught.value)
    assert "several nodes on one database are not supported yet" in str(caught.value)
    with pytest.raises(StorageError, match="postgresql storage is closed"):
        await second.get("k")
    assert await backend.put_if("still", b"mine", None) is True
    assert lock_holders(schema) == 1


async def test_lock_released_on_close(schema: str) -> None:
    first = PostgreSQLBackend(storage_url(schema))
    await first.open()
    await first.put("k", b"kept")
    await first.close()
    assert lock_holders(schema) == 0

    second = PostgreSQLBackend(storage_url(schema))
    await second.open()
    try:
        assert await second.get("k") == b"kept"
        assert lock_holders(schema) == 1
    finally:
        await second.close()


async def test_backends_on_other_tables_coexist(backend: PostgreSQLBackend) -> None:
    with scratch_schema() as other_schema:
        other = PostgreSQLBackend(storage_url(other_schema))
        await other.open()
        try:
            await other.put("k", b"other")
            await backend.put("k", b"first")
            assert await other.get("k") == b"other"
            assert await backend.get("k") == b"first"
        finally:
            await other.close()


async def test_closed_backend_rejects_requests(schema: str) -> None:
    store = PostgreSQLBackend(storage_url(schema))
    await store.open()
    await store.close()
    with pytest.raises(StorageError, match="postgresql storage is closed"):
        await store.put("k", b"v")


async def test_errors_never_contain_password(
    schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = storage_url(schema, PASSWORD)
    store = PostgreSQLBackend(url)
    await store.open()
    try:
        with pytest.raises(StorageError, match="write failed") as caught:
            await store.put("nul\x00key", b"v")
    finally:
        await store.close()
    message = str(caught.value)
    assert "NUL" in message
    assert PASSWORD not in message
    assert url not in message
    assert PASSWORD not in caplog.text
    assert "host 127.0.0.1, database test" in caplog.text


async def test_connect_error_never_contains_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/mssm_no_such_database"
    store = PostgreSQLBackend(url)
    with pytest.raises(StorageError, match="does not exist") as caught:
        await store.open()
    assert PASSWORD not in str(caught.value)
    assert "mssm_no_such_database" in str(caught.value)
    assert PASSWORD not in caplog.text


def test_malformed_url_never_quoted() -> None:
    url = f"postgresql://postgres:{PASSWORD}%zz@127.0.0.1:5432/test"
    with pytest.raises(StorageError, match="not a valid PostgreSQL") as caught:
        PostgreSQLBackend(url)
    assert PASSWORD not in str(caught.value)


async def test_read_after_terminate_retries(
    backend: PostgreSQLBackend, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    await backend.put("k", b"v")
    assert terminate_sessions(schema, lock_holder=False) >= 1
    caplog.set_level(logging.WARNING, "mssm.storage.postgresql")

    assert await backend.get("k") == b"v"
    assert "retrying on a new connection" in caplog.text
    assert lock_holders(schema) == 1


async def test_put_if_after_terminate_fails_once(
    backend: PostgreSQLBackend, schema: str
) -> None:
    await backend.put("k", b"v")
    assert terminate_sessions(schema, lock_holder=False) >= 1

    # A compare-and-set is not retried: it may have been committed.
    with pytest.raises(StorageError, match="write failed"):
        await backend.put_if("k", b"w", b"v")
    assert await backend.get("k") == b"v"
    assert await backend.put_if("k", b"w", b"v") is True
    assert await backend.get("k") == b"w"


async def test_lock_session_terminated_recovers(
    backend: PostgreSQLBackend, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "mssm.storage.postgresql")
    await backend.put("k", b"v")
    assert terminate_sessions(schema, lock_holder=True) == 1
    assert terminate_sessions(schema, lock_holder=False) >= 1

    assert await eventually_get(backend, "k") == b"v"
    assert lock_holders(schema) == 1
    assert "lost the postgresql connection holding the node lock" in caplog.text
    assert "took the node lock again" in caplog.text
    await backend.put("after", b"restart")
    assert await backend.get("after") == b"restart"


async def test_lock_taken_by_other_node_meanwhile(
    backend: PostgreSQLBackend, schema: str
) -> None:
    await backend.put("k", b"v")
    # The blocking calls keep the event loop, and so the backend's watcher,
    # from running until the other session holds the lock.
    with psycopg.connect(ADMIN_DSN, autocommit=True) as other:
        other.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(schema)))
        assert terminate_sessions(schema, lock_holder=True) == 1
        locked = other.execute(f"SELECT pg_try_advisory_lock({LOCK_KEY})").fetchone()
        assert locked == (True,)
        await asyncio.sleep(0.5)
        with pytest.raises(StorageError, match="Restart this server"):
            await backend.get("k")
    await asyncio.sleep(0.5)
    with pytest.raises(StorageError, match="Restart this server"):
        await backend.get("k")


async def test_core_serves_nothing_once_lock_is_lost(schema: str) -> None:
    # The core keeps tokens, policies and stored values in memory. Once
    # another node holds the lock, those may be stale, so no request is
    # served, not even one that storage would not be asked for.
    store = PostgreSQLBackend(storage_url(schema))
    await store.open()
    core = Core(parse_config({"listener": {"tls_disable": True}}), store)
    try:
        shares = await core.seal_manager.initialize(1, 1)
        await core.seal_manager.submit_share(shares[0])
        await core.post_unseal()
        with pytest.raises(PermissionDenied):
            await core.handle(Request(operation=READ, path="sys/mounts"))

        with psycopg.connect(ADMIN_DSN, autocommit=True) as other:
            other.execute(
                sql.SQL("SET search_path = {}").format(sql.Identifier(schema))
            )
            assert terminate_sessions(schema, lock_holder=True) == 1
            locked = other.execute(f"SELECT pg_try_advisory_lock({LOCK_KEY})")
            assert locked.fetchone() == (True,)
            await asyncio.sleep(0.5)
            with pytest.raises(APIError, match="Restart this server") as refused:
                await core.handle(Request(operation=READ, path="sys/mounts"))
            assert refused.value.status == 503
    finally:
        await core.seal()
        await store.close()


async def test_server_outage_fails_then_recovers(
    schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "mssm.storage.postgresql")
    proxy = OutageProxy()
    await proxy.start()
    url = storage_url(schema).replace(":5432/", f":{proxy.port}/")
    store = PostgreSQLBackend(url)
    await store.open()
    try:
        await store.put("k", b"v")
        await proxy.stop()

        # While the server is away every request fails, quickly.
        for _ in range(10):
            started = time.monotonic()
            with pytest.raises(StorageError):
                await store.get("k")
            assert time.monotonic() - started < 2
            await asyncio.sleep(0.2)
        assert "reconnecting to postgresql (host 127.0.0.1" in caplog.text
        assert "failed, attempt 2" in caplog.text

        await proxy.start()
        assert await eventually_get(store, "k") == b"v"
        assert "took the node lock again" in caplog.text
        await store.put("after", b"outage")
        assert await store.get("after") == b"outage"
    finally:
        await store.close()
        await proxy.stop()

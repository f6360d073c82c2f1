"""PostgreSQL backend: one table of keys and encrypted values, over psycopg 3.

Every statement runs in autocommit on a connection from an asyncio pool. A
write is therefore committed before it returns, and durable as far as the
server's synchronous_commit makes it; this module never lowers that setting.

One node per table. The server keeps tokens, policies and the mount table
cached in memory and updates that cache only on its own writes, so a second
node writing to the same table would be served stale data. Until nodes share
their changes, each backend holds a session-level advisory lock on a
connection of its own for its whole life, and a second node is rejected at
start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from mssm.storage.base import Backend, StorageError, direct_children

logger = logging.getLogger(__name__)
# psycopg_pool logs every checkout and return at INFO: at the server's
# default level that would add several lines to every request.
logging.getLogger("psycopg.pool").setLevel(logging.WARNING)

TABLE = "mssm_entries"
# The "C" collation orders keys by code point, as Python sorts them, and
# makes the prefix range scans below exact.
_CREATE_TABLE = (
    f'CREATE TABLE IF NOT EXISTS {TABLE} (key text COLLATE "C" PRIMARY KEY, '
    "value bytea NOT NULL)"
)
# Advisory lock keys are 64-bit: the high half is "MSSM" in ASCII and the low
# half the table's OID, so each table in a database has a lock of its own.
_LOCK_CLASS = 0x4D53534D
LOCK_KEY = f"(({_LOCK_CLASS}::bigint << 32) | '{TABLE}'::regclass::oid::bigint)"
# PostgreSQL releases a session's locks when the session ends. These settings
# make it notice a client that vanished (power loss, network partition) after
# about a minute, where Linux's default tcp_keepalive_time alone is two hours.
_SERVER_KEEPALIVES = (
    "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; "
    "SET tcp_keepalives_count = 3"
)
# libpq parameters used unless the connection URL sets them: a connection
# attempt gives up after 10 s, and a dead server is noticed after about a
# minute.
_DEFAULT_PARAMETERS = {
    "application_name": "mssm",
    "connect_timeout": "10",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}
POOL_MIN_SIZE = 2
POOL_MAX_SIZE = 10
# Seconds a request waits for a free connection before it fails.
POOL_TIMEOUT = 10.0
# Seconds between attempts to get the node lock back, doubling up to the max.
RELOCK_DELAY = 0.5
RELOCK_MAX_DELAY = 5.0

Operation = Literal["read", "write", "list"]
Result = tuple[int, list[tuple[Any, ...]]]
T = TypeVar("T")


class NodeLockHeldError(StorageError):
    """Another node holds the lock on this database's table."""


class _ConnectionLostError(Exception):
    """The pooled connection broke during a statement."""


class PostgreSQLBackend(Backend):
    def __init__(self, connection_url: str) -> None:
        self._parameters = _connection_parameters(connection_url)
        # Redacted from every error message, in case libpq quotes the URL.
        self._hidden = [connection_url]
        password = self._parameters.get("password")
        if password:
            self._hidden += [password, quote(password, safe="")]
        host = self._parameters.get("host") or self._parameters.get("hostaddr")
        database = self._parameters.get("dbname")
        self.location = f"host {host or 'default'}, database {database or 'default'}"
        self._pool: AsyncConnectionPool | None = None
        self._lock_conn: AsyncConnection | None = None
        self._watcher: asyncio.Task[None] | None = None
        # Why requests fail while the node lock is not held; None while it is.
        self._unavailable: str | None = "the backend is not open"

    # -- the node lock --------------------------------------------------------

    async def open(self) -> None:
        """Create the table if missing, take the node lock, open the pool.

        Raises NodeLockHeldError when another node holds the lock, and
        StorageError when PostgreSQL cannot be reached.
        """
        try:
            self._lock_conn = await self._connect_and_lock()
            await self._warn_if_not_durable(self._lock_conn)
            self._pool = AsyncConnectionPool(
                kwargs=self._parameters | {"autocommit": True},
                min_size=POOL_MIN_SIZE,
                max_size=POOL_MAX_SIZE,
                timeout=POOL_TIMEOUT,
                open=False,
                name="mssm-storage",
            )
            await self._pool.open(wait=True, timeout=POOL_TIMEOUT)
        except psycopg.Error as exc:
            await self.close()
            raise self._storage_error("open", exc) from None
        except StorageError:
            await self.close()
            raise
        self._unavailable = None
        self._watcher = asyncio.create_task(self._keep_lock(), name="mssm-node-lock")
        logger.info("postgresql storage opened (%s)", self.location)

    async def _connect_and_lock(self) -> AsyncConnection:
        conn = await AsyncConnection.connect(**self._parameters, autocommit=True)
        try:
            async with conn.transaction():
                # Two nodes starting together would race in CREATE TABLE IF
                # NOT EXISTS; this lock ends with the transaction.
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_CLASS,))
                await conn.execute(_CREATE_TABLE)
            await conn.execute(_SERVER_KEEPALIVES)
            cursor = await conn.execute(f"SELECT pg_try_advisory_lock({LOCK_KEY})")
            row = await cursor.fetchone()
        except BaseException:
            await conn.close()
            raise
        if row is None or row[0] is not True:
            await conn.close()
            raise NodeLockHeldError(
                f"another MSSM node holds the lock on table {TABLE} "
                f"({self.location}): several nodes on one database are not "
                "supported yet. Stop the other node, or give this one a database "
                "of its own. A node that died without closing its connection "
                "releases the lock within about a minute."
            )
        return conn

    async def _warn_if_not_durable(self, conn: AsyncConnection) -> None:
        cursor = await conn.execute("SHOW synchronous_commit")
        row = await cursor.fetchone()
        if row is not None and row[0] == "off":
            logger.warning(
                "synchronous_commit is off (%s): a write that MSSM acknowledged "
                "can be lost if PostgreSQL crashes; set it to on",
                self.location,
            )

    def unavailable(self) -> str | None:
        return self._unavailable

    async def _keep_lock(self) -> None:
        """Notice a lost lock connection, and take the lock again on a new one."""
        try:
            while self._lock_conn is not None:
                await self._wait_and_relock(self._lock_conn)
        except Exception:
            # A bug here must not leave requests running without the lock.
            self._unavailable = "postgresql storage failed: see the server log"
            logger.exception("watching the node lock failed (%s)", self.location)

    async def _wait_and_relock(self, lost_conn: AsyncConnection) -> None:
        error = await _wait_until_lost(lost_conn)
        self._unavailable = (
            f"postgresql storage unavailable ({self.location}): the connection "
            "holding the node lock was lost; reconnecting"
        )
        logger.warning(
            "lost the postgresql connection holding the node lock (%s): %s; "
            "reconnecting",
            self.location,
            self._describe(error),
        )
        await lost_conn.close()
        self._lock_conn = await self._relock()
        if self._lock_conn is None:
            return
        # The restart that broke the lock connection broke the pooled ones
        # too: replace them before requests find them.
        await self._require(self._pool).check()
        self._unavailable = None

    async def _relock(self) -> AsyncConnection | None:
        delay = RELOCK_DELAY
        attempt = 1
        while True:
            try:
                conn = await self._connect_and_lock()
            except NodeLockHeldError as exc:
                # The cached state of this server may predate the other
                # node's writes, so only a restart makes it safe to go on.
                self._unavailable = f"{exc} Restart this server to resume."
                logger.error("cannot take the node lock again: %s", exc)
                return None
            except psycopg.Error as exc:
                logger.warning(
                    "reconnecting to postgresql (%s) failed, attempt %d: %s; "
                    "next attempt in %.1f s",
                    self.location,
                    attempt,
                    self._describe(exc),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RELOCK_MAX_DELAY)
                attempt += 1
                continue
            logger.info(
                "reconnected to postgresql (%s) and took the node lock again",
                self.location,
            )
            return conn

    # -- statements -----------------------------------------------------------

    async def _run(
        self,
        operation: Operation,
        statement: str,
        parameters: tuple[Any, ...],
        *,
        retry: bool = True,
    ) -> Result:
        """Run one statement on a pooled connection; return rowcount and rows.

        With retry, a statement whose connection broke runs once more on a
        fresh one. Only idempotent statements may retry: the first attempt
        may have been committed before the connection broke.
        """
        pool = self._available_pool()
        try:
            return await _execute(pool, statement, parameters)
        except _ConnectionLostError as lost:
            cause = lost.__cause__ or lost
            if not retry:
                raise self._storage_error(operation, cause) from None
            logger.warning(
                "postgresql connection lost during a %s (%s): %s; retrying on a "
                "new connection",
                operation,
                self.location,
                self._describe(cause),
            )
        except psycopg.Error as exc:
            raise self._storage_error(operation, exc) from None
        await pool.check()
        return await self._run(operation, statement, parameters, retry=False)

    def _available_pool(self) -> AsyncConnectionPool:
        if self._unavailable is not None:
            raise StorageError(self._unavailable)
        return self._require(self._pool)

    async def get(self, key: str) -> bytes | None:
        statement = f"SELECT value FROM {TABLE} WHERE key = %s"
        _, rows = await self._run("read", statement, (key,))
        return rows[0][0] if rows else None

    async def put(self, key: str, value: bytes) -> None:
        statement = (
            f"INSERT INTO {TABLE} (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        await self._run("write", statement, (key, value))

    async def delete(self, key: str) -> None:
        await self._run("write", f"DELETE FROM {TABLE} WHERE key = %s", (key,))

    async def put_if(self, key: str, value: bytes, expected: bytes | None) -> bool:
        # Each branch is one statement, so the compare and the write are
        # atomic. Concurrent UPDATEs of one row wait for each other, and the
        # later one checks its WHERE against the row the earlier one wrote.
        if expected is None:
            statement = (
                f"INSERT INTO {TABLE} (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO NOTHING"
            )
            parameters: tuple[Any, ...] = (key, value)
        else:
            statement = f"UPDATE {TABLE} SET value = %s WHERE key = %s AND value = %s"
            parameters = (value, key, expected)
        # NOTE: no retry, because a write whose connection broke may have
        # been committed. A retry would then report that write as a
        # mismatch, so the caller gets a StorageError instead.
        rowcount, _ = await self._run("write", statement, parameters, retry=False)
        return rowcount == 1

    async def keys_under(self, prefix: str) -> list[str]:
        where, parameters = _prefix_range(prefix)
        statement = f"SELECT key FROM {TABLE} {where} ORDER BY key"
        _, rows = await self._run("list", statement, parameters)
        return [row[0] for row in rows]

    async def list(self, prefix: str) -> list[str]:
        return direct_children(prefix, await self.keys_under(prefix))

    async def delete_prefix(self, prefix: str) -> None:
        where, parameters = _prefix_range(prefix)
        await self._run("write", f"DELETE FROM {TABLE} {where}", parameters)

    async def close(self) -> None:
        """Stop watching the lock, close the pool, release the node lock."""
        self._unavailable = "postgresql storage is closed"
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._lock_conn is not None:
            await self._unlock(self._lock_conn)
            self._lock_conn = None
        logger.info("postgresql storage closed (%s)", self.location)

    async def _unlock(self, conn: AsyncConnection) -> None:
        # Ending the session releases the lock too, but the server does that
        # after close() returns; unlocking first lets a successor start at once.
        if not conn.closed:
            try:
                await conn.execute(f"SELECT pg_advisory_unlock({LOCK_KEY})")
            except psycopg.Error as exc:
                logger.warning(
                    "releasing the node lock failed (%s): %s; it ends with the session",
                    self.location,
                    self._describe(exc),
                )
        await conn.close()

    # -- errors ---------------------------------------------------------------

    def _storage_error(self, operation: str, exc: BaseException) -> StorageError:
        detail = self._describe(exc)
        logger.error("postgresql %s failed (%s): %s", operation, self.location, detail)
        return StorageError(f"postgresql storage {operation} failed: {detail}")

    def _describe(self, exc: BaseException) -> str:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        return self._redact(lines[0])

    def _redact(self, text: str) -> str:
        for hidden in self._hidden:
            text = text.replace(hidden, "***")
        return text

    @staticmethod
    def _require(value: T | None) -> T:
        if value is None:
            raise StorageError("postgresql storage is closed")
        return value


def _connection_parameters(connection_url: str) -> dict[str, Any]:
    try:
        parameters = conninfo_to_dict(connection_url)
    except psycopg.Error:
        # libpq's message may quote the part it could not parse, which can be
        # the password, so it is not passed on.
        raise StorageError(
            "[storage] connection_url is not a valid PostgreSQL connection URL: "
            "check its syntax and that reserved characters in the user name and "
            "password are percent-encoded"
        ) from None
    return _DEFAULT_PARAMETERS | parameters


async def _execute(
    pool: AsyncConnectionPool, statement: str, parameters: tuple[Any, ...]
) -> Result:
    async with pool.connection() as conn:
        try:
            cursor = await conn.execute(statement, parameters, binary=True)
            rows = await cursor.fetchall() if cursor.description else []
        except psycopg.OperationalError as exc:
            if conn.broken:
                raise _ConnectionLostError from exc
            raise
        return cursor.rowcount, rows


async def _wait_until_lost(conn: AsyncConnection) -> BaseException:
    """Wait on an idle connection until it breaks; return the error.

    Waiting for notifications reads the socket without sending anything, so
    a terminated session or a closed socket shows up at once.
    """
    try:
        async for _ in conn.notifies():
            pass
    except psycopg.Error as exc:
        return exc
    return psycopg.OperationalError("the connection closed")


def _prefix_range(prefix: str) -> tuple[str, tuple[str, ...]]:
    """Return a WHERE clause and its parameters for the keys under prefix.

    A range on the "C" collation, where LIKE would treat '%', '_' and '\\'
    in keys as patterns.
    """
    if not prefix:
        return "", ()
    end = _prefix_end(prefix)
    if end is None:
        return "WHERE key >= %s", (prefix,)
    return "WHERE key >= %s AND key < %s", (prefix, end)


def _prefix_end(prefix: str) -> str | None:
    """Return the least string above every string that starts with prefix.

    Returns None when no such string exists (prefix is all U+10FFFF).
    """
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:
        # Surrogates cannot be stored in PostgreSQL text, nor encoded in UTF-8.
        following = 0xE000
    return stem[:-1] + chr(following)

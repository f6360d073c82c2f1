"""SQLite backend: one file, WAL journal, synchronous=FULL.

With synchronous=FULL every committed transaction is fsynced to the WAL
before the commit returns, so an acknowledged write survives kill -9 and
power loss. Reads run on the event loop: with the pages cached they take
microseconds, less than a hop to a thread. Writes go to one writer thread,
because they block on fsync.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from mssm.storage.base import Backend, StorageError, direct_children

logger = logging.getLogger(__name__)

_SCHEMA = "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB)"


class SQLiteBackend(Backend):
    def __init__(self, path: str) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._write_conn = self._connect()
        self._write_conn.execute(_SCHEMA)
        self._read_conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    async def _write(self, func, *args):  # noqa: ANN001, ANN202
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._writer, func, *args)
        except sqlite3.Error as exc:
            logger.error("sqlite write failed: %s", exc)
            raise StorageError(f"storage write failed: {exc}") from None

    def _read(self, sql: str, params: tuple) -> list[tuple]:
        try:
            return self._read_conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            logger.error("sqlite read failed: %s", exc)
            raise StorageError(f"storage read failed: {exc}") from None

    async def get(self, key: str) -> bytes | None:
        rows = self._read("SELECT value FROM entries WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    async def put(self, key: str, value: bytes) -> None:
        await self._write(self._put_sync, key, value)

    def _put_sync(self, key: str, value: bytes) -> None:
        self._write_conn.execute(
            "INSERT INTO entries (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def delete(self, key: str) -> None:
        await self._write(self._delete_sync, key)

    def _delete_sync(self, key: str) -> None:
        self._write_conn.execute("DELETE FROM entries WHERE key = ?", (key,))

    async def delete_prefix(self, prefix: str) -> None:
        await self._write(self._delete_prefix_sync, prefix)

    def _delete_prefix_sync(self, prefix: str) -> None:
        self._write_conn.execute(
            "DELETE FROM entries WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
        )

    async def keys_under(self, prefix: str) -> list[str]:
        rows = self._read(
            "SELECT key FROM entries WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, prefix + "\U0010ffff"),
        )
        return [row[0] for row in rows]

    async def list(self, prefix: str) -> list[str]:
        return direct_children(prefix, await self.keys_under(prefix))

    async def put_if(self, key: str, value: bytes, expected: bytes | None) -> bool:
        return await self._write(self._put_if_sync, key, value, expected)

    def _put_if_sync(self, key: str, value: bytes, expected: bytes | None) -> bool:
        conn = self._write_conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT value FROM entries WHERE key = ?", (key,)
            ).fetchone()
            current = row[0] if row else None
            if current != expected:
                conn.execute("ROLLBACK")
                return False
            self._put_sync(key, value)
            conn.execute("COMMIT")
            return True
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def backup(self, destination: str) -> None:
        """Write a consistent online copy of the database to destination."""
        await self._write(self._backup_sync, destination)

    def _backup_sync(self, destination: str) -> None:
        target = sqlite3.connect(destination)
        try:
            self._write_conn.backup(target)
        finally:
            target.close()

    async def close(self) -> None:
        await self._write(self._write_conn.close)
        self._read_conn.close()
        self._writer.shutdown(wait=True)

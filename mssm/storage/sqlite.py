"""SQLite backend: one file, WAL journal, synchronous=FULL.

With synchronous=FULL every committed transaction is fsynced to the WAL
before the commit returns, so an acknowledged write survives kill -9 and
power loss. Reads run on the event loop: with the pages cached they take
microseconds, less than a hop to a thread. Writes go to one writer thread,
because they block on fsync.

The writer commits in groups: it takes every write queued so far, runs each
in a savepoint of one transaction and commits once, so concurrent writes
share one fsync. A write that fails is rolled back to its savepoint and
fails alone; a commit that fails fails every write of its group. A write
starts at once when the writer is idle, and writes that come in during a
commit wait for the next one.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from mssm.storage.base import Backend, StorageError, direct_children

logger = logging.getLogger(__name__)

_SCHEMA = "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB)"
# A queued write: the function, its arguments, and the caller's loop and future.
Write = tuple[Callable[..., Any], tuple, asyncio.AbstractEventLoop, asyncio.Future]
# A write's result or its error.
Outcome = tuple[Any, BaseException | None]


class SQLiteBackend(Backend):
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock_fd = _lock_database(path)
        try:
            self._write_conn = self._connect()
            self._write_conn.execute(_SCHEMA)
            self._read_conn = self._connect()
        except sqlite3.Error as exc:
            os.close(self._lock_fd)
            raise StorageError(f"cannot open the database {path}: {exc}") from None
        self._closed = False
        self._writes: queue.SimpleQueue[Write | None] = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._write_groups, name="sqlite-writer", daemon=True
        )
        self._writer.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    async def _write(self, func, *args):  # noqa: ANN001, ANN202
        if self._closed:
            raise StorageError("storage write failed: the backend is closed")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._writes.put((func, args, loop, future))
        try:
            return await future
        except sqlite3.Error as exc:
            logger.error("sqlite write failed: %s", exc)
            raise StorageError(f"storage write failed: {exc}") from None

    # -- the writer thread -----------------------------------------------------

    def _write_groups(self) -> None:
        while True:
            group = [self._writes.get()]
            while not self._writes.empty():
                group.append(self._writes.get())
            writes = [write for write in group if write is not None]
            if writes:
                _report(writes, self._commit(writes))
            if len(writes) < len(group):
                return

    def _commit(self, writes: list[Write]) -> list[Outcome]:
        """Run writes in one transaction, each in a savepoint; commit once."""
        conn = self._write_conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [self._run_one(func, args) for func, args, _, _ in writes]
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # The transaction itself failed (busy, disk full, I/O error):
            # nothing of the group is stored.
            if conn.in_transaction:
                _rollback(conn)
            return [(None, exc)] * len(writes)
        return outcomes

    def _run_one(self, func: Callable[..., Any], args: tuple) -> Outcome:
        conn = self._write_conn
        conn.execute("SAVEPOINT write")
        try:
            result = func(*args)
        except Exception as exc:
            conn.execute("ROLLBACK TO write")
            conn.execute("RELEASE write")
            return None, exc
        conn.execute("RELEASE write")
        return result, None

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
        # The writer's transaction makes the compare and the write atomic.
        row = self._write_conn.execute(
            "SELECT value FROM entries WHERE key = ?", (key,)
        ).fetchone()
        current = row[0] if row else None
        if current != expected:
            return False
        self._put_sync(key, value)
        return True

    async def backup(self, destination: str) -> None:
        """Write a consistent online copy of the database to destination."""
        # A connection of its own reads one snapshot, outside the writer's
        # transactions.
        await asyncio.to_thread(self._backup_sync, destination)

    def _backup_sync(self, destination: str) -> None:
        source = self._connect()
        target = sqlite3.connect(destination)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()

    async def close(self) -> None:
        """Finish the queued writes, then close both connections."""
        self._closed = True
        self._writes.put(None)
        await asyncio.to_thread(self._writer.join)
        self._write_conn.close()
        self._read_conn.close()
        os.close(self._lock_fd)


def _lock_database(path: str) -> int:
    """Take the lock that lets one server at a time use the database at path.

    A server keeps tokens, policies, the mount table and stored values
    cached in memory, so a second server on the same file would serve
    what the first one changed or revoked. The lock is on a file beside
    the database, and the kernel releases it when the process dies.
    """
    # The lock sits beside the file that symlinks resolve to, so a symlink
    # to the database meets the same lock (a hard link does not).
    lock_path = os.path.realpath(path) + ".lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StorageError(
            f"cannot open the lock file {lock_path}: {exc.strerror}; check "
            "that the directory exists and that the server may write to it"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StorageError(
            f"{path} is in use by another MSSM server (lock {lock_path}); stop "
            "it first, or give this server its own [storage] path"
        ) from None
    return fd


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        logger.error("sqlite rollback failed: %s", exc)


def _report(writes: list[Write], outcomes: list[Outcome]) -> None:
    """Hand each outcome to its caller's event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for (_, _, loop, future), outcome in zip(writes, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((future, outcome))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, settled)
        except RuntimeError:
            # The loop is closed: nobody waits for these writes any more.
            pass


def _settle(settled: list[tuple[asyncio.Future, Outcome]]) -> None:
    for future, (result, error) in settled:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

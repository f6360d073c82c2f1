"""The file audit writer: chained JSON lines in one file per device, written
as they come and fsynced in groups (group commit), with the hash chain and
its signed checkpoints (see mssm.core.audit_chain).

A caller's write() returns once its line is in the file, and with
sync=True once an fsync has covered it as well; it raises AuditWriteError
if either failed. Response lines are synced, so a request is answered only
once both of its lines are on disk. A request line is written but not
synced before its request runs, which keeps each request to one fsync wait.

Group commit: when a synced line finds no fsync running, one starts at
once; lines that arrive while it runs wait for the next one, which covers
all of them. Appending to a regular file only copies the line into the page
cache, so it runs on the event loop, as SQLite reads do, and saves a hop to
a thread per line; the fsync, which waits for the disk, runs in a thread.
Writes to anything else (stdout, a pipe, a device) can block on the reader
and run in a thread.

NOTE: a power failure while a request runs can therefore lose that
request's line; it cannot lose the lines of an answered request.

A failed write is cut off the file, so the chain stays at its last written
line and has no gap. A failed fsync fails the lines it covered, but they
stay in the file, because later lines may already follow them.

The path is checked before every line: when the file was renamed or deleted
(log rotation), the writer opens a new file at the path and starts it with
a file_start line that continues the chain.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mssm.core.audit_chain import (
    CHECKPOINT_INTERVAL,
    FILE_START,
    GENESIS_HASH,
    line_hash,
    sign_checkpoint,
)
from mssm.core.timefmt import rfc3339

logger = logging.getLogger(__name__)

STDOUT = "stdout"
TAIL_BLOCK = 64 * 1024
# Errors of fsync on files that cannot be synced (pipes, terminals, devices).
_UNSYNCABLE = (errno.EINVAL, errno.ENOTSUP, errno.EROFS)
FAILURE_LOG_SECONDS = 10.0


class AuditWriteError(Exception):
    """A device failed to write or sync a line. The message names the device."""


@dataclass
class ChainHead:
    seq: int
    hash: str


GENESIS = ChainHead(0, GENESIS_HASH)
CheckpointHook = Callable[[dict[str, Any], ChainHead], Awaitable[None]]
# A checkpoint line just written: its seq, its body and the head after it.
Written = tuple[int, dict[str, Any], ChainHead]


class FileAuditWriter:
    """Append-only chained JSON lines to one file (or stdout)."""

    def __init__(
        self,
        device: str,
        file_path: str,
        mode: int,
        writer_id: str,
        signing_key: Ed25519PrivateKey,
        on_checkpoint: CheckpointHook,
    ) -> None:
        self.device = device
        self.file_path = file_path
        self.mode = mode
        self.writer_id = writer_id
        self.signing_key = signing_key
        self.on_checkpoint = on_checkpoint
        self._fd: int | None = None
        # (st_dev, st_ino) of the open file, when it is a regular file.
        self._file_id: tuple[int, int] | None = None
        self._head = GENESIS
        self._stored_head = GENESIS
        self._new_file = False
        self._uncovered = 0
        self._last_checkpoint = 0.0
        self._synced_seq = 0
        self._sync_waiters: list[tuple[int, asyncio.Future]] = []
        self._sync_task: asyncio.Task | None = None
        self._sync_thread: SyncThread | None = None
        # Files replaced by rotation: fsynced and closed by the next fsync.
        self._retired_fds: list[int] = []
        # Serialises the writes that run in a thread.
        self._thread_lock = asyncio.Lock()
        self._checkpoint_timer: asyncio.TimerHandle | None = None
        self._checkpoint_store: asyncio.Task | None = None
        self._idle_checkpoint: asyncio.Task | None = None
        self._closing = False
        self._failures = 0
        self._last_failure_log = 0.0

    # -- lifecycle -------------------------------------------------------------

    async def open(self, stored_head: ChainHead | None) -> None:
        """Open the file, find the chain head and write a first checkpoint.

        A failure to open or write is logged, not raised: the device then
        fails each write until the path works again.
        """
        self._stored_head = stored_head or GENESIS
        try:
            await asyncio.to_thread(self._open_file)
        except OSError as exc:
            logger.error(
                "audit device %s cannot open %s: %s", self.device, self.file_path, exc
            )
            return
        await self._write_checkpoint()

    async def close(self) -> None:
        """Write a final checkpoint if lines need one, then close the file."""
        self._closing = True
        if self._checkpoint_timer is not None:
            self._checkpoint_timer.cancel()
            self._checkpoint_timer = None
        if self._idle_checkpoint is not None:
            await self._idle_checkpoint
        if self._uncovered:
            await self._write_checkpoint()
        if self._checkpoint_store is not None:
            await self._checkpoint_store
        if self._sync_task is not None:
            await self._sync_task
        if self._sync_thread is not None:
            self._sync_thread.stop()
            self._sync_thread = None
        for fd in self._retired_fds:
            os.close(fd)
        self._retired_fds = []
        if self._fd is not None and self.file_path != STDOUT:
            os.close(self._fd)
        self._fd = None

    # -- writing ---------------------------------------------------------------

    async def write(self, entry: dict[str, Any], sync: bool = True) -> None:
        """Append entry as one line; return once it is written (and synced)."""
        await self.write_many([entry], sync)

    async def write_many(
        self, entries: list[dict[str, Any]], sync: bool = True
    ) -> None:
        """Append entries as consecutive lines in one write."""
        if self._closing:
            raise AuditWriteError(f"audit device {self.device} is closing")
        seq = await self._append_lines(entries, force_checkpoint=False)
        if sync:
            await self._wait_synced(seq)

    async def _append_lines(
        self, entries: list[dict[str, Any]], force_checkpoint: bool
    ) -> int:
        """Write entries (and a checkpoint when one is due); return the last seq."""
        try:
            if self._file_id is not None and not self._thread_lock.locked():
                written = self._append(entries, force_checkpoint)
            else:
                async with self._thread_lock:
                    written = await asyncio.to_thread(
                        self._append, entries, force_checkpoint
                    )
        except OSError as exc:
            raise self._failed(exc) from None
        if written is not None:
            self._store_after_sync(*written)
        if self._uncovered:
            self._arm_checkpoint_timer()
        return self._head.seq

    async def _write_checkpoint(self) -> None:
        """Write a checkpoint now and wait until it is synced and stored."""
        try:
            await self._append_lines([], force_checkpoint=True)
        except AuditWriteError:
            self._arm_checkpoint_timer(retry=True)
            return
        if self._checkpoint_store is not None:
            await self._checkpoint_store

    def _failed(self, exc: OSError) -> AuditWriteError:
        """Log a failure (at most every FAILURE_LOG_SECONDS) and return the error."""
        self._failures += 1
        now = time.monotonic()
        if now - self._last_failure_log >= FAILURE_LOG_SECONDS:
            logger.error(
                "audit device %s cannot write %s: %s (%d failures since the last "
                "message)",
                self.device,
                self.file_path,
                exc,
                self._failures,
            )
            self._failures = 0
            self._last_failure_log = now
        return AuditWriteError(f"audit device {self.device} failed to write: {exc}")

    # -- group commit ----------------------------------------------------------

    async def _wait_synced(self, seq: int) -> None:
        if seq <= self._synced_seq:
            return
        future = asyncio.get_running_loop().create_future()
        self._sync_waiters.append((seq, future))
        if self._sync_task is None:
            self._sync_task = asyncio.create_task(
                self._sync_batches(), name=f"audit-sync-{self.device}"
            )
        await future

    async def _sync_batches(self) -> None:
        """fsync until no line waits; each fsync covers every line written."""
        if self._sync_thread is None:
            self._sync_thread = SyncThread(f"audit-sync-{self.device}")
        try:
            while self._sync_waiters:
                waiters, self._sync_waiters = self._sync_waiters, []
                target = self._head.seq
                retired, self._retired_fds = self._retired_fds, []
                try:
                    await self._sync_thread.run(self._sync_files, self._fd, retired)
                except OSError as exc:
                    error = self._failed(exc)
                    for _, future in waiters:
                        if not future.done():
                            future.set_exception(error)
                    continue
                self._synced_seq = max(self._synced_seq, target)
                for _, future in waiters:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._sync_task = None

    # -- checkpoints -------------------------------------------------------------

    def _store_after_sync(
        self, seq: int, checkpoint: dict[str, Any], head: ChainHead
    ) -> None:
        previous = self._checkpoint_store
        self._checkpoint_store = asyncio.create_task(
            self._store_checkpoint(previous, seq, checkpoint, head),
            name=f"audit-checkpoint-{self.device}",
        )

    async def _store_checkpoint(
        self,
        previous: asyncio.Task | None,
        seq: int,
        checkpoint: dict[str, Any],
        head: ChainHead,
    ) -> None:
        # A stored checkpoint must never be ahead of the disk, because one
        # that the disk lost would read as lines cut off the end.
        if previous is not None:
            await previous
        try:
            await self._wait_synced(seq)
        except AuditWriteError:
            return
        try:
            await self.on_checkpoint(checkpoint, head)
        except Exception:
            logger.exception(
                "storing the checkpoint of audit device %s failed", self.device
            )

    def _arm_checkpoint_timer(self, retry: bool = False) -> None:
        # Lines stay uncovered until a checkpoint signs them, so one is
        # written CHECKPOINT_INTERVAL after the last even when traffic stops.
        if self._checkpoint_timer is not None or self._closing:
            return
        elapsed = time.monotonic() - self._last_checkpoint
        delay = CHECKPOINT_INTERVAL if retry else CHECKPOINT_INTERVAL - elapsed
        self._checkpoint_timer = asyncio.get_running_loop().call_later(
            max(0.0, delay), self._checkpoint_due
        )

    def _checkpoint_due(self) -> None:
        self._checkpoint_timer = None
        if self._uncovered and not self._closing:
            self._idle_checkpoint = asyncio.create_task(self._write_checkpoint())

    # -- blocking part: inline for regular files, else in a thread ---------------

    def _append(
        self, entries: list[dict[str, Any]], force_checkpoint: bool
    ) -> Written | None:
        """Write entries, and a checkpoint when due, as chained lines.

        Returns the checkpoint written, if any, with its seq and the head
        after it. The chain state changes only when the write succeeded.
        """
        self._ensure_open()
        now_monotonic = time.monotonic()
        due = now_monotonic - self._last_checkpoint >= CHECKPOINT_INTERVAL
        with_checkpoint = force_checkpoint or (due and bool(self._uncovered or entries))
        seq, head = self._head.seq, self._head.hash
        lines: list[bytes] = []
        bodies = list(entries)
        if self._new_file:
            now = rfc3339(time.time())
            bodies.insert(0, {"time": now, "type": FILE_START, "device": self.device})
        for body in bodies:
            seq, head = self._chain(lines, seq, head, body)
        checkpoint = None
        if with_checkpoint:
            now = rfc3339(time.time())
            checkpoint = sign_checkpoint(
                self.signing_key, self.device, self.writer_id, seq, head, now
            )
            seq, head = self._chain(lines, seq, head, checkpoint)
        self._write_all(b"\n".join(lines) + b"\n")
        self._head = ChainHead(seq, head)
        self._new_file = False
        if checkpoint is None:
            self._uncovered += len(entries)
            return None
        self._uncovered = 0
        self._last_checkpoint = now_monotonic
        record = checkpoint | {"seq": seq, "writer": self.writer_id}
        return seq, record, self._head

    def _chain(
        self, lines: list[bytes], seq: int, head: str, body: dict[str, Any]
    ) -> tuple[int, str]:
        seq += 1
        line = orjson.dumps(
            {"seq": seq, "prev_hash": head, "writer": self.writer_id} | body
        )
        lines.append(line)
        return seq, line_hash(line)

    def _write_all(self, data: bytes) -> None:
        fd = self._fd
        assert fd is not None
        done = 0
        try:
            view = memoryview(data)
            while done < len(data):
                done += os.write(fd, view[done:])
        except OSError:
            # Cut a partial line off, so that the next one starts on a
            # clean line and the chain stays verifiable.
            if done and self._file_id is not None:
                _truncate(fd, os.fstat(fd).st_size - done)
            raise

    def _sync_files(self, current: int | None, retired: list[int]) -> None:
        """fsync the open file and the rotated ones, then close the rotated ones."""
        try:
            for fd in retired:
                self._sync(fd)
            if current is not None:
                self._sync(current)
        finally:
            for fd in retired:
                os.close(fd)

    def _sync(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno not in _UNSYNCABLE:
                raise

    def _ensure_open(self) -> None:
        if self.file_path == STDOUT:
            if self._fd is None:
                self._fd = 1
                self._new_file = True
                self._head = self._stored_head
            return
        if self._fd is not None and not self._replaced():
            return
        self._open_file()

    def _replaced(self) -> bool:
        """Return whether the path no longer names the open file.

        That happens when the file was rotated (renamed) or deleted.
        """
        if self._file_id is None:
            return False
        try:
            current = os.stat(self.file_path)
        except FileNotFoundError:
            return True
        return (current.st_dev, current.st_ino) != self._file_id

    def _open_file(self) -> None:
        if self.file_path == STDOUT:
            self._ensure_open()
            return
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.file_path, flags, self.mode or 0o600)
        opened = os.fstat(fd)
        regular = stat.S_ISREG(opened.st_mode)
        if regular and self.mode:
            os.fchmod(fd, self.mode)
        previous, self._fd = self._fd, fd
        self._file_id = (opened.st_dev, opened.st_ino) if regular else None
        if previous is not None:
            # Lines in the old file may still wait for an fsync that is
            # running in a thread right now, so the next fsync closes it.
            self._retired_fds.append(previous)
            logger.info(
                "audit device %s reopened %s (rotated or deleted)",
                self.device,
                self.file_path,
            )
        self._find_head(fd, regular)

    def _find_head(self, fd: int, regular: bool) -> None:
        """Continue from this writer's last line in the file, if it has one."""
        found = _last_line_of(fd, self.writer_id) if regular else None
        if found is not None and not self._extends_stored_head(fd, found):
            found = None
        if found is not None:
            self._head = found
            self._new_file = False
            return
        # A new or rotated file: continue from the chain head in memory, or
        # from the stored one after a restart.
        if self._head.seq == 0:
            self._head = self._stored_head
        self._new_file = True

    def _extends_stored_head(self, fd: int, found: ChainHead) -> bool:
        """Return whether the file still holds the checkpoint storage recorded.

        After a restart, a file cut or rewritten behind that checkpoint must
        not be continued, because the next checkpoint would sign the altered
        chain. The chain goes on from the stored checkpoint instead, so the
        break stays visible to `mssm audit verify`.
        """
        stored = self._stored_head
        if self._head.seq != 0 or stored.seq == 0:
            return True
        if found.seq >= stored.seq:
            if _hash_at(fd, self.writer_id, stored.seq) == stored.hash:
                return True
        logger.error(
            "audit device %s: %s no longer holds the checkpoint at seq %d that "
            "storage recorded; the file was cut or edited, and the chain goes on "
            "from that checkpoint",
            self.device,
            self.file_path,
            stored.seq,
        )
        return False


class SyncThread:
    """A thread that runs the fsyncs of one device for the event loop.

    A hop to it is a queue put and one call_soon_threadsafe back, far less
    Python than asyncio.to_thread, and a busy device pays it for every
    fsync, which can be as often as once per request.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def run(self, func: Callable[..., Any], *args: Any) -> asyncio.Future:
        """Run func(*args) in the thread; the future gets its result or error."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((loop, future, func, args))
        return future

    def stop(self) -> None:
        """End the thread once the jobs already queued have run."""
        self._jobs.put(None)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            loop, future, func, args = job
            try:
                outcome = (func(*args), None)
            except Exception as exc:
                outcome = (None, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:
                # The loop is closed: nobody waits for the result any more.
                return


def _settle(future: asyncio.Future, result: Any, error: Exception | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _truncate(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        logger.error("cannot cut a partial audit batch off: %s", exc)


def _last_line_of(fd: int, writer: str) -> ChainHead | None:
    """Return the head of writer's chain from the end of an open file.

    An incomplete last line (a crash during a write) is cut off first. Its
    client never got a response, because responses wait for the fsync.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    end = _complete_end(fd, size)
    return next(_heads_from_end(fd, end, writer), None)


def _hash_at(fd: int, writer: str, seq: int) -> str | None:
    """Return the hash of writer's line number seq, searching from the end."""
    for head in _heads_from_end(fd, os.fstat(fd).st_size, writer):
        if head.seq <= seq:
            return head.hash if head.seq == seq else None
    return None


def _heads_from_end(fd: int, end: int, writer: str) -> Iterator[ChainHead]:
    """Yield the heads of writer's lines before offset end, the last first."""
    offset, carry = end, b""
    while offset > 0:
        start = max(0, offset - TAIL_BLOCK)
        block = os.pread(fd, offset - start, start) + carry
        lines = block.split(b"\n")
        carry = lines.pop(0) if start > 0 else b""
        for raw in reversed([line for line in lines if line]):
            head = _head_of(raw, writer)
            if head is not None:
                yield head
        offset = start


def _complete_end(fd: int, size: int) -> int:
    last = os.pread(fd, 1, size - 1)
    if last == b"\n":
        return size
    tail = os.pread(fd, min(size, TAIL_BLOCK), max(0, size - TAIL_BLOCK))
    cut = size - len(tail) + tail.rfind(b"\n") + 1
    logger.warning("cutting an incomplete last line off the audit file")
    os.ftruncate(fd, cut)
    return cut


def _head_of(raw: bytes, writer: str) -> ChainHead | None:
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(line, dict) or line.get("writer") != writer:
        return None
    seq = line.get("seq")
    if not isinstance(seq, int):
        return None
    return ChainHead(seq, line_hash(raw))

"""The file audit writer: one task per device that batches lines, writes
them with one write and one fsync per batch (group commit), and extends the
hash chain and its signed checkpoints (see mssm.core.audit_chain).

A caller's write() returns once its line is in the file, and raises
AuditWriteError if the batch could not be written. The chain then stays at
its last written line, so a failed batch leaves no gap in it. A batch is
fsynced when it carries a checkpoint or a line written with sync=True.
Response lines are, so a request is answered only once both of its lines
are on disk. A request line is written but not synced before its request
runs, which keeps each request to one fsync wait.

NOTE: a power failure while a request runs can therefore lose that
request's line; it cannot lose the lines of an answered request.

The path is checked before every batch: when the file was renamed or
deleted (log rotation), the writer opens a new file at the path and starts
it with a file_start line that continues the chain.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable
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
    """A device failed to write a batch. The message names the device."""


@dataclass
class ChainHead:
    seq: int
    hash: str


GENESIS = ChainHead(0, GENESIS_HASH)
CheckpointHook = Callable[[dict[str, Any], ChainHead], Awaitable[None]]
# A queued line: its body, the caller's future, and whether it needs fsync.
Pending = tuple[dict[str, Any], asyncio.Future, bool]


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
        self._head = GENESIS
        self._stored_head = GENESIS
        self._new_file = False
        self._uncovered = 0
        self._last_checkpoint = 0.0
        self._pending: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False
        self._failures = 0
        self._last_failure_log = 0.0

    # -- lifecycle -------------------------------------------------------------

    async def open(self, stored_head: ChainHead | None) -> None:
        """Open the file, find the chain head and write a first checkpoint.

        A failure to open or write is logged, not raised: the device then
        fails each batch until the path works again.
        """
        self._stored_head = stored_head or GENESIS
        try:
            await asyncio.to_thread(self._open_file)
            await self._flush([], force_checkpoint=True)
        except OSError as exc:
            logger.error(
                "audit device %s cannot open %s: %s", self.device, self.file_path, exc
            )
        self._task = asyncio.create_task(self._run(), name=f"audit-{self.device}")

    async def close(self) -> None:
        """Write what is queued and a final checkpoint, then close the file."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._uncovered:
            await self._flush([], force_checkpoint=True)
        if self._fd is not None and self.file_path != STDOUT:
            os.close(self._fd)
        self._fd = None

    # -- writing ---------------------------------------------------------------

    async def write(self, entry: dict[str, Any], sync: bool = True) -> None:
        """Append entry as one line; return once it is written (and synced)."""
        if self._closing:
            raise AuditWriteError(f"audit device {self.device} is closing")
        future = asyncio.get_running_loop().create_future()
        self._pending.append((entry, future, sync))
        self._wakeup.set()
        await future

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._idle_timeout()):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            await self._flush(batch, force_checkpoint=False)
            if self._closing and not self._pending:
                return

    def _idle_timeout(self) -> float | None:
        # Sleep until a checkpoint falls due, or until the next write.
        if not self._uncovered:
            return None
        elapsed = time.monotonic() - self._last_checkpoint
        return max(0.0, CHECKPOINT_INTERVAL - elapsed)

    async def _flush(self, batch: list[Pending], force_checkpoint: bool) -> None:
        due = time.monotonic() - self._last_checkpoint >= CHECKPOINT_INTERVAL
        checkpoint = bool(force_checkpoint or (due and (self._uncovered or batch)))
        if not batch and not checkpoint:
            return
        entries = [entry for entry, _, _ in batch]
        sync = checkpoint or any(wants_sync for _, _, wants_sync in batch)
        try:
            written = await asyncio.to_thread(self._append, entries, checkpoint, sync)
        except OSError as exc:
            self._fail(batch, exc)
            return
        for _, future, _ in batch:
            if not future.done():
                future.set_result(None)
        if written is not None:
            await self._checkpoint_written(*written)

    def _fail(self, batch: list[Pending], exc: OSError) -> None:
        error = AuditWriteError(f"audit device {self.device} failed to write: {exc}")
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(error)
        self._failures += 1
        now = time.monotonic()
        if now - self._last_failure_log >= FAILURE_LOG_SECONDS:
            logger.error(
                "audit device %s cannot write %s: %s (%d failed batches since "
                "the last message)",
                self.device,
                self.file_path,
                exc,
                self._failures,
            )
            self._failures = 0
            self._last_failure_log = now

    async def _checkpoint_written(
        self, checkpoint: dict[str, Any], head: ChainHead
    ) -> None:
        self._last_checkpoint = time.monotonic()
        try:
            await self.on_checkpoint(checkpoint, head)
        except Exception:
            logger.exception(
                "storing the checkpoint of audit device %s failed", self.device
            )

    # -- blocking part, run in a thread -----------------------------------------

    def _append(
        self, entries: list[dict[str, Any]], with_checkpoint: bool, sync: bool = True
    ) -> tuple[dict[str, Any], ChainHead] | None:
        """Write entries (and a checkpoint) as chained lines, then fsync if sync.

        Returns the checkpoint written, if any, with the head after it. The
        chain state changes only when the write and fsync succeeded.
        """
        self._ensure_open()
        seq, head = self._head.seq, self._head.hash
        lines: list[bytes] = []
        now = rfc3339(time.time())
        bodies = list(entries)
        if self._new_file:
            bodies.insert(0, {"time": now, "type": FILE_START, "device": self.device})
        checkpoint = None
        for body in bodies:
            seq, head = self._chain(lines, seq, head, body)
        if with_checkpoint:
            checkpoint = sign_checkpoint(
                self.signing_key, self.device, self.writer_id, seq, head, now
            )
            seq, head = self._chain(lines, seq, head, checkpoint)
        self._write_all(b"\n".join(lines) + b"\n", sync)
        self._head = ChainHead(seq, head)
        self._new_file = False
        self._uncovered = 0 if checkpoint else self._uncovered + len(entries)
        if checkpoint is None:
            return None
        return checkpoint | {"seq": seq, "writer": self.writer_id}, self._head

    def _chain(
        self, lines: list[bytes], seq: int, head: str, body: dict[str, Any]
    ) -> tuple[int, str]:
        seq += 1
        line = orjson.dumps(
            {"seq": seq, "prev_hash": head, "writer": self.writer_id} | body
        )
        lines.append(line)
        return seq, line_hash(line)

    def _write_all(self, data: bytes, sync: bool) -> None:
        fd = self._fd
        assert fd is not None
        regular = self._is_regular(fd)
        start = os.lseek(fd, 0, os.SEEK_END) if regular else 0
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if sync:
                self._sync(fd)
        except OSError:
            # Cut a partial batch off, so that the next batch starts on a
            # clean line and the chain stays verifiable.
            if regular:
                _truncate(fd, start)
            raise

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
        assert self._fd is not None
        if not self._is_regular(self._fd):
            return False
        try:
            current = os.stat(self.file_path)
        except FileNotFoundError:
            return True
        opened = os.fstat(self._fd)
        return (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino)

    def _open_file(self) -> None:
        if self.file_path == STDOUT:
            self._ensure_open()
            return
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.file_path, flags, self.mode or 0o600)
        if self._is_regular(fd) and self.mode:
            os.fchmod(fd, self.mode)
        previous, self._fd = self._fd, fd
        if previous is not None:
            os.close(previous)
            logger.info(
                "audit device %s reopened %s (rotated or deleted)",
                self.device,
                self.file_path,
            )
        self._find_head(fd)

    def _find_head(self, fd: int) -> None:
        """Continue from this writer's last line in the file, if it has one."""
        found = _last_line_of(fd, self.writer_id) if self._is_regular(fd) else None
        if found is not None:
            self._head = found
            self._new_file = False
            return
        # A new or rotated file: continue from the chain head in memory, or
        # from the stored one after a restart.
        if self._head.seq == 0:
            self._head = self._stored_head
        self._new_file = True

    @staticmethod
    def _is_regular(fd: int) -> bool:
        return stat.S_ISREG(os.fstat(fd).st_mode)


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
    offset, carry = end, b""
    while offset > 0:
        start = max(0, offset - TAIL_BLOCK)
        block = os.pread(fd, offset - start, start) + carry
        lines = block.split(b"\n")
        carry = lines.pop(0) if start > 0 else b""
        for raw in reversed([line for line in lines if line]):
            head = _head_of(raw, writer)
            if head is not None:
                return head
        offset = start
    return None


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

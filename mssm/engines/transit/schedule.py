"""Scheduled rotation: keys with auto_rotate_period get a new version when
the period has passed since their latest version was created.

The due time derives from the stored creation time of the latest version,
so it survives restarts: a rotation that fell due while the server was down
or sealed happens when the engine starts at the next unseal. Time comes
from the core's clock, which tests may replace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mssm.engines.transit import TransitEngine

logger = logging.getLogger(__name__)

# The longest sleep between checks, so that a changed clock or a key written
# by another process is noticed within this many seconds.
CHECK_INTERVAL = 60.0
MIN_DELAY = 1.0


class RotationScheduler:
    # NOTE: every node that mounts the engine runs its own scheduler; the
    # per-key lock and the due check prevent a double rotation only within
    # one process.

    def __init__(self, engine: TransitEngine, interval: float = CHECK_INTERVAL):
        self.engine = engine
        self.interval = interval
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Rotate what is overdue, then keep checking in a background task."""
        next_due = await self._run_logged()
        mount = self.engine.ctx.mount.path
        self._task = asyncio.create_task(self._loop(next_due), name=f"rotation {mount}")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def wake(self) -> None:
        """Recompute the next due time now, after a key or its period changed."""
        self._wake.set()

    async def run_due(self) -> tuple[list[str], float | None]:
        """Rotate every key that is due; return their names and the next due time."""
        store = self.engine.store
        now = self.engine.now()
        rotated: list[str] = []
        upcoming: list[float] = []
        for name in await store.names():
            if await self._rotate_if_due(name, now):
                rotated.append(name)
            policy = await store.get(name)
            due = policy.next_rotation_time() if policy else None
            if due is not None:
                upcoming.append(due)
        return rotated, min(upcoming, default=None)

    async def _rotate_if_due(self, name: str, now: float) -> bool:
        try:
            policy = await self.engine.store.rotate(name, now, only_if_due=True)
        except Exception:
            logger.exception("scheduled rotation of key %s failed", name)
            return False
        if policy is None:
            return False
        logger.info(
            "rotated key %s on schedule to version %d", name, policy.latest_version
        )
        return True

    async def _run_logged(self) -> float | None:
        try:
            _, next_due = await self.run_due()
        except Exception:
            logger.exception("scheduled rotation check failed")
            return None
        return next_due

    async def _loop(self, next_due: float | None) -> None:
        while True:
            await self._sleep(self._delay(next_due))
            next_due = await self._run_logged()

    def _delay(self, next_due: float | None) -> float:
        if next_due is None:
            return self.interval
        # The floor keeps a rotation that keeps failing from spinning the loop.
        return min(self.interval, max(MIN_DELAY, next_due - self.engine.now()))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()

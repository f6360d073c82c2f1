"""Scheduled rotation inside one process, with a clock the test moves: the
background task rotates a due key, and a rotation that fell due while the
core was sealed happens when it is unsealed again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mssm.core.config import Config
from mssm.core.core import Core
from mssm.core.mounts import MountEntry
from mssm.core.request import READ, UPDATE, Request
from mssm.storage.inmem import InmemBackend

ROOT_TOKEN = "hvs.schedule-test-root"
HOUR = 3600


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(self, core: Core, share: bytes, clock: FakeClock) -> None:
        self.core = core
        self.share = share
        self.clock = clock

    @property
    def engine(self):  # noqa: ANN201
        return self.core.engines["transit/"]

    async def call(self, operation: str, path: str, data: dict | None = None):  # noqa: ANN201
        request = Request(operation, path, data or {}, client_token=ROOT_TOKEN)
        return await self.core.handle(request)

    async def latest(self, name: str) -> int:
        response = await self.call(READ, f"transit/keys/{name}")
        return response.data["latest_version"]

    async def reseal(self) -> None:
        await self.core.seal()
        await self.core.seal_manager.submit_share(self.share)
        await self.core.post_unseal()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    clock = FakeClock()
    core = Core(Config(), InmemBackend())
    core.clock = clock
    shares = await core.seal_manager.initialize(1, 1)
    await core.seal_manager.submit_share(shares[0])
    await core.post_unseal()
    await core.tokens.create_root(token_id=ROOT_TOKEN)
    await core.mount(MountEntry(path="transit/", type="transit"))
    yield Harness(core, shares[0], clock)
    await core.seal()


async def wait_for_version(harness: Harness, name: str, expected: int) -> int:
    for _ in range(100):
        latest = await harness.latest(name)
        if latest >= expected:
            return latest
        await asyncio.sleep(0.02)
    return await harness.latest(name)


async def test_background_task_rotates_due_key(harness: Harness) -> None:
    body = {"type": "ed25519", "auto_rotate_period": "1h"}
    await harness.call(UPDATE, "transit/keys/auto", body)
    harness.clock.now += HOUR - 1
    harness.engine.scheduler.wake()
    await asyncio.sleep(0.05)
    assert await harness.latest("auto") == 1

    harness.clock.now += 2
    harness.engine.scheduler.wake()
    assert await wait_for_version(harness, "auto", 2) == 2


async def test_rotation_counts_from_new_version(harness: Harness) -> None:
    body = {"type": "ecdsa-p256", "auto_rotate_period": "2h"}
    await harness.call(UPDATE, "transit/keys/chain", body)
    harness.clock.now += 2 * HOUR
    harness.engine.scheduler.wake()
    assert await wait_for_version(harness, "chain", 2) == 2

    harness.clock.now += HOUR
    harness.engine.scheduler.wake()
    await asyncio.sleep(0.05)
    assert await harness.latest("chain") == 2


async def test_overdue_rotation_happens_at_unseal(harness: Harness) -> None:
    body = {"type": "ed25519", "auto_rotate_period": "1h"}
    await harness.call(UPDATE, "transit/keys/sealed", body)
    await harness.core.seal()

    harness.clock.now += 5 * HOUR
    await harness.core.seal_manager.submit_share(harness.share)
    await harness.core.post_unseal()

    # One rotation catches up, however many periods were missed.
    assert await harness.latest("sealed") == 2
    read = await harness.call(READ, "transit/keys/sealed")
    created = read.data["keys"]["2"]["creation_time"]
    assert created.startswith("2027-01-15T")


async def test_disabled_period_never_rotates(harness: Harness) -> None:
    await harness.call(UPDATE, "transit/keys/manual", {"type": "ed25519"})
    harness.clock.now += 1000 * HOUR
    await harness.reseal()
    assert await harness.latest("manual") == 1


async def test_config_change_wakes_scheduler(harness: Harness) -> None:
    await harness.call(UPDATE, "transit/keys/later", {"type": "ed25519"})
    harness.clock.now += 10 * HOUR
    config = {"auto_rotate_period": "1h"}
    await harness.call(UPDATE, "transit/keys/later/config", config)
    assert await wait_for_version(harness, "later", 2) == 2

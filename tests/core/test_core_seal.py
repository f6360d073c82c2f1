"""The core while sealed: only the seal paths respond, and the barrier keeps
no key material in memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from mssm.core import core as core_module
from mssm.core.config import parse_config
from mssm.core.core import Core
from mssm.core.errors import Sealed
from mssm.core.mounts import MountEntry
from mssm.core.request import READ, UPDATE, Request
from mssm.storage.inmem import InmemBackend


@pytest.fixture
async def started() -> tuple[Core, list[bytes]]:
    """An unsealed core on in-memory storage and its three key shares."""
    core = Core(parse_config({"listener": {"tls_disable": True}}), InmemBackend())
    shares = await core.seal_manager.initialize(3, 2)
    for share in shares[:2]:
        await core.seal_manager.submit_share(share)
    await core.post_unseal()
    return core, shares


@pytest.fixture
def core(started: tuple[Core, list[bytes]]) -> Core:
    return started[0]


async def test_seal_drops_every_key(core: Core) -> None:
    await core.barrier.put("logical/x/k", b"value")
    await core.seal()

    assert core.sealed is True
    assert core.barrier._terms == {}
    assert core.barrier._active is None
    assert core.barrier._root_key is None
    assert core.engines == {}
    assert core.seal_manager.progress == []


async def test_storage_restored_while_sealed_is_read_after_unseal(
    started: tuple[Core, list[bytes]],
) -> None:
    core, shares = started
    await core.barrier.put("logical/x/k", b"before")
    assert await core.barrier.get("logical/x/k") == b"before"
    backend = core.cache.backend if core.cache is not None else core.backend
    restored = core.barrier.encrypt("logical/x/k", b"restored")
    await core.seal()
    # An operator restores storage from a backup while the core is sealed.
    await backend.put("logical/x/k", restored)
    for share in shares[:2]:
        await core.seal_manager.submit_share(share)
    assert await core.barrier.get("logical/x/k") == b"restored"


@pytest.mark.parametrize(
    ("operation", "path"),
    [
        (READ, "sys/mounts"),
        (READ, "sys/key-status"),
        (UPDATE, "sys/rotate"),
        (UPDATE, "sys/seal"),
        (READ, "sys/rekey/init"),
        (READ, "secret/data/k"),
        (READ, "unknown/path"),
    ],
)
async def test_sealed_core_rejects_other_paths(
    core: Core, operation: str, path: str
) -> None:
    await core.seal()
    with pytest.raises(Sealed):
        await core.handle(Request(operation=operation, path=path))


async def test_sealed_core_answers_seal_status(core: Core) -> None:
    await core.seal()
    response = await core.handle(Request(operation=READ, path="sys/seal-status"))
    assert response.raw_body is not None
    assert b'"sealed":true' in response.raw_body


async def test_unseal_after_seal_restores_data(
    started: tuple[Core, list[bytes]],
) -> None:
    core, shares = started
    await core.barrier.put("logical/x/k", b"value")
    await core.seal()
    for share in shares[1:3]:
        await core.seal_manager.submit_share(share)
    await core.post_unseal()
    assert await core.barrier.get("logical/x/k") == b"value"


async def test_signature_finished_after_seal_withheld(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sign request's request line waits for its response line. When the
    # core seals while the request runs, the audit devices close and neither
    # line is written, so the signatures must not be returned either.
    log = tmp_path / "audit.log"
    device = {"type": "file", "path": "file", "options": {"file_path": str(log)}}
    config = parse_config({"listener": {"tls_disable": True}, "audit": [device]})
    core = Core(config, InmemBackend())
    shares = await core.seal_manager.initialize(1, 1)
    await core.seal_manager.submit_share(shares[0])
    await core.post_unseal()
    root = await core.tokens.create_root()
    await core.mount(MountEntry(path="transit/", type="transit"))
    await core.handle(
        Request(UPDATE, "transit/keys/k", {"type": "rsa-2048"}, client_token=root)
    )

    batch = {"batch_input": [{"input": "aGk="}] * 400}
    signing = asyncio.create_task(
        core.handle(
            Request(UPDATE, "transit/sign/k", batch, "sign-1", client_token=root)
        )
    )
    await asyncio.sleep(0.05)
    assert not signing.done()
    monkeypatch.setattr(core_module, "SEAL_DRAIN_SECONDS", 0.0)
    await core.seal()
    with pytest.raises(Sealed):
        await signing

    logged = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    ids = {line.get("request", {}).get("id") for line in logged}
    assert "sign-1" not in ids

"""The barrier's promises: every value encrypted and bound to its path, old
keyring terms still readable after a rotation, and no key held while sealed."""

from __future__ import annotations

import struct

import pytest

from mssm.core.barrier import (
    KEYRING_PATH,
    ROOT_KEY_PATH,
    Barrier,
    BarrierDecryptError,
    KeyTerm,
    SealedError,
)
from mssm.crypto import aead
from mssm.storage.inmem import InmemBackend


@pytest.fixture
async def unsealed() -> tuple[Barrier, bytes]:
    barrier = Barrier(InmemBackend())
    unseal_key = aead.generate_key()
    await barrier.initialize(unseal_key)
    assert await barrier.unseal(unseal_key) is True
    return barrier, unseal_key


def stored_term(blob: bytes) -> int:
    return struct.unpack_from(">I", blob)[0]


async def test_value_round_trips(unsealed: tuple[Barrier, bytes]) -> None:
    barrier, _ = unsealed
    await barrier.put("logical/x/secret", b"pepper-value")
    assert await barrier.get("logical/x/secret") == b"pepper-value"


async def test_storage_holds_no_plaintext(unsealed: tuple[Barrier, bytes]) -> None:
    barrier, _ = unsealed
    await barrier.put("logical/x/secret", b"pepper-value")
    raw = await barrier.backend.get("logical/x/secret")
    assert raw is not None
    assert b"pepper-value" not in raw


async def test_ciphertext_moved_to_other_path_fails(
    unsealed: tuple[Barrier, bytes],
) -> None:
    barrier, _ = unsealed
    await barrier.put("logical/a/admin", b"admin secret")
    await barrier.put("logical/a/guest", b"guest secret")
    admin_blob = await barrier.backend.get("logical/a/admin")
    assert admin_blob is not None
    await barrier.backend.put("logical/a/guest", admin_blob)

    with pytest.raises(BarrierDecryptError, match="failed authentication"):
        await barrier.get("logical/a/guest")


async def test_tampered_ciphertext_fails(unsealed: tuple[Barrier, bytes]) -> None:
    barrier, _ = unsealed
    await barrier.put("k", b"value")
    blob = bytearray(await barrier.backend.get("k") or b"")
    blob[-1] ^= 0x01
    await barrier.backend.put("k", bytes(blob))

    with pytest.raises(BarrierDecryptError):
        await barrier.get("k")


async def test_rotate_adds_term_and_old_term_decrypts(
    unsealed: tuple[Barrier, bytes],
) -> None:
    barrier, _ = unsealed
    await barrier.put("before", b"written under term 1")
    new_term = await barrier.rotate()
    await barrier.put("after", b"written under term 2")

    assert new_term.term == 2
    assert barrier.key_status().term == 2
    assert stored_term(await barrier.backend.get("before") or b"") == 1
    assert stored_term(await barrier.backend.get("after") or b"") == 2
    assert await barrier.get("before") == b"written under term 1"
    assert await barrier.get("after") == b"written under term 2"


async def test_rotated_keyring_survives_seal(unsealed: tuple[Barrier, bytes]) -> None:
    barrier, unseal_key = unsealed
    await barrier.put("before", b"term 1")
    await barrier.rotate()
    await barrier.rotate()
    barrier.seal()

    assert await barrier.unseal(unseal_key) is True
    assert barrier.key_status().term == 3
    assert await barrier.get("before") == b"term 1"


async def test_unknown_term_fails(unsealed: tuple[Barrier, bytes]) -> None:
    barrier, _ = unsealed
    await barrier.put("k", b"value")
    blob = await barrier.backend.get("k") or b""
    await barrier.backend.put("k", struct.pack(">I", 99) + blob[4:])

    with pytest.raises(BarrierDecryptError, match="unknown keyring term 99"):
        await barrier.get("k")


async def test_sealed_barrier_holds_no_key(unsealed: tuple[Barrier, bytes]) -> None:
    barrier, _ = unsealed
    await barrier.put("k", b"value")
    barrier.seal()

    assert barrier.sealed is True
    assert barrier._terms == {}
    assert barrier._active is None
    assert barrier._root_key is None
    with pytest.raises(SealedError):
        await barrier.get("k")
    with pytest.raises(SealedError):
        await barrier.put("k", b"other")
    with pytest.raises(SealedError):
        barrier.key_status()


async def test_initialize_leaves_barrier_sealed() -> None:
    barrier = Barrier(InmemBackend())
    await barrier.initialize(aead.generate_key())
    assert barrier.sealed is True


async def test_wrong_unseal_key_is_rejected(unsealed: tuple[Barrier, bytes]) -> None:
    barrier, _ = unsealed
    barrier.seal()
    assert await barrier.unseal(aead.generate_key()) is False
    assert barrier.sealed is True


async def test_replaced_unseal_key_retires_old_one(
    unsealed: tuple[Barrier, bytes],
) -> None:
    barrier, old_key = unsealed
    await barrier.put("k", b"kept across rekey")
    new_key = aead.generate_key()
    await barrier.replace_unseal_key(old_key, new_key)
    barrier.seal()

    assert await barrier.unseal(old_key) is False
    assert await barrier.unseal(new_key) is True
    assert await barrier.get("k") == b"kept across rekey"


async def test_key_material_is_encrypted_at_rest(
    unsealed: tuple[Barrier, bytes],
) -> None:
    barrier, unseal_key = unsealed
    term_key = barrier.key_status().key
    root_blob = await barrier.backend.get(ROOT_KEY_PATH) or b""
    keyring_blob = await barrier.backend.get(KEYRING_PATH) or b""

    assert unseal_key not in root_blob
    assert term_key not in keyring_blob
    assert term_key.hex().encode() not in keyring_blob


def test_key_term_repr_hides_key() -> None:
    key = bytes.fromhex("ab" * 32)
    text = repr(KeyTerm(1, key, 0.0))
    assert "ab" * 4 not in text
    assert str(key) not in text

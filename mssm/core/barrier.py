"""The barrier: every value that reaches storage is encrypted here.

Layout of the key hierarchy: shares of the unseal key (held by operators)
rebuild the unseal key; the unseal key decrypts the root key stored at
ROOT_KEY_PATH; the root key decrypts the keyring at KEYRING_PATH; each
keyring term holds a data key that encrypts ordinary values. Each stored
value starts with its 4-byte term, so old terms still decrypt after
`sys/rotate`. The storage key is the associated data of every ciphertext, so
a value copied to another path fails authentication.
"""

from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass, field

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mssm.crypto import aead
from mssm.storage.base import Backend

logger = logging.getLogger(__name__)

SEAL_CONFIG_PATH = "core/seal-config"
ROOT_KEY_PATH = "core/root-key"
KEYRING_PATH = "core/keyring"
_TERM = struct.Struct(">I")


class SealedError(Exception):
    """The barrier holds no key: storage cannot be read or written."""


class BarrierDecryptError(Exception):
    """A stored value failed authentication under the keyring."""


@dataclass
class KeyTerm:
    term: int
    key: bytes = field(repr=False)
    install_time: float
    cipher: AESGCM = field(init=False, repr=False)
    # Values encrypted under this term since this process unsealed; Vault
    # reports the count in sys/key-status.
    encryptions: int = field(default=0, init=False, compare=False)

    def __post_init__(self) -> None:
        self.cipher = AESGCM(self.key)


class Barrier:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._terms: dict[int, KeyTerm] = {}
        self._active: KeyTerm | None = None
        self._root_key: bytes | None = None

    @property
    def sealed(self) -> bool:
        return self._active is None

    # -- key hierarchy ---------------------------------------------------

    async def initialize(self, unseal_key: bytes) -> None:
        """Create a root key and the first keyring term, stored under unseal_key."""
        root_key = aead.generate_key()
        sealed_root = aead.seal(unseal_key, root_key, ROOT_KEY_PATH.encode())
        self._root_key = root_key
        self._terms = {1: KeyTerm(1, aead.generate_key(), time.time())}
        await self.backend.put(ROOT_KEY_PATH, sealed_root)
        await self._store_keyring()
        self._forget()

    async def unseal(self, unseal_key: bytes) -> bool:
        """Load the keyring with unseal_key; return False if the key is wrong."""
        sealed_root = await self.backend.get(ROOT_KEY_PATH)
        if sealed_root is None:
            return False
        try:
            root_key = aead.open_sealed(unseal_key, sealed_root, ROOT_KEY_PATH.encode())
        except aead.DecryptionError:
            return False
        await self._load_keyring(root_key)
        return True

    async def _load_keyring(self, root_key: bytes) -> None:
        blob = await self.backend.get(KEYRING_PATH)
        if blob is None:
            raise BarrierDecryptError("keyring missing from storage")
        plain = aead.open_sealed(root_key, blob, KEYRING_PATH.encode())
        terms = {}
        for entry in orjson.loads(plain)["terms"]:
            key = bytes.fromhex(entry["key"])
            terms[entry["term"]] = KeyTerm(entry["term"], key, entry["install_time"])
        self._root_key = root_key
        self._terms = terms
        self._active = terms[max(terms)]

    async def reload_keyring(self) -> None:
        """Re-read the keyring, for a term added by another node."""
        if self._root_key is not None:
            await self._load_keyring(self._root_key)

    async def verify_unseal_key(self, unseal_key: bytes) -> bool:
        sealed_root = await self.backend.get(ROOT_KEY_PATH)
        if sealed_root is None:
            return False
        try:
            aead.open_sealed(unseal_key, sealed_root, ROOT_KEY_PATH.encode())
        except aead.DecryptionError:
            return False
        return True

    async def replace_unseal_key(self, old_key: bytes, new_key: bytes) -> None:
        """Re-encrypt the root key under new_key; old shares stop working."""
        sealed_root = await self.backend.get(ROOT_KEY_PATH)
        root_key = aead.open_sealed(old_key, sealed_root or b"", ROOT_KEY_PATH.encode())
        resealed = aead.seal(new_key, root_key, ROOT_KEY_PATH.encode())
        await self.backend.put(ROOT_KEY_PATH, resealed)

    async def rotate(self) -> KeyTerm:
        """Add a keyring term; new writes use it, old terms still decrypt."""
        self._require_key()
        term = max(self._terms) + 1
        self._terms[term] = KeyTerm(term, aead.generate_key(), time.time())
        await self._store_keyring()
        self._active = self._terms[term]
        logger.info("barrier keyring rotated to term %d", term)
        return self._active

    async def _store_keyring(self) -> None:
        entries = [
            {"term": t.term, "key": t.key.hex(), "install_time": t.install_time}
            for t in self._terms.values()
        ]
        plain = orjson.dumps({"terms": entries})
        assert self._root_key is not None
        blob = aead.seal(self._root_key, plain, KEYRING_PATH.encode())
        await self.backend.put(KEYRING_PATH, blob)

    def seal(self) -> None:
        self._forget()

    def _forget(self) -> None:
        self._terms = {}
        self._active = None
        self._root_key = None

    def key_status(self) -> KeyTerm:
        self._require_key()
        assert self._active is not None
        return self._active

    def _require_key(self) -> None:
        if self._active is None:
            raise SealedError

    # -- encrypted values ------------------------------------------------

    def encrypt(self, path: str, plaintext: bytes) -> bytes:
        active = self._active
        if active is None:
            raise SealedError
        active.encryptions += 1
        return _TERM.pack(active.term) + aead.seal(
            active.cipher, plaintext, path.encode()
        )

    def decrypt(self, path: str, blob: bytes) -> bytes:
        if self._active is None:
            raise SealedError
        if len(blob) < _TERM.size:
            raise BarrierDecryptError(f"value at {path} is too short to decrypt")
        (term,) = _TERM.unpack_from(blob)
        key_term = self._terms.get(term)
        if key_term is None:
            raise BarrierDecryptError(f"unknown keyring term {term} at {path}")
        try:
            return aead.open_sealed(key_term.cipher, blob[_TERM.size :], path.encode())
        except aead.DecryptionError:
            raise BarrierDecryptError(
                f"value at {path} failed authentication"
            ) from None

    async def get(self, path: str) -> bytes | None:
        self._require_key()
        blob = await self.backend.get(path)
        return None if blob is None else self.decrypt(path, blob)

    async def put(self, path: str, value: bytes) -> None:
        await self.backend.put(path, self.encrypt(path, value))

    async def put_if(self, path: str, value: bytes, expected: bytes | None) -> bool:
        """Write value only if the current plaintext equals expected."""
        current_blob = await self.backend.get(path)
        current = None if current_blob is None else self.decrypt(path, current_blob)
        if current != expected:
            return False
        return await self.backend.put_if(path, self.encrypt(path, value), current_blob)

    async def delete(self, path: str) -> None:
        self._require_key()
        await self.backend.delete(path)

    async def list(self, prefix: str) -> list[str]:
        self._require_key()
        return await self.backend.list(prefix)

    async def delete_prefix(self, prefix: str) -> None:
        self._require_key()
        await self.backend.delete_prefix(prefix)


class StorageView:
    """A barrier seen through a key prefix, handed to one engine or subsystem."""

    def __init__(self, barrier: Barrier, prefix: str) -> None:
        self.barrier = barrier
        self.prefix = prefix

    def sub_view(self, prefix: str) -> StorageView:
        return StorageView(self.barrier, self.prefix + prefix)

    async def get(self, key: str) -> bytes | None:
        return await self.barrier.get(self.prefix + key)

    async def get_json(self, key: str):  # noqa: ANN201
        raw = await self.barrier.get(self.prefix + key)
        return None if raw is None else orjson.loads(raw)

    async def put(self, key: str, value: bytes) -> None:
        await self.barrier.put(self.prefix + key, value)

    async def put_json(self, key: str, value: object) -> None:
        await self.barrier.put(self.prefix + key, orjson.dumps(value))

    async def put_if(self, key: str, value: bytes, expected: bytes | None) -> bool:
        return await self.barrier.put_if(self.prefix + key, value, expected)

    async def delete(self, key: str) -> None:
        await self.barrier.delete(self.prefix + key)

    async def list(self, prefix: str = "") -> list[str]:
        return await self.barrier.list(self.prefix + prefix)

    async def delete_all(self) -> None:
        await self.barrier.delete_prefix(self.prefix)

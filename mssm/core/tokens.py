"""Token store: token entries kept under a keyed hash of the token id.

The token id itself is never stored. Lookups hash the presented token with
HMAC-SHA256 under a salt key kept in the barrier, so a copy of storage does
not yield usable tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import string
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from mssm.core.barrier import StorageView

logger = logging.getLogger(__name__)

SERVICE_PREFIX = "hvs."
ROOT_TOKEN_RANDOM_CHARS = 24
TOKEN_RANDOM_CHARS = 24
_BASE62 = string.ascii_letters + string.digits


def generate_token_id(length: int = TOKEN_RANDOM_CHARS) -> str:
    """Return 'hvs.' and length base62 characters (24 give 142 bits)."""
    return SERVICE_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(length))


@dataclass
class TokenEntry:
    id_hash: str
    accessor: str
    policies: list[str]
    parent_hash: str = ""
    display_name: str = "token"
    meta: dict[str, str] = field(default_factory=dict)
    creation_time: float = field(default_factory=time.time)
    ttl: int = 0
    expire_time: float = 0.0
    explicit_max_ttl: int = 0
    num_uses: int = 0
    renewable: bool = False
    orphan: bool = False
    period: int = 0
    path: str = "auth/token/create"
    type: str = "service"
    role: str = ""

    @property
    def is_root(self) -> bool:
        return "root" in self.policies

    def expired(self, now: float) -> bool:
        return bool(self.expire_time) and now >= self.expire_time

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TokenStore:
    def __init__(self, storage: StorageView) -> None:
        self.storage = storage
        self._salt: bytes = b""
        self._cache: dict[str, TokenEntry] = {}

    async def load(self) -> None:
        salt = await self.storage.get("salt")
        if salt is None:
            salt = secrets.token_bytes(32)
            await self.storage.put("salt", salt)
        self._salt = salt
        self._cache = {}

    def hash_token(self, token_id: str) -> str:
        return hmac.digest(self._salt, token_id.encode(), hashlib.sha256).hex()

    async def create_root(self, display_name: str = "root", token_id: str = "") -> str:
        token_id = token_id or generate_token_id(ROOT_TOKEN_RANDOM_CHARS)
        entry = TokenEntry(
            id_hash=self.hash_token(token_id),
            accessor=secrets.token_urlsafe(18),
            policies=["root"],
            display_name=display_name,
            orphan=True,
            path="auth/token/root",
        )
        await self.store(entry)
        return token_id

    async def store(self, entry: TokenEntry) -> None:
        await self.storage.put_json(f"id/{entry.id_hash}", entry.to_dict())
        await self.storage.put_json(f"accessor/{entry.accessor}", entry.id_hash)
        self._cache[entry.id_hash] = entry

    async def lookup(
        self, token_id: str, now: float | None = None
    ) -> TokenEntry | None:
        """Return the live entry for token_id, or None if unknown or expired."""
        if not token_id:
            return None
        id_hash = self.hash_token(token_id)
        entry = await self.lookup_hash(id_hash)
        if entry is None:
            return None
        if entry.expired(time.time() if now is None else now):
            return None
        return entry

    async def lookup_hash(self, id_hash: str) -> TokenEntry | None:
        entry = self._cache.get(id_hash)
        if entry is not None:
            return entry
        raw = await self.storage.get_json(f"id/{id_hash}")
        if raw is None:
            return None
        entry = TokenEntry(**raw)
        self._cache[id_hash] = entry
        return entry

    async def revoke_hash(self, id_hash: str) -> None:
        entry = await self.lookup_hash(id_hash)
        self._cache.pop(id_hash, None)
        if entry is None:
            return
        await self.storage.delete(f"id/{id_hash}")
        await self.storage.delete(f"accessor/{entry.accessor}")

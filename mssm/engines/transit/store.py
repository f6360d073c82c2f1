"""Keys in storage and in memory.

Each key is one JSON record under policy/NAME in the mount's barrier view,
private versions included; nothing reaches storage unencrypted. Loaded keys
stay in memory with their parsed key objects, so a sign request parses no
key material. Changes take the key's lock, work on a copy and replace the
cached key only once the new record is stored.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections import defaultdict
from typing import TYPE_CHECKING

from mssm.core.errors import BadRequest
from mssm.engines.transit import asymmetric, symmetric
from mssm.engines.transit.keys import (
    AEAD,
    HMAC,
    HMAC_KEY_SIZE,
    RSA,
    KeyPolicy,
    KeyType,
    KeyVersion,
)

if TYPE_CHECKING:
    from mssm.core.barrier import StorageView

POLICY_PREFIX = "policy/"


class KeyStore:
    # NOTE: the cache assumes this process is the only writer for the mount.
    # Another worker or node that changes a key is not seen until this
    # process reloads it (at the next unseal).

    def __init__(self, storage: StorageView) -> None:
        self._storage = storage.sub_view(POLICY_PREFIX)
        self._cache: dict[str, KeyPolicy] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def lock(self, name: str) -> asyncio.Lock:
        return self._locks[name]

    async def get(self, name: str) -> KeyPolicy | None:
        policy = self._cache.get(name)
        if policy is not None:
            return policy
        raw = await self._storage.get_json(name)
        if raw is None:
            return None
        policy = KeyPolicy.from_json(raw)
        self._cache[name] = policy
        return policy

    async def require(self, name: str, missing: str = "key not found") -> KeyPolicy:
        """Return the key or raise a 400 with Vault's message for the path."""
        policy = await self.get(name)
        if policy is None:
            raise BadRequest(f"{missing}: no key named {name!r}")
        return policy

    async def names(self) -> list[str]:
        return sorted(await self._storage.list())

    async def save(self, policy: KeyPolicy) -> None:
        await self._storage.put_json(policy.name, policy.to_json())
        self._cache[policy.name] = policy

    async def delete(self, name: str) -> None:
        await self._storage.delete(name)
        self._cache.pop(name, None)

    def forget(self) -> None:
        self._cache.clear()

    async def rotate(
        self, name: str, now: float, only_if_due: bool = False
    ) -> KeyPolicy | None:
        """Add a version to the key; raise a 400 if there is no such key.

        With only_if_due, rotate only if the key's auto rotation is due,
        checked under the key's lock; return None if it was not.
        """
        async with self.lock(name):
            current = await self.require(name)
            if only_if_due and not current.rotation_due(now):
                return None
            updated = current.copy()
            number = updated.latest_version + 1
            updated.add_version(await new_version(updated, number, now))
            await self.save(updated)
        return updated


async def new_version(policy: KeyPolicy, number: int, now: float) -> KeyVersion:
    """Generate the key material for version number of policy."""
    kind = policy.type
    key, public_key, kid = await _material(kind, policy.key_size)
    activation = now + policy.publish_ahead if number > 1 else now
    return KeyVersion(
        number=number,
        creation_time=now,
        activation_time=activation,
        key=key,
        hmac_key=os.urandom(HMAC_KEY_SIZE),
        public_key=public_key,
        kid=kid,
    )


async def _material(kind: KeyType, key_size: int) -> tuple[bytes, bytes, str]:
    if kind.family == AEAD:
        return symmetric.generate(kind), b"", ""
    if kind.family == HMAC:
        # The id names the version in JWT headers without depending on the
        # secret, so it reveals nothing about it.
        return os.urandom(key_size or HMAC_KEY_SIZE), b"", secrets.token_urlsafe(16)
    if kind.family == RSA:
        loop = asyncio.get_running_loop()
        pool = asymmetric.crypto_pool()
        der = await loop.run_in_executor(pool, asymmetric.generate, kind)
    else:
        der = asymmetric.generate(kind)
    public = asymmetric.public_der(asymmetric.load_private(der))
    return der, public, ""


async def private_key(policy: KeyPolicy, version: KeyVersion) -> asymmetric.PrivateKey:
    """Return the parsed private key, parsing it once per version."""
    cached = version.cache.get("private")
    if cached is None:
        if policy.type.family == RSA:
            # Loading checks the RSA key's consistency, which takes a while.
            loop = asyncio.get_running_loop()
            pool = asymmetric.crypto_pool()
            cached = await loop.run_in_executor(
                pool, asymmetric.load_private, version.key
            )
        else:
            cached = asymmetric.load_private(version.key)
        version.cache["private"] = cached
    return cached


def public_key(version: KeyVersion) -> asymmetric.PublicKey:
    cached = version.cache.get("public")
    if cached is None:
        cached = asymmetric.load_public(version.public_key)
        version.cache["public"] = cached
    return cached

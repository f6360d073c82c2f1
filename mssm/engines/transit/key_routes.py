"""keys/: create, read, list, delete, configure, rotate and trim named keys."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mssm.core.errors import BadRequest, NotFound
from mssm.core.fields import BOOL, DURATION, INT, STRING, Field
from mssm.core.request import CREATE, DELETE, LIST, READ, UPDATE, Request, Response
from mssm.engines.base import Route
from mssm.engines.transit import asymmetric, jose
from mssm.engines.transit.keys import (
    DEFAULT_KEY_TYPE,
    HMAC,
    HMAC_KEY_SIZE,
    KEY_NAME_PATTERN,
    MAX_HMAC_KEY_SIZE,
    MIN_HMAC_KEY_SIZE,
    KeyPolicy,
    KeyVersion,
    key_type,
    rfc3339,
)
from mssm.engines.transit.store import new_version, public_key

if TYPE_CHECKING:
    from mssm.engines.transit import TransitEngine

logger = logging.getLogger(__name__)

NAME = f"(?P<name>{KEY_NAME_PATTERN})"
JWT_FIELDS = {
    "publish_ahead": Field(DURATION),
    "jwt_max_ttl": Field(DURATION),
    "jwt_issuer": Field(STRING),
    "jwt_algorithm": Field(STRING),
    "jwt_leeway": Field(DURATION),
    "jwks_max_age": Field(DURATION),
    "publish": Field(BOOL),
}
CREATE_FIELDS = {
    "type": Field(STRING),
    "exportable": Field(BOOL),
    "allow_plaintext_backup": Field(BOOL),
    "derived": Field(BOOL),
    "convergent_encryption": Field(BOOL),
    "auto_rotate_period": Field(DURATION),
    "key_size": Field(INT),
    "context": Field(STRING),
} | JWT_FIELDS
CONFIG_FIELDS = {
    "min_decryption_version": Field(INT),
    "min_encryption_version": Field(INT),
    "deletion_allowed": Field(BOOL),
    "exportable": Field(BOOL),
    "allow_plaintext_backup": Field(BOOL),
    "auto_rotate_period": Field(DURATION),
} | JWT_FIELDS
# Options that the create request passes on to the key's configuration.
_CREATE_OPTIONS = ("exportable", "allow_plaintext_backup", "auto_rotate_period")


class KeyPaths:
    def __init__(self, engine: TransitEngine) -> None:
        self.engine = engine
        self.store = engine.store

    def routes(self) -> list[Route]:
        return [
            Route("keys/?", {LIST: self.list_keys}),
            Route(
                f"keys/{NAME}/config",
                {UPDATE: self.configure},
                CONFIG_FIELDS,
            ),
            Route(f"keys/{NAME}/rotate", {UPDATE: self.rotate}, {}),
            Route(
                f"keys/{NAME}/trim",
                {UPDATE: self.trim},
                {"min_available_version": Field(INT)},
            ),
            Route(
                f"keys/{NAME}",
                {
                    READ: self.read,
                    CREATE: self.create,
                    UPDATE: self.create,
                    DELETE: self.delete,
                },
                CREATE_FIELDS,
            ),
        ]

    async def list_keys(self, req: Request, data: dict) -> dict:
        names = await self.store.names()
        if not names:
            raise NotFound()
        return {"keys": names}

    async def read(self, req: Request, data: dict) -> dict:
        policy = await self.store.get(data["name"])
        if policy is None:
            raise NotFound()
        return key_info(policy, self.engine.now())

    async def create(self, req: Request, data: dict) -> Response:
        name = data["name"]
        async with self.store.lock(name):
            existing = await self.store.get(name)
            if existing is not None:
                return Response(data=key_info(existing, self.engine.now()))
            policy, warnings = await self._new_policy(name, data)
            await self.store.save(policy)
        logger.info("created %s key %s", policy.type.name, name)
        self.engine.scheduler.wake()
        return Response(data=key_info(policy, self.engine.now()), warnings=warnings)

    async def _new_policy(self, name: str, data: dict) -> tuple[KeyPolicy, list[str]]:
        policy = new_policy(name, data)
        options = {k: data[k] for k in _CREATE_OPTIONS + tuple(JWT_FIELDS) if k in data}
        warnings = policy.configure(options)
        policy.add_version(await new_version(policy, 1, self.engine.now()))
        return policy, warnings

    async def delete(self, req: Request, data: dict) -> None:
        name = data["name"]
        async with self.store.lock(name):
            policy = await self.store.get(name)
            if policy is None:
                raise BadRequest(f"could not delete key: no key named {name!r}")
            if not policy.deletion_allowed:
                raise BadRequest(
                    f"deletion is not allowed for key {name!r}: set "
                    "deletion_allowed=true with keys/NAME/config first"
                )
            await self.store.delete(name)
        logger.info("deleted key %s", name)

    async def configure(self, req: Request, data: dict) -> Response:
        name = data["name"]
        async with self.store.lock(name):
            policy = await self.store.get(name)
            if policy is None:
                raise BadRequest(f"no existing key named {name!r} could be found")
            updated = policy.copy()
            warnings = updated.configure(data)
            updated.check_signing_bounds(self.engine.now())
            await self.store.save(updated)
        self.engine.scheduler.wake()
        info = key_info(updated, self.engine.now())
        return Response(data=info, warnings=warnings)

    async def rotate(self, req: Request, data: dict) -> dict:
        policy = await self.store.rotate(data["name"], self.engine.now())
        logger.info("rotated key %s to version %d", policy.name, policy.latest_version)
        self.engine.scheduler.wake()
        return key_info(policy, self.engine.now())

    async def trim(self, req: Request, data: dict) -> dict:
        if "min_available_version" not in data:
            raise BadRequest("missing min_available_version")
        name = data["name"]
        async with self.store.lock(name):
            policy = await self.store.require(name)
            updated = policy.copy()
            removed = updated.trim(data["min_available_version"])
            await self.store.save(updated)
        logger.info("trimmed key %s: deleted versions %s", name, removed)
        return key_info(updated, self.engine.now())


def new_policy(name: str, data: dict[str, Any]) -> KeyPolicy:
    """Build a key without versions from the create request's fields."""
    kind = key_type(data.get("type") or DEFAULT_KEY_TYPE)
    derived = data.get("derived", False)
    convergent = data.get("convergent_encryption", False)
    if derived and not kind.supports_derivation:
        raise BadRequest(f"key type {kind.name} does not support key derivation")
    if convergent and not derived:
        raise BadRequest("convergent_encryption requires derived=true")
    return KeyPolicy(
        name=name,
        type=kind,
        derived=derived,
        convergent_encryption=convergent,
        key_size=_key_size(kind.family, data.get("key_size")),
    )


def _key_size(family: str, requested: int | None) -> int:
    if family != HMAC:
        if requested:
            raise BadRequest("key_size is only valid for hmac keys")
        return 0
    size = requested or HMAC_KEY_SIZE
    if not MIN_HMAC_KEY_SIZE <= size <= MAX_HMAC_KEY_SIZE:
        raise BadRequest(
            f"invalid key_size {size}: HMAC keys are {MIN_HMAC_KEY_SIZE} to "
            f"{MAX_HMAC_KEY_SIZE} bytes"
        )
    return size


# -- key read ----------------------------------------------------------------


def key_info(policy: KeyPolicy, now: float) -> dict[str, Any]:
    """Return the key read: Vault's fields, then the JWT and schedule fields."""
    kind = policy.type
    info: dict[str, Any] = {
        "allow_plaintext_backup": policy.allow_plaintext_backup,
        "auto_rotate_period": policy.auto_rotate_period,
        "deletion_allowed": policy.deletion_allowed,
        "derived": policy.derived,
        "exportable": policy.exportable,
        "imported_key": False,
        "latest_version": policy.latest_version,
        "min_available_version": policy.min_available_version,
        "min_decryption_version": policy.min_decryption_version,
        "min_encryption_version": policy.min_encryption_version,
        "name": policy.name,
        "soft_deleted": False,
        "supports_decryption": kind.supports_encryption,
        "supports_derivation": kind.supports_derivation,
        "supports_encryption": kind.supports_encryption,
        "supports_signing": kind.supports_signing,
        "type": kind.name,
    }
    if kind.family == HMAC:
        info["key_size"] = policy.key_size
    else:
        info["keys"] = _versions(policy)
    if policy.derived:
        info["kdf"] = "hkdf_sha256"
        info["convergent_encryption"] = policy.convergent_encryption
        if policy.convergent_encryption:
            info["convergent_encryption_version"] = -1
    for name in ("backup_info", "restore_info"):
        if getattr(policy, name):
            info[name] = getattr(policy, name)
    if kind.jwt_algorithms:
        info |= _jwt_info(policy, now)
    return info


def _versions(policy: KeyPolicy) -> dict[str, Any]:
    # As in Vault, versions below min_decryption_version are not listed.
    readable = policy.readable_versions()
    if not policy.type.asymmetric:
        return {str(v.number): int(v.creation_time) for v in readable}
    return {str(v.number): _public_version(policy, v) for v in readable}


def _public_version(policy: KeyPolicy, version: KeyVersion) -> dict[str, Any]:
    return {
        "certificate_chain": "",
        "creation_time": rfc3339(version.creation_time),
        "name": policy.type.version_label,
        "public_key": asymmetric.public_text(policy.type, public_key(version)),
        "kid": jose.version_kid(policy, version),
        "activation_time": rfc3339(version.activation_time),
    }


def _jwt_info(policy: KeyPolicy, now: float) -> dict[str, Any]:
    pending = policy.pending_versions(now)
    rotation = policy.next_rotation_time()
    return {
        "signing_version": policy.current_version(now),
        "pending_activation_time": rfc3339(pending[0].activation_time)
        if pending
        else "",
        "next_rotation_time": rfc3339(rotation) if rotation else "",
        "publish_ahead": policy.publish_ahead,
        "jwt_max_ttl": policy.jwt_max_ttl,
        "jwt_issuer": policy.jwt_issuer,
        "jwt_algorithm": policy.jwt_alg,
        "jwt_leeway": policy.jwt_leeway,
        "jwks_max_age": policy.jwks_max_age,
        "publish": policy.publish,
    }

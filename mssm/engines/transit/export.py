"""export/: key material by version. Public keys are always exportable;
private, encryption and HMAC keys only when the key is `exportable`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mssm.core.errors import BadRequest, NotFound
from mssm.core.request import READ, Request
from mssm.engines.base import Route
from mssm.engines.transit import asymmetric
from mssm.engines.transit.encoding import encode_b64, is_decimal
from mssm.engines.transit.keys import (
    AEAD,
    HMAC,
    KEY_NAME_PATTERN,
    RSA,
    KeyPolicy,
    KeyVersion,
)
from mssm.engines.transit.store import private_key, public_key

if TYPE_CHECKING:
    from mssm.engines.transit import TransitEngine

EXPORT_TYPES = ("encryption-key", "signing-key", "hmac-key", "public-key")


class ExportPaths:
    def __init__(self, engine: TransitEngine) -> None:
        self.engine = engine
        self.store = engine.store

    def routes(self) -> list[Route]:
        pattern = (
            f"export/(?P<kind>[^/]+)/(?P<name>{KEY_NAME_PATTERN})"
            "(?:/(?P<version>[^/]+))?"
        )
        return [Route(pattern, {READ: self.export})]

    async def export(self, req: Request, data: dict) -> dict:
        kind = data["kind"]
        if kind not in EXPORT_TYPES:
            expected = ", ".join(EXPORT_TYPES)
            raise BadRequest(
                f"invalid export type {kind!r}: expected one of {expected}"
            )
        policy = await self.store.get(data["name"])
        if policy is None:
            raise NotFound()
        _check_exportable(policy, kind)
        keys = {}
        for version in _versions(policy, data.get("version")):
            keys[str(version.number)] = await _material(policy, version, kind)
        return {"name": policy.name, "type": policy.type.name, "keys": keys}


def _check_exportable(policy: KeyPolicy, kind: str) -> None:
    family = policy.type.family
    if kind == "public-key":
        if not policy.type.asymmetric:
            raise BadRequest(f"key type {policy.type.name} has no public key")
        return
    if not policy.exportable:
        raise BadRequest(
            "private key material is not exportable: the key was not created "
            "with exportable=true"
        )
    if kind == "encryption-key" and family not in (AEAD, RSA):
        raise BadRequest(f"key type {policy.type.name} has no encryption key")
    if kind == "signing-key" and not policy.type.asymmetric:
        raise BadRequest(f"key type {policy.type.name} has no signing key")


def _versions(policy: KeyPolicy, requested: str | None) -> list[KeyVersion]:
    if not requested:
        return policy.readable_versions()
    if requested == "latest":
        return [policy.versions[policy.latest_version]]
    if not is_decimal(requested):
        raise BadRequest(f"invalid version {requested!r}: expected a number or latest")
    number = int(requested)
    if number < policy.min_decryption_version:
        raise BadRequest(
            f"version {number} is below the key's min_decryption_version "
            f"{policy.min_decryption_version} and cannot be exported"
        )
    version = policy.versions.get(number)
    if version is None:
        raise BadRequest(f"version {number} does not exist")
    return [version]


async def _material(policy: KeyPolicy, version: KeyVersion, kind: str) -> str:
    if kind == "public-key":
        text = asymmetric.public_text(policy.type, public_key(version))
        return text.rstrip("\n")
    if kind == "hmac-key":
        key = version.key if policy.type.family == HMAC else version.hmac_key
        return encode_b64(key)
    if policy.type.family == AEAD:
        return encode_b64(version.key)
    private = await private_key(policy, version)
    return asymmetric.private_text(policy.type, private)

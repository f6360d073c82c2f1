"""encrypt/, decrypt/, rewrap/ and datakey/: encryption as a service, so that
applications never hold the keys. Ciphertexts are `vault:v<N>:<base64>` of
nonce || ciphertext || tag (AEAD keys) or an RSA-OAEP block (RSA keys)."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from mssm.core.errors import BadRequest
from mssm.core.fields import BOOL, INT, LIST, STRING, Field
from mssm.core.request import CREATE, UPDATE, Request, Response
from mssm.engines.base import Route
from mssm.engines.transit import asymmetric, symmetric
from mssm.engines.transit.encoding import (
    decode_b64,
    encode_b64,
    split_version,
    with_version,
)
from mssm.engines.transit.key_routes import new_policy
from mssm.engines.transit.keys import KEY_NAME_PATTERN, RSA, KeyPolicy, KeyVersion
from mssm.engines.transit.sign import run_items
from mssm.engines.transit.store import new_version, private_key, public_key

if TYPE_CHECKING:
    from mssm.engines.transit import TransitEngine

NAME = f"(?P<name>{KEY_NAME_PATTERN})"
COMMON_FIELDS = {
    "context": Field(STRING),
    "nonce": Field(STRING),
    "associated_data": Field(STRING),
    "batch_input": Field(LIST),
    "partial_failure_response_code": Field(INT),
}
ENCRYPT_FIELDS = {
    "plaintext": Field(STRING),
    "key_version": Field(INT),
    "type": Field(STRING),
    "convergent_encryption": Field(BOOL),
} | COMMON_FIELDS
DECRYPT_FIELDS = {"ciphertext": Field(STRING)} | COMMON_FIELDS
REWRAP_FIELDS = {"ciphertext": Field(STRING), "key_version": Field(INT)} | COMMON_FIELDS
DATAKEY_FIELDS = {
    "bits": Field(INT),
    "context": Field(STRING),
    "nonce": Field(STRING),
    "key_version": Field(INT),
}
DATAKEY_BITS = (128, 256, 512)
# A failed item fails a whole encrypt or decrypt batch, as in Vault.
BATCH_FAILURE_STATUS = 400
# partial_failure_response_code must be a final HTTP status.
MIN_FAILURE_STATUS = 200
MAX_FAILURE_STATUS = 599


class EncryptPaths:
    def __init__(self, engine: TransitEngine) -> None:
        self.engine = engine
        self.store = engine.store

    def routes(self) -> list[Route]:
        return [
            Route(
                f"encrypt/{NAME}",
                {CREATE: self.encrypt, UPDATE: self.encrypt},
                ENCRYPT_FIELDS,
                existence=self.key_exists,
            ),
            Route(f"decrypt/{NAME}", {UPDATE: self.decrypt}, DECRYPT_FIELDS),
            Route(f"rewrap/{NAME}", {UPDATE: self.rewrap}, REWRAP_FIELDS),
            Route(
                f"datakey/(?P<plaintext>[^/]+)/{NAME}",
                {UPDATE: self.datakey},
                DATAKEY_FIELDS,
            ),
        ]

    async def key_exists(self, req: Request) -> bool:
        return await self.store.get(req.params.get("name", "")) is not None

    # -- encrypt ---------------------------------------------------------------

    async def encrypt(self, req: Request, data: dict) -> Response:
        policy = await self.store.get(data["name"])
        if policy is None:
            if req.operation != CREATE:
                raise BadRequest(f"encryption key not found: no key {data['name']!r}")
            policy = await self._upsert(data)
        _check_encrypts(policy)
        now = self.engine.now()
        requested = data.get("key_version", 0)

        async def encrypt_item(item: dict[str, Any]) -> dict[str, Any]:
            if "plaintext" not in item:
                raise BadRequest("missing plaintext to encrypt")
            plaintext = decode_b64(item["plaintext"], "plaintext")
            version = policy.write_version(requested, now)
            ciphertext = encrypt_with(policy, version, plaintext, item)
            return {"ciphertext": ciphertext, "key_version": version.number}

        return await run_items(data, encrypt_item, _failure_status(data))

    async def _upsert(self, data: dict) -> KeyPolicy:
        """Create the key on first encrypt, as Vault does for create requests."""
        name = data["name"]
        async with self.store.lock(name):
            existing = await self.store.get(name)
            if existing is not None:
                return existing
            fields = {
                "type": data.get("type"),
                "derived": "context" in data or _batch_has(data, "context"),
                "convergent_encryption": data.get("convergent_encryption", False),
            }
            policy = new_policy(name, fields)
            policy.add_version(await new_version(policy, 1, self.engine.now()))
            await self.store.save(policy)
        return policy

    # -- decrypt ---------------------------------------------------------------

    async def decrypt(self, req: Request, data: dict) -> Response:
        policy = await self.store.require(data["name"], "encryption key not found")
        _check_encrypts(policy)

        async def decrypt_item(item: dict[str, Any]) -> dict[str, Any]:
            plaintext = await decrypt_with(policy, item.get("ciphertext"), item)
            return {"plaintext": encode_b64(plaintext)}

        return await run_items(data, decrypt_item, _failure_status(data))

    async def rewrap(self, req: Request, data: dict) -> Response:
        policy = await self.store.require(data["name"], "encryption key not found")
        _check_encrypts(policy)
        now = self.engine.now()
        requested = data.get("key_version", 0)

        async def rewrap_item(item: dict[str, Any]) -> dict[str, Any]:
            plaintext = await decrypt_with(policy, item.get("ciphertext"), item)
            version = policy.write_version(requested, now)
            ciphertext = encrypt_with(policy, version, plaintext, item)
            return {"ciphertext": ciphertext, "key_version": version.number}

        return await run_items(data, rewrap_item, _failure_status(data))

    # -- datakey ---------------------------------------------------------------

    async def datakey(self, req: Request, data: dict) -> dict:
        kind = data["plaintext"]
        if kind not in ("plaintext", "wrapped"):
            raise BadRequest(
                f"invalid data key type {kind!r} in the path: expected "
                "plaintext or wrapped"
            )
        policy = await self.store.require(data["name"], "encryption key not found")
        _check_encrypts(policy)
        bits = data.get("bits", 256)
        if bits not in DATAKEY_BITS:
            raise BadRequest(f"invalid bits {bits}: expected 128, 256 or 512")
        secret = os.urandom(bits // 8)
        version = policy.write_version(data.get("key_version", 0), self.engine.now())
        result = {
            "ciphertext": encrypt_with(policy, version, secret, data),
            "key_version": version.number,
        }
        if kind == "plaintext":
            result["plaintext"] = encode_b64(secret)
        return result


def _check_encrypts(policy: KeyPolicy) -> None:
    if not policy.type.supports_encryption:
        raise BadRequest(
            f"key type {policy.type.name} does not support encryption: use an "
            "aes256-gcm96, chacha20-poly1305 or rsa key"
        )


def _failure_status(data: dict) -> int:
    status = data.get("partial_failure_response_code") or BATCH_FAILURE_STATUS
    if not MIN_FAILURE_STATUS <= status <= MAX_FAILURE_STATUS:
        raise BadRequest(
            f"invalid partial_failure_response_code {status}: expected an "
            f"HTTP status from {MIN_FAILURE_STATUS} to {MAX_FAILURE_STATUS}"
        )
    return status


def _batch_has(data: dict, field: str) -> bool:
    batch = data.get("batch_input") or []
    return any(isinstance(item, dict) and field in item for item in batch)


def _context(policy: KeyPolicy, item: dict[str, Any]) -> bytes | None:
    if not policy.derived:
        # Checked even though unused, so that a malformed context is a 400.
        if item.get("context"):
            decode_b64(item["context"], "context")
        return None
    if not item.get("context"):
        raise BadRequest(
            f"missing context: key {policy.name!r} is derived, so every request "
            "must include a base64 context for key derivation"
        )
    return decode_b64(item["context"], "context")


def _associated_data(item: dict[str, Any]) -> bytes | None:
    if not item.get("associated_data"):
        return None
    return decode_b64(item["associated_data"], "associated_data")


def encrypt_with(
    policy: KeyPolicy, version: KeyVersion, plaintext: bytes, item: dict[str, Any]
) -> str:
    """Encrypt with version; return the `vault:v<N>:` ciphertext."""
    if policy.type.family == RSA:
        blob = asymmetric.rsa_encrypt(public_key(version), plaintext)
        return with_version(version.number, encode_b64(blob))
    cipher, key = symmetric.cipher_for(policy.type, version, _context(policy, item))
    if policy.convergent_encryption:
        nonce = symmetric.convergent_nonce(key, plaintext)
    else:
        nonce = os.urandom(symmetric.NONCE_SIZE)
    blob = symmetric.encrypt(cipher, plaintext, _associated_data(item), nonce)
    return with_version(version.number, encode_b64(blob))


async def decrypt_with(policy: KeyPolicy, ciphertext: object, item: dict) -> bytes:
    number, payload = split_version(ciphertext, "ciphertext")
    version = policy.read_version(number)
    blob = decode_b64(payload, "ciphertext")
    if policy.type.family == RSA:
        return await _rsa_decrypt(policy, version, blob)
    cipher, _ = symmetric.cipher_for(policy.type, version, _context(policy, item))
    return symmetric.decrypt(cipher, blob, _associated_data(item))


async def _rsa_decrypt(policy: KeyPolicy, version: KeyVersion, blob: bytes) -> bytes:
    private = await private_key(policy, version)
    loop = asyncio.get_running_loop()
    pool = asymmetric.crypto_pool()
    try:
        return await loop.run_in_executor(pool, asymmetric.rsa_decrypt, private, blob)
    except ValueError:
        raise BadRequest("decryption failed: the ciphertext does not match") from None

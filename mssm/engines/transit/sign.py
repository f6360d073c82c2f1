"""sign/, verify/ and hmac/: signatures and HMACs over base64 input, written
`vault:v<N>:<base64>` as Vault writes them, one by one or in batches."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac as hmac_module
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hmac as crypto_hmac

from mssm.core.errors import APIError, BadRequest
from mssm.core.fields import ANY, BOOL, INT, LIST, STRING, Field
from mssm.core.request import UPDATE, Request, Response
from mssm.engines.base import Route
from mssm.engines.transit import asymmetric, jose
from mssm.engines.transit.algorithms import (
    HASHES,
    JWS,
    NO_HASH,
    SignOptions,
    parse_hash,
    parse_sign_options,
)
from mssm.engines.transit.encoding import (
    decode_b64,
    encode_b64,
    split_version,
    with_version,
)
from mssm.engines.transit.keys import (
    ED25519,
    HMAC,
    KEY_NAME_PATTERN,
    RSA,
    KeyPolicy,
    KeyVersion,
)
from mssm.engines.transit.store import private_key, public_key

if TYPE_CHECKING:
    from mssm.engines.transit import TransitEngine

NAME = f"(?P<name>{KEY_NAME_PATTERN})(?:/(?P<urlalgorithm>[^/]+))?"
OPTION_FIELDS = {
    "hash_algorithm": Field(STRING),
    "algorithm": Field(STRING),
    "prehashed": Field(BOOL),
    "signature_algorithm": Field(STRING),
    "marshaling_algorithm": Field(STRING),
    "salt_length": Field(ANY),
    "context": Field(STRING),
    "batch_input": Field(LIST),
}
SIGN_FIELDS = {"input": Field(STRING), "key_version": Field(INT)} | OPTION_FIELDS
VERIFY_FIELDS = {
    "input": Field(STRING),
    "signature": Field(STRING),
    "hmac": Field(STRING),
} | OPTION_FIELDS
HMAC_FIELDS = {
    "input": Field(STRING),
    "key_version": Field(INT),
    "algorithm": Field(STRING),
    "hash_algorithm": Field(STRING),
    "batch_input": Field(LIST),
}
ED25519_WARNING = (
    "ed25519 signs the input itself: hash_algorithm and prehashed are ignored"
)

ItemHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


# Signing, verifying and HMACs compute a result and store nothing.
SIGNING = frozenset({UPDATE})


class SignPaths:
    def __init__(self, engine: TransitEngine) -> None:
        self.engine = engine
        self.store = engine.store

    def routes(self) -> list[Route]:
        return [
            Route(
                f"sign/{NAME}", {UPDATE: self.sign}, SIGN_FIELDS, effect_free=SIGNING
            ),
            Route(
                f"verify/{NAME}",
                {UPDATE: self.verify},
                VERIFY_FIELDS,
                effect_free=SIGNING,
            ),
            Route(
                f"hmac/{NAME}", {UPDATE: self.hmac}, HMAC_FIELDS, effect_free=SIGNING
            ),
        ]

    # -- sign ------------------------------------------------------------------

    async def sign(self, req: Request, data: dict) -> Response:
        policy = await self.store.require(data["name"], "signing key not found")
        if not policy.type.supports_signing:
            raise BadRequest(f"key type {policy.type.name} does not support signing")
        options = parse_sign_options(data, data.get("urlalgorithm"))
        now = self.engine.now()
        requested = data.get("key_version", 0)

        async def sign_item(item: dict[str, Any]) -> dict[str, Any]:
            version = policy.write_version(requested, now)
            message = decode_b64(item.get("input", ""), "input")
            signature = await sign_message(policy, version, message, options)
            return {"signature": signature, "key_version": version.number}

        response = await run_items(data, sign_item)
        if policy.type.family == ED25519 and _hash_options_given(data):
            response.warnings.append(ED25519_WARNING)
        return response

    # -- verify ----------------------------------------------------------------

    async def verify(self, req: Request, data: dict) -> Response:
        policy = await self.store.require(
            data["name"], "signature verification key not found"
        )
        options = parse_sign_options(data, data.get("urlalgorithm"))

        async def verify_item(item: dict[str, Any]) -> dict[str, Any]:
            message = decode_b64(item.get("input", ""), "input")
            if item.get("signature"):
                valid = self._verify_signature(policy, message, item, options)
            elif item.get("hmac"):
                valid = _verify_hmac(policy, message, item["hmac"], options)
            else:
                raise BadRequest(
                    "neither a signature nor an hmac was given to verify: "
                    "set signature or hmac"
                )
            return {"valid": valid}

        return await run_items(data, verify_item)

    def _verify_signature(
        self,
        policy: KeyPolicy,
        message: bytes,
        item: dict[str, Any],
        options: SignOptions,
    ) -> bool:
        if not policy.type.supports_signing:
            raise BadRequest(
                f"key type {policy.type.name} does not support verification"
            )
        number, payload = split_version(item["signature"], "signature")
        version = policy.read_version(number)
        signature = _decode_signature(payload, options.marshaling)
        public = public_key(version)
        return asymmetric.verify(policy.type, public, message, signature, options)

    # -- hmac ------------------------------------------------------------------

    async def hmac(self, req: Request, data: dict) -> Response:
        policy = await self.store.require(data["name"], "HMAC key not found")
        hash_name = _hmac_hash(data)
        now = self.engine.now()
        requested = data.get("key_version", 0)

        async def hmac_item(item: dict[str, Any]) -> dict[str, Any]:
            version = policy.write_version(requested, now)
            message = decode_b64(item.get("input", ""), "input")
            digest = compute_hmac(policy, version, hash_name, message)
            return {"hmac": with_version(version.number, encode_b64(digest))}

        return await run_items(data, hmac_item)


async def sign_message(
    policy: KeyPolicy, version: KeyVersion, message: bytes, options: SignOptions
) -> str:
    """Sign message with version; return the `vault:v<N>:` signature."""
    private = await private_key(policy, version)
    arguments = (policy.type, private, message, options)
    if policy.type.family == RSA:
        loop = asyncio.get_running_loop()
        pool = asymmetric.crypto_pool()
        raw = await loop.run_in_executor(pool, asymmetric.sign, *arguments)
    else:
        raw = asymmetric.sign(*arguments)
    encoded = jose.b64url_encode(raw) if options.marshaling == JWS else encode_b64(raw)
    return with_version(version.number, encoded)


def _decode_signature(payload: str, marshaling: str) -> bytes:
    try:
        if marshaling == JWS:
            return jose.b64url_decode(payload)
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        encoding = "base64url" if marshaling == JWS else "base64"
        raise BadRequest(f"invalid signature: not valid {encoding}") from None


def _hash_options_given(data: dict) -> bool:
    named = data.get("urlalgorithm") or data.get("hash_algorithm")
    return bool(named or data.get("algorithm") or data.get("prehashed"))


def _hmac_hash(data: dict) -> str:
    raw = (
        data.get("urlalgorithm") or data.get("algorithm") or data.get("hash_algorithm")
    )
    name = parse_hash(raw or "sha2-256", "algorithm")
    if name == NO_HASH:
        raise BadRequest("invalid algorithm none: an HMAC needs a hash function")
    return name


def compute_hmac(
    policy: KeyPolicy, version: KeyVersion, hash_name: str, message: bytes
) -> bytes:
    """HMAC with the version's key (HMAC keys) or its separate HMAC key."""
    key = version.key if policy.type.family == HMAC else version.hmac_key
    mac = crypto_hmac.HMAC(key, HASHES[hash_name]())
    mac.update(message)
    return mac.finalize()


def _verify_hmac(
    policy: KeyPolicy, message: bytes, value: str, options: SignOptions
) -> bool:
    number, payload = split_version(value, "hmac")
    version = policy.read_version(number)
    expected = compute_hmac(policy, version, _verify_hmac_hash(options), message)
    try:
        submitted = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("invalid hmac: not valid base64") from None
    return hmac_module.compare_digest(expected, submitted)


def _verify_hmac_hash(options: SignOptions) -> str:
    if options.hash_name == NO_HASH:
        raise BadRequest("invalid hash_algorithm none: an HMAC needs a hash function")
    return options.hash_name


# -- batches -------------------------------------------------------------------


async def run_items(
    data: dict, handle: ItemHandler, fail_status: int | None = None
) -> Response:
    """Run handle on the request, or on each batch_input item.

    A single request raises its error. In a batch, each failed item gets an
    `error` field instead. With fail_status set, a batch in which some items
    failed gets that status with the results attached, as Vault does for
    encrypt and decrypt. A batch in which every item failed gets a 400.
    """
    batch = data.get("batch_input")
    if batch is None:
        return Response(data=await handle(data))
    results = []
    failures = 0
    for item in _batch_items(batch):
        try:
            result = await handle(data | item)
        except APIError as exc:
            result = {"error": "; ".join(exc.messages)}
            failures += 1
        result["reference"] = item.get("reference", "")
        results.append(result)
    if failures and fail_status:
        # Vault sends no errors list here: the reasons are in the results.
        all_failed = failures == len(results)
        error = APIError(status=BadRequest.status if all_failed else fail_status)
        error.data = {"batch_results": results}
        raise error
    return Response(data={"batch_results": results})


def _batch_items(batch: list) -> list[dict[str, Any]]:
    if not batch:
        raise BadRequest("invalid batch_input: the list is empty")
    for position, item in enumerate(batch):
        if not isinstance(item, dict):
            raise BadRequest(
                f"invalid batch_input item {position}: expected a JSON object"
            )
    return batch

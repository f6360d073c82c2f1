"""hash/ and random/: hashing and random bytes that need no key."""

from __future__ import annotations

import binascii
import os
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes

from mssm.core.errors import BadRequest
from mssm.core.fields import INT, STRING, Field
from mssm.core.request import UPDATE, Request
from mssm.engines.base import Route
from mssm.engines.transit.algorithms import HASHES, NO_HASH, parse_hash
from mssm.engines.transit.encoding import decode_b64, encode_b64, is_decimal

if TYPE_CHECKING:
    from mssm.engines.transit import TransitEngine

FORMATS = ("hex", "base64")
RANDOM_SOURCES = ("platform", "seal", "all")
DEFAULT_RANDOM_BYTES = 32
MAX_RANDOM_BYTES = 128 * 1024


class UtilityPaths:
    def __init__(self, engine: TransitEngine) -> None:
        self.engine = engine

    def routes(self) -> list[Route]:
        return [
            Route(
                "hash(?:/(?P<urlalgorithm>[^/]+))?",
                {UPDATE: self.hash},
                {
                    "input": Field(STRING),
                    "algorithm": Field(STRING),
                    "format": Field(STRING),
                },
            ),
            Route(
                "random(?:/(?P<first>[^/]+))?(?:/(?P<second>[^/]+))?",
                {UPDATE: self.random},
                {
                    "bytes": Field(INT),
                    "format": Field(STRING),
                    "source": Field(STRING),
                },
            ),
        ]

    async def hash(self, req: Request, data: dict) -> dict:
        name = parse_hash(
            data.get("urlalgorithm") or data.get("algorithm") or "sha2-256"
        )
        if name == NO_HASH:
            raise BadRequest("invalid algorithm none: hash needs a hash function")
        message = decode_b64(data.get("input", ""), "input")
        digest = hashes.Hash(HASHES[name]())
        digest.update(message)
        return {"sum": _format(digest.finalize(), data.get("format") or "hex")}

    async def random(self, req: Request, data: dict) -> dict:
        source, count = _random_path(data)
        if source not in RANDOM_SOURCES:
            raise BadRequest(
                f"invalid source {source!r}: expected platform, seal or all"
            )
        if count < 1:
            raise BadRequest(f"invalid bytes {count}: must be at least 1")
        if count > MAX_RANDOM_BYTES:
            raise BadRequest(
                f"invalid bytes {count}: the maximum is {MAX_RANDOM_BYTES}"
            )
        # MSSM has no seal device with its own entropy, so every source reads
        # the operating system's generator.
        raw = os.urandom(count)
        return {"random_bytes": _format(raw, data.get("format") or "base64")}


def _random_path(data: dict) -> tuple[str, int]:
    """Read random/[SOURCE/][BYTES]; the body's fields fill what is missing."""
    source = data.get("source") or "platform"
    count = data.get("bytes", DEFAULT_RANDOM_BYTES)
    for part in (data.get("first"), data.get("second")):
        if part is None:
            continue
        if is_decimal(part):
            count = int(part)
        else:
            source = part
    return source, count


def _format(raw: bytes, name: str) -> str:
    if name == "hex":
        return binascii.hexlify(raw).decode()
    if name == "base64":
        return encode_b64(raw)
    raise BadRequest(f'invalid format "{name}": expected hex or base64')

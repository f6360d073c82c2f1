"""Encodings shared by the transit paths: base64 request fields and the
`vault:v<N>:` prefix that names the key version of a signature, HMAC or
ciphertext."""

from __future__ import annotations

import base64
import binascii

from mssm.core.errors import BadRequest

PREFIX = "vault:v"


def decode_b64(value: object, field: str) -> bytes:
    """Decode a standard base64 field; raise a 400 naming the field."""
    if not isinstance(value, str):
        raise BadRequest(f"invalid {field}: expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"invalid {field}: not valid base64") from None


def encode_b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def is_decimal(text: str) -> bool:
    """Return whether text is ASCII digits only; str.isdigit also accepts
    other scripts' digits, which would give one version several spellings."""
    return text.isascii() and text.isdigit()


def with_version(version: int, payload: str) -> str:
    return f"{PREFIX}{version}:{payload}"


def split_version(value: object, field: str) -> tuple[int, str]:
    """Split `vault:v<N>:<payload>` into N and the payload."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        raise BadRequest(f"invalid {field}: missing the vault:v<N>: version prefix")
    number, separator, payload = value[len(PREFIX) :].partition(":")
    if not separator or not is_decimal(number):
        raise BadRequest(f"invalid {field}: malformed vault:v<N>: version prefix")
    return int(number), payload

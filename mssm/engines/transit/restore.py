"""Parsing of backup blobs for restore/.

A blob is request input like any other. Its options must pass the checks
that keys/NAME and keys/NAME/config apply, and its versions must be
complete from min_available_version to latest_version. Each version's key
material must load as the key's type. A restored key therefore behaves
like one created on this server, instead of failing on every later request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
from typing import Any

import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mssm.core.errors import BadRequest
from mssm.core.fields import BOOL, DURATION, INT, MAP, Field, parse_fields
from mssm.engines.transit import asymmetric, jose
from mssm.engines.transit.encoding import is_decimal
from mssm.engines.transit.key_routes import JWT_FIELDS, new_policy
from mssm.engines.transit.keys import (
    AEAD,
    ECDSA,
    ED25519,
    HMAC,
    KEY_NAME_PATTERN,
    MAX_DURATION,
    MAX_HMAC_KEY_SIZE,
    MIN_HMAC_KEY_SIZE,
    RSA,
    KeyPolicy,
    KeyVersion,
)

BACKUP_FORMAT = "mssm-transit-backup/1"
# The seconds a version's creation_time may lie in the future, to allow for
# clock skew between the server that took the backup and this one.
MAX_CLOCK_SKEW = 86400

_OPTION_FIELDS = {
    "latest_version": Field(INT),
    "min_decryption_version": Field(INT),
    "min_encryption_version": Field(INT),
    "min_available_version": Field(INT),
    "deletion_allowed": Field(BOOL),
    "exportable": Field(BOOL),
    "allow_plaintext_backup": Field(BOOL),
    "derived": Field(BOOL),
    "convergent_encryption": Field(BOOL),
    "auto_rotate_period": Field(DURATION),
    "key_size": Field(INT),
    "backup_info": Field(MAP),
} | JWT_FIELDS
_CREATE_OPTIONS = ("derived", "convergent_encryption", "key_size")
_CONFIG_OPTIONS = (
    "min_decryption_version",
    "min_encryption_version",
    "deletion_allowed",
    "exportable",
    "allow_plaintext_backup",
    "auto_rotate_period",
)


async def parse_backup(text: str, name: str | None, now: float) -> KeyPolicy:
    """Build the key a backup blob describes; raise a 400 naming the fault.

    name, when given, replaces the name stored in the blob.
    """
    raw = _decode(text)
    try:
        return await _build(raw, name or raw.get("name"), now)
    except BadRequest as exc:
        raise BadRequest(f"invalid backup: {exc.messages[0]}") from None


def _decode(text: str) -> dict[str, Any]:
    try:
        raw = orjson.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raw = None
    if not isinstance(raw, dict) or raw.get("format") != BACKUP_FORMAT:
        raise BadRequest(f"invalid backup: not a {BACKUP_FORMAT} blob from backup/NAME")
    if not isinstance(raw.get("key"), dict):
        raise BadRequest("invalid backup: key must be a JSON object")
    return raw["key"]


async def _build(raw: dict[str, Any], name: object, now: float) -> KeyPolicy:
    _check_name(name)
    option_values = {k: v for k, v in raw.items() if k in _OPTION_FIELDS}
    options, _ = parse_fields(_OPTION_FIELDS, option_values, {})

    kind = raw.get("type")
    if not isinstance(kind, str) or not kind:
        raise BadRequest("type must be a key type name")
    create = {k: options[k] for k in _CREATE_OPTIONS if k in options}
    policy = new_policy(name, {"type": kind} | create)

    policy.versions = await _versions(raw.get("versions"), policy, now)
    policy.latest_version = max(policy.versions)
    _check_latest(options, policy)
    policy.min_available_version = _min_available(options, policy)

    policy.configure(_config_options(options, policy))
    policy.check_signing_bounds(now)
    policy.backup_info = options.get("backup_info")
    return policy


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not re.fullmatch(KEY_NAME_PATTERN, name):
        raise BadRequest(
            "name must be ASCII letters, digits, '_', '-' and '.', starting "
            "and ending with a letter, digit or '_'"
        )


def _check_latest(options: dict[str, Any], policy: KeyPolicy) -> None:
    latest = options.get("latest_version", policy.latest_version)
    if latest != policy.latest_version:
        raise BadRequest(
            f"latest_version {latest} is not the newest version in versions, "
            f"{policy.latest_version}"
        )


def _min_available(options: dict[str, Any], policy: KeyPolicy) -> int:
    number = options.get("min_available_version", 0)
    if not 0 <= number <= policy.latest_version:
        raise BadRequest(
            f"min_available_version {number} is outside 0 to latest_version "
            f"{policy.latest_version}"
        )
    for version in range(max(number, 1), policy.latest_version + 1):
        if version not in policy.versions:
            raise BadRequest(f"version {version} is missing from versions")
    trimmed = [n for n in policy.versions if n < number]
    if trimmed:
        raise BadRequest(
            f"version {min(trimmed)} is below min_available_version {number}"
        )
    return number


def _config_options(options: dict[str, Any], policy: KeyPolicy) -> dict[str, Any]:
    names = _CONFIG_OPTIONS
    if policy.type.jwt_algorithms:
        names += tuple(JWT_FIELDS)
    # Always passed, so that the check against min_available_version runs
    # even when the blob leaves min_decryption_version out.
    values = {"min_decryption_version": 1}
    values |= {k: options[k] for k in names if k in options}
    return values


# -- versions ----------------------------------------------------------------


async def _versions(
    raw: object, policy: KeyPolicy, now: float
) -> dict[int, KeyVersion]:
    if not isinstance(raw, dict) or not raw:
        raise BadRequest("versions must be a non-empty JSON object")
    versions: dict[int, KeyVersion] = {}
    for text, fields in raw.items():
        if not is_decimal(text) or int(text) < 1:
            raise BadRequest(f"version number {text!r} is not a positive integer")
        number = int(text)
        if not isinstance(fields, dict):
            raise BadRequest(f"version {number} must be a JSON object")
        version = _version(number, fields, now + MAX_CLOCK_SKEW)
        await _check_material(policy, version)
        versions[number] = version
    _check_kids(policy, versions)
    return versions


def _version(number: int, fields: dict[str, Any], now: float) -> KeyVersion:
    creation = _timestamp(
        fields.get("creation_time"), f"version {number} creation_time", 0, now
    )
    activation = _timestamp(
        fields.get("activation_time", creation),
        f"version {number} activation_time",
        creation,
        creation + MAX_DURATION,
    )
    kid = fields.get("kid", "")
    if not isinstance(kid, str):
        raise BadRequest(f"version {number} kid must be a string")
    public = _bytes(fields, "public_key", number) if "public_key" in fields else b""
    return KeyVersion(
        number=number,
        creation_time=creation,
        activation_time=activation,
        key=_bytes(fields, "key", number),
        hmac_key=_bytes(fields, "hmac_key", number),
        public_key=public,
        kid=kid,
    )


def _timestamp(value: object, label: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{label} must be a Unix time in seconds")
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"{label} {value} is outside {low:.0f} to {high:.0f}")
    return float(value)


def _bytes(fields: dict[str, Any], name: str, number: int) -> bytes:
    value = fields.get(name)
    try:
        if isinstance(value, str):
            return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    raise BadRequest(f"version {number} {name} must be a base64 string")


async def _check_material(policy: KeyPolicy, version: KeyVersion) -> None:
    """Check that the version's keys fit the key type, and load them once."""
    if not MIN_HMAC_KEY_SIZE <= len(version.hmac_key) <= MAX_HMAC_KEY_SIZE:
        raise BadRequest(
            f"version {version.number} hmac_key is {len(version.hmac_key)} "
            f"bytes; expected {MIN_HMAC_KEY_SIZE} to {MAX_HMAC_KEY_SIZE}"
        )
    family = policy.type.family
    if family in (AEAD, HMAC):
        expected = policy.type.size if family == AEAD else policy.key_size
        if len(version.key) != expected:
            raise BadRequest(
                f"version {version.number} key is {len(version.key)} bytes, "
                f"expected {expected} for key type {policy.type.name}"
            )
        return
    private = await _load_private(policy, version)
    public = asymmetric.public_der(private)
    if version.public_key and version.public_key != public:
        raise BadRequest(
            f"version {version.number} public_key does not match its private key"
        )
    version.public_key = public
    version.cache["private"] = private


async def _load_private(
    policy: KeyPolicy, version: KeyVersion
) -> asymmetric.PrivateKey:
    try:
        if policy.type.family == RSA:
            # Loading checks the RSA key's consistency, which takes a while.
            loop = asyncio.get_running_loop()
            pool = asymmetric.crypto_pool()
            private = await loop.run_in_executor(
                pool, asymmetric.load_private, version.key
            )
        else:
            private = asymmetric.load_private(version.key)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        private = None
    if private is None or not _fits(policy, private):
        raise BadRequest(
            f"version {version.number} key is not a PKCS#8 DER "
            f"{policy.type.name} private key"
        )
    return private


def _fits(policy: KeyPolicy, private: object) -> bool:
    kind = policy.type
    if kind.family == ED25519:
        return isinstance(private, ed25519.Ed25519PrivateKey)
    if kind.family == ECDSA:
        return (
            isinstance(private, ec.EllipticCurvePrivateKey)
            and jose.curve_name(private.curve) == kind.curve
        )
    return isinstance(private, rsa.RSAPrivateKey) and private.key_size == kind.size


def _check_kids(policy: KeyPolicy, versions: dict[int, KeyVersion]) -> None:
    """HMAC versions are found by their stored kid, so each needs its own."""
    if policy.type.family != HMAC:
        return
    seen: set[str] = set()
    for number, version in sorted(versions.items()):
        if not version.kid or version.kid in seen:
            raise BadRequest(
                f"version {number} kid must be a non-empty string that no "
                "other version has"
            )
        seen.add(version.kid)

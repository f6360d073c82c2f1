"""JOSE building blocks: base64url (RFC 7515 section 2), public JWKs
(RFC 7517, RFC 7518 section 6, RFC 8037), JWK thumbprints (RFC 7638) and
JWS signing and verification for each supported `alg`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import orjson
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mssm.engines.transit import asymmetric
from mssm.engines.transit.algorithms import JWS, PKCS1V15, PSS, SALT_HASH, SignOptions
from mssm.engines.transit.keys import HMAC, KeyPolicy, KeyVersion
from mssm.engines.transit.store import public_key

_ALPHABET = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)
_HS_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}
_HS_DIGESTS["HS512"] = hashlib.sha512
_SHA = {"256": "sha2-256", "384": "sha2-384", "512": "sha2-512"}


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url strictly; raise ValueError otherwise.

    The text must be the one encoding of its bytes: unused bits in the last
    character must be zero. Otherwise several strings decode alike, and a
    token could be changed without breaking its signature.
    """
    if not set(text) <= _ALPHABET or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not unpadded base64url") from None
    if b64url_encode(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


# -- JWKs ------------------------------------------------------------------------


def public_jwk(public: asymmetric.PublicKey) -> dict[str, str]:
    """Return the required members of the public JWK, the thumbprint input."""
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes_raw()
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(raw)}
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        size = (public.curve.key_size + 7) // 8
        return {
            "crv": _CURVE_NAMES[public.curve.name],
            "kty": "EC",
            "x": b64url_encode(numbers.x.to_bytes(size, "big")),
            "y": b64url_encode(numbers.y.to_bytes(size, "big")),
        }
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {
            "e": b64url_encode(_unsigned(numbers.e)),
            "kty": "RSA",
            "n": b64url_encode(_unsigned(numbers.n)),
        }
    raise TypeError(f"no JWK form for {type(public).__name__}")


_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def curve_name(curve: ec.EllipticCurve) -> str:
    """Return the JWK crv name (RFC 7518 section 6.2.1.1), or "" if none."""
    return _CURVE_NAMES.get(curve.name, "")


def _unsigned(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8 or 1, "big")


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, without spaces."""
    canonical = orjson.dumps(dict(sorted(jwk.items())))
    return b64url_encode(hashlib.sha256(canonical).digest())


def version_kid(policy: KeyPolicy, version: KeyVersion) -> str:
    """The JWT key id of a version: its JWK thumbprint, or an opaque id for HMAC."""
    if policy.type.family == HMAC:
        return version.kid
    cached = version.cache.get("kid")
    if cached is None:
        cached = thumbprint(public_jwk(public_key(version)))
        version.cache["kid"] = cached
    return cached


def jwks_entry(policy: KeyPolicy, version: KeyVersion) -> dict[str, str]:
    entry = public_jwk(public_key(version))
    entry.update(kid=version_kid(policy, version), alg=policy.jwt_alg, use="sig")
    return entry


# -- JWS -------------------------------------------------------------------------


def jws_options(alg: str) -> SignOptions:
    """Map an asymmetric JWS alg (RFC 7518 section 3, RFC 8037) to sign options."""
    if alg == "EdDSA":
        return SignOptions()
    family, bits = alg[:2], alg[2:]
    if family == "ES":
        return SignOptions(hash_name=_SHA[bits], marshaling=JWS)
    if family == "RS":
        return SignOptions(hash_name=_SHA[bits], signature_algorithm=PKCS1V15)
    # RFC 7518 section 3.5: the PSS salt is as long as the hash output.
    return SignOptions(
        hash_name=_SHA[bits], signature_algorithm=PSS, salt_length=SALT_HASH
    )


def hs_sign(alg: str, version: KeyVersion, signing_input: bytes) -> bytes:
    return hmac.new(version.key, signing_input, _HS_DIGESTS[alg]).digest()


def hs_verify(
    alg: str, version: KeyVersion, signing_input: bytes, signature: bytes
) -> bool:
    expected = hs_sign(alg, version, signing_input)
    return hmac.compare_digest(expected, signature)

"""JOSE for transit key versions, through joserfc.

It covers base64url (RFC 7515 section 2), the joserfc key of each version,
its public JWK (RFC 7517) with the RFC 7638 thumbprint as `kid`, and JWS
signatures. Signatures use the algorithm the key is configured for, never
the one a token names.
"""

from __future__ import annotations

import binascii
import warnings

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwk, jws
from joserfc.errors import SecurityWarning
from joserfc.util import urlsafe_b64decode, urlsafe_b64encode

from mssm.engines.transit.keys import ECDSA, ED25519, HMAC, RSA, KeyPolicy, KeyVersion
from mssm.engines.transit.store import private_key, public_key

# RFC 9864 deprecates the alg name "EdDSA" for "Ed25519", and joserfc 1.8
# warns each time it signs or checks a token with it. Ed25519 keys keep
# "EdDSA": their JWKS entries and the tokens already issued name it, and
# PyJWT 2.15 accepts no other name for the algorithm.
warnings.filterwarnings("ignore", "EdDSA is deprecated", SecurityWarning)

_KEY_CLASSES: dict[str, type[jwk.OKPKey | jwk.ECKey | jwk.RSAKey]] = {
    ED25519: jwk.OKPKey,
    ECDSA: jwk.ECKey,
    RSA: jwk.RSAKey,
}
# One registry per algorithm, each allowing that algorithm alone.
_REGISTRIES: dict[str, jws.JWSRegistry] = {}


def b64url_encode(raw: bytes) -> str:
    return urlsafe_b64encode(raw).decode()


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url strictly; raise ValueError otherwise.

    joserfc's decoder also requires the unused bits of the last character to
    be zero, so each byte string has one encoding and a token cannot be
    altered without breaking its signature.
    """
    try:
        return urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("not canonical unpadded base64url") from None


_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def curve_name(curve: ec.EllipticCurve) -> str:
    """Return the JWK crv name (RFC 7518 section 6.2.1.1), or "" if none."""
    return _CURVE_NAMES.get(curve.name, "")


# -- keys and JWKs -------------------------------------------------------------


def verifying_key(policy: KeyPolicy, version: KeyVersion) -> jwk.Key:
    """Return the joserfc key that checks the version's signatures.

    It is the public key, or the secret for an HMAC key, built once per
    version.
    """
    cached = version.cache.get("jose_verifying")
    if cached is None:
        if policy.type.family == HMAC:
            # NOTE: joserfc raises ValueError, which becomes a 500, for a
            # secret that parses as a public key or certificate. Only a
            # crafted backup can restore such an HMAC key.
            cached = jwk.OctKey.import_key(version.key)
        else:
            cached = _KEY_CLASSES[policy.type.family].import_key(public_key(version))
        version.cache["jose_verifying"] = cached
    return cached


async def signing_key(policy: KeyPolicy, version: KeyVersion) -> jwk.Key:
    """Return the joserfc key that signs with the version, built once."""
    cached = version.cache.get("jose_signing")
    if cached is None:
        if policy.type.family == HMAC:
            cached = verifying_key(policy, version)
        else:
            private = await private_key(policy, version)
            cached = _KEY_CLASSES[policy.type.family].import_key(private)
        version.cache["jose_signing"] = cached
    return cached


def version_kid(policy: KeyPolicy, version: KeyVersion) -> str:
    """The JWT key id of a version: its JWK thumbprint, or an opaque id for HMAC."""
    if policy.type.family == HMAC:
        return version.kid
    cached = version.cache.get("kid")
    if cached is None:
        cached = verifying_key(policy, version).thumbprint()
        version.cache["kid"] = cached
    return cached


def jwks_entry(policy: KeyPolicy, version: KeyVersion) -> dict[str, str]:
    """Return the public JWK of an asymmetric version, as the JWKS lists it."""
    if not policy.type.asymmetric:
        # An HMAC key's JWK would be its secret.
        raise ValueError(f"key type {policy.type.name} has no public JWK")
    key = verifying_key(policy, version)
    kid = version_kid(policy, version)
    return dict(key.as_dict(kid=kid, alg=policy.jwt_alg, use="sig"))


# -- JWS -------------------------------------------------------------------------


def _registry(alg: str) -> jws.JWSRegistry:
    registry = _REGISTRIES.get(alg)
    if registry is None:
        registry = jws.JWSRegistry(algorithms=[alg])
        _REGISTRIES[alg] = registry
    return registry


def serialize_compact(header: dict[str, str], payload: bytes, key: jwk.Key) -> str:
    """Sign payload with key and return the JWS compact serialization.

    The registry allows only header["alg"], which the caller sets from the
    key's configuration.
    """
    return jws.serialize_compact(
        header, payload, key, registry=_registry(header["alg"])
    )


def verify_signature(
    policy: KeyPolicy, version: KeyVersion, signing_input: bytes, signature: bytes
) -> bool:
    """Check a JWS signature with the key's configured algorithm.

    The caller has checked the header already. jws.validate_compact would
    apply joserfc's header rules as well, and reject tokens that MSSM
    accepts, such as one whose typ is not a string.
    """
    alg = policy.jwt_alg
    algorithm = _registry(alg).get_alg(alg)
    key = verifying_key(policy, version)
    algorithm.check_key(key)
    return algorithm.verify(signing_input, signature, key)

"""Asymmetric key material: generation, encodings, signing and verification
for Ed25519, ECDSA and RSA keys, with pyca/cryptography.

Private keys are stored as PKCS#8 DER and public keys as SubjectPublicKeyInfo
DER. Errors in the request (a wrong digest length, an impossible salt) raise
BadRequest before the crypto library sees the input.
"""

from __future__ import annotations

import base64
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    NoDigestInfo,
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from mssm.core.errors import BadRequest
from mssm.engines.transit.algorithms import (
    JWS,
    NO_HASH,
    PKCS1V15,
    SALT_AUTO,
    SALT_HASH,
    SignOptions,
)
from mssm.engines.transit.keys import ECDSA, ED25519, KeyType

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
RSA_PUBLIC_EXPONENT = 65537

# RSA private-key operations take about 0.3 ms (2048 bits) to 3 ms (4096
# bits) and release the GIL, so they run here instead of on the event loop.
_POOL = ThreadPoolExecutor(
    max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="mssm-rsa"
)


def crypto_pool() -> ThreadPoolExecutor:
    return _POOL


# -- generation and encodings ----------------------------------------------


def generate(key_type: KeyType) -> bytes:
    """Create a private key; return it as PKCS#8 DER. Slow for RSA."""
    if key_type.family == ED25519:
        private: PrivateKey = ed25519.Ed25519PrivateKey.generate()
    elif key_type.family == ECDSA:
        private = ec.generate_private_key(_CURVES[key_type.curve]())
    else:
        private = rsa.generate_private_key(RSA_PUBLIC_EXPONENT, key_type.size)
    return private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private(der: bytes) -> PrivateKey:
    return serialization.load_der_private_key(der, password=None)  # type: ignore[return-value]


def load_public(der: bytes) -> PublicKey:
    return serialization.load_der_public_key(der)  # type: ignore[return-value]


def public_der(private: PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def public_text(key_type: KeyType, public: PublicKey) -> str:
    """Format a public key as the key read shows it.

    Ed25519 keys are the 32 raw bytes in base64; ECDSA and RSA keys are
    SubjectPublicKeyInfo PEM.
    """
    if key_type.family == ED25519:
        raw = public.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()
    pem = public.public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    return pem.decode()


def private_text(key_type: KeyType, private: PrivateKey) -> str:
    """Format a private key for export/signing-key.

    Ed25519 keys are the 32-byte seed followed by the 32-byte public key in
    base64, the layout Go's ed25519 package uses. ECDSA keys are SEC 1 PEM
    and RSA keys PKCS#1 PEM, without the final newline.
    """
    if key_type.family == ED25519:
        seed = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(seed + public).decode()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return pem.decode().rstrip("\n")


# -- signing -----------------------------------------------------------------


def sign(
    key_type: KeyType, private: PrivateKey, message: bytes, options: SignOptions
) -> bytes:
    """Sign message; an ECDSA signature is DER, or r||s when marshaling is jws."""
    if key_type.family == ED25519:
        return private.sign(message)
    if key_type.family == ECDSA:
        algorithm = _ecdsa_algorithm(options, message)
        signature = private.sign(message, algorithm)
        if options.marshaling == JWS:
            return der_to_raw(signature, key_type)
        return signature
    return private.sign(message, *_rsa_arguments(private, options, message, True))


def verify(
    key_type: KeyType,
    public: PublicKey,
    message: bytes,
    signature: bytes,
    options: SignOptions,
) -> bool:
    """Check a signature; raise BadRequest if it cannot be parsed at all."""
    try:
        if key_type.family == ED25519:
            public.verify(signature, message)
        elif key_type.family == ECDSA:
            algorithm = _ecdsa_algorithm(options, message)
            der = _ecdsa_der(key_type, signature, options.marshaling)
            public.verify(der, message, algorithm)
        else:
            arguments = _rsa_arguments(public, options, message, False)
            public.verify(signature, message, *arguments)
    except InvalidSignature:
        return False
    return True


def _ecdsa_algorithm(options: SignOptions, message: bytes) -> ec.ECDSA:
    if options.hash_name == NO_HASH:
        raise _none_hash_error()
    digest = options.hash()
    if options.prehashed:
        _check_digest_length(message, options)
        return ec.ECDSA(Prehashed(digest))
    return ec.ECDSA(digest)


def _ecdsa_der(key_type: KeyType, signature: bytes, marshaling: str) -> bytes:
    if marshaling == JWS:
        return raw_to_der(signature, key_type)
    try:
        decode_dss_signature(signature)
    except ValueError:
        raise BadRequest(
            "invalid signature: not an ASN.1 DER ECDSA signature; "
            "set marshaling_algorithm=jws for raw r||s signatures"
        ) from None
    return signature


def der_to_raw(signature: bytes, key_type: KeyType) -> bytes:
    """Convert a DER ECDSA signature to the fixed-size r||s of RFC 7518 3.4."""
    r, s = decode_dss_signature(signature)
    size = key_type.coordinate_size
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def raw_to_der(signature: bytes, key_type: KeyType) -> bytes:
    """Convert r||s to DER; the length must be exactly twice the field size."""
    size = key_type.coordinate_size
    if len(signature) != 2 * size:
        raise BadRequest(
            f"invalid signature: a {key_type.curve} jws signature is "
            f"{2 * size} bytes, got {len(signature)}"
        )
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    return encode_dss_signature(r, s)


def _rsa_arguments(
    key: rsa.RSAPrivateKey | rsa.RSAPublicKey,
    options: SignOptions,
    message: bytes,
    signing: bool,
) -> tuple[padding.AsymmetricPadding, Any]:
    if options.hash_name == NO_HASH:
        if not (options.prehashed and options.signature_algorithm == PKCS1V15):
            raise _none_hash_error()
        _check_unhashed_length(key, message)
        return padding.PKCS1v15(), NoDigestInfo()
    digest = options.hash()
    algorithm: Any = digest
    if options.prehashed:
        _check_digest_length(message, options)
        algorithm = Prehashed(digest)
    if options.signature_algorithm == PKCS1V15:
        return padding.PKCS1v15(), algorithm
    salt = _pss_salt(key, options, digest, signing)
    return padding.PSS(mgf=padding.MGF1(digest), salt_length=salt), algorithm


def _pss_salt(
    key: rsa.RSAPrivateKey | rsa.RSAPublicKey,
    options: SignOptions,
    digest: hashes.HashAlgorithm,
    signing: bool,
) -> Any:
    # On signing, "auto" means the largest salt that fits (Go's behaviour);
    # on verifying it accepts any salt length.
    if options.salt_length == SALT_AUTO:
        return padding.PSS.MAX_LENGTH if signing else padding.PSS.AUTO
    if options.salt_length == SALT_HASH:
        return padding.PSS.DIGEST_LENGTH
    maximum = padding.calculate_max_pss_salt_length(key, digest)
    if options.salt_length > maximum:
        raise BadRequest(
            f"invalid salt_length {options.salt_length}: the maximum for a "
            f"{key.key_size}-bit key with {options.hash_name} is {maximum} bytes"
        )
    return options.salt_length


def _check_digest_length(message: bytes, options: SignOptions) -> None:
    expected = options.hash().digest_size
    if len(message) != expected:
        raise BadRequest(
            f"invalid input: prehashed input for {options.hash_name} must be "
            f"{expected} bytes, got {len(message)}"
        )


def _check_unhashed_length(
    key: rsa.RSAPrivateKey | rsa.RSAPublicKey, message: bytes
) -> None:
    # RFC 8017 section 9.2: PKCS#1 v1.5 padding needs at least 11 bytes.
    maximum = key.key_size // 8 - 11
    if len(message) > maximum:
        raise BadRequest(
            f"invalid input: with hash_algorithm=none a {key.key_size}-bit key "
            f"signs at most {maximum} bytes, got {len(message)}"
        )


def _none_hash_error() -> BadRequest:
    return BadRequest(
        "hash_algorithm=none requires both prehashed=true and "
        "signature_algorithm=pkcs1v15 (RSA keys only)"
    )


# -- RSA encryption ------------------------------------------------------------


def _oaep() -> padding.OAEP:
    return padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
    )


def rsa_encrypt(public: rsa.RSAPublicKey, plaintext: bytes) -> bytes:
    maximum = public.key_size // 8 - 2 * hashes.SHA256.digest_size - 2
    if len(plaintext) > maximum:
        raise BadRequest(
            f"invalid plaintext: RSA-OAEP with a {public.key_size}-bit key "
            f"encrypts at most {maximum} bytes, got {len(plaintext)}"
        )
    return public.encrypt(plaintext, _oaep())


def rsa_decrypt(private: rsa.RSAPrivateKey, ciphertext: bytes) -> bytes:
    return private.decrypt(ciphertext, _oaep())

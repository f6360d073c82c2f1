"""Symmetric key material: AES-GCM and ChaCha20-Poly1305 with 96-bit nonces,
per-context key derivation and convergent nonces."""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mssm.core.errors import BadRequest
from mssm.engines.transit.keys import KeyType, KeyVersion

NONCE_SIZE = 12
TAG_SIZE = 16
_CONVERGENT_LABEL = b"mssm transit convergent nonce"

Cipher = AESGCM | ChaCha20Poly1305


def generate(key_type: KeyType) -> bytes:
    return os.urandom(key_type.size)


def derive_key(key: bytes, context: bytes) -> bytes:
    """Derive a per-context key with HKDF-SHA256 (RFC 5869), context as info."""
    return HKDF(
        algorithm=hashes.SHA256(), length=len(key), salt=None, info=context
    ).derive(key)


def cipher_for(
    key_type: KeyType, version: KeyVersion, context: bytes | None
) -> tuple[Cipher, bytes]:
    """Return the AEAD cipher and the key it uses, derived when context is set.

    The cipher for the version's own key is built once and cached.
    """
    if context is None:
        cached = version.cache.get("aead")
        if cached is None:
            cached = _new_cipher(key_type, version.key)
            version.cache["aead"] = cached
        return cached, version.key
    key = derive_key(version.key, context)
    return _new_cipher(key_type, key), key


def _new_cipher(key_type: KeyType, key: bytes) -> Cipher:
    if key_type.name == "chacha20-poly1305":
        return ChaCha20Poly1305(key)
    return AESGCM(key)


def convergent_nonce(key: bytes, plaintext: bytes) -> bytes:
    """Derive the nonce from the plaintext, so equal inputs encrypt equally.

    The HMAC key is derived apart from the encryption key, so the nonce
    reveals nothing about the key beyond plaintext equality.
    """
    nonce_key = derive_key(key, _CONVERGENT_LABEL)
    return hmac.new(nonce_key, plaintext, hashlib.sha256).digest()[:NONCE_SIZE]


def encrypt(
    cipher: Cipher, plaintext: bytes, associated_data: bytes | None, nonce: bytes
) -> bytes:
    """Return nonce || ciphertext || tag."""
    return nonce + cipher.encrypt(nonce, plaintext, associated_data)


def decrypt(cipher: Cipher, blob: bytes, associated_data: bytes | None) -> bytes:
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise BadRequest(
            f"invalid ciphertext length: {len(blob)} bytes is shorter than the "
            f"{NONCE_SIZE}-byte nonce and {TAG_SIZE}-byte tag"
        )
    try:
        return cipher.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], associated_data)
    except InvalidTag:
        raise BadRequest(
            "decryption failed: the ciphertext, context or associated_data "
            "does not match"
        ) from None

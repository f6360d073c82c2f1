"""AES-256-GCM with a random 96-bit nonce per message."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_SIZE = 32
NONCE_SIZE = 12


class DecryptionError(Exception):
    """A ciphertext failed authentication; no detail is given on purpose."""


def generate_key() -> bytes:
    return os.urandom(KEY_SIZE)


def seal(key: bytes | AESGCM, plaintext: bytes, associated_data: bytes) -> bytes:
    """Encrypt and authenticate; the output is nonce || ciphertext || tag.

    key may be a prepared AESGCM object, which saves the key schedule on
    every call of the hot path.
    """
    cipher = key if isinstance(key, AESGCM) else AESGCM(key)
    nonce = os.urandom(NONCE_SIZE)
    return nonce + cipher.encrypt(nonce, plaintext, associated_data)


def open_sealed(
    key: bytes | AESGCM, sealed_blob: bytes, associated_data: bytes
) -> bytes:
    if len(sealed_blob) < NONCE_SIZE + 16:
        raise DecryptionError
    cipher = key if isinstance(key, AESGCM) else AESGCM(key)
    nonce, body = sealed_blob[:NONCE_SIZE], sealed_blob[NONCE_SIZE:]
    try:
        return cipher.decrypt(nonce, body, associated_data)
    except InvalidTag:
        raise DecryptionError from None

"""Names of hash, signature and marshaling algorithms as transit requests
spell them, and the parsing of the options that pick them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes

from mssm.core.errors import BadRequest

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha2-224": hashes.SHA224,
    "sha2-256": hashes.SHA256,
    "sha2-384": hashes.SHA384,
    "sha2-512": hashes.SHA512,
    "sha3-224": hashes.SHA3_224,
    "sha3-256": hashes.SHA3_256,
    "sha3-384": hashes.SHA3_384,
    "sha3-512": hashes.SHA3_512,
}
DEFAULT_HASH = "sha2-256"
# "none" signs the input as it is: PKCS#1 v1.5 without a DigestInfo.
NO_HASH = "none"

PSS = "pss"
PKCS1V15 = "pkcs1v15"
SIGNATURE_ALGORITHMS = (PSS, PKCS1V15)

ASN1 = "asn1"
JWS = "jws"
MARSHALING_ALGORITHMS = (ASN1, JWS)

SALT_AUTO = "auto"
SALT_HASH = "hash"


@dataclass(frozen=True)
class SignOptions:
    """How one sign or verify request hashes, pads and encodes."""

    hash_name: str = DEFAULT_HASH
    prehashed: bool = False
    signature_algorithm: str = PSS
    marshaling: str = ASN1
    # "auto", "hash" or a salt length in bytes (RSA-PSS only).
    salt_length: str | int = SALT_AUTO

    def hash(self) -> hashes.HashAlgorithm:
        return HASHES[self.hash_name]()


def parse_hash(value: object, field: str = "hash_algorithm") -> str:
    name = value if isinstance(value, str) else ""
    if name in HASHES or name == NO_HASH:
        return name
    raise BadRequest(
        f'invalid hash algorithm "{value}" in {field}: '
        f"expected one of {', '.join(HASHES)} or none"
    )


def parse_sign_options(data: dict, path_hash: str | None) -> SignOptions:
    """Read the sign/verify options from the body and the path suffix.

    The hash may come from the path (sign/NAME/sha2-512), from
    hash_algorithm or from its old name algorithm; the path wins, as in
    Vault.
    """
    raw_hash = path_hash or data.get("hash_algorithm") or data.get("algorithm")
    hash_name = parse_hash(raw_hash or DEFAULT_HASH)
    options = SignOptions(
        hash_name=hash_name,
        prehashed=bool(data.get("prehashed", False)),
        signature_algorithm=_signature_algorithm(data.get("signature_algorithm")),
        marshaling=_marshaling(data.get("marshaling_algorithm")),
        salt_length=parse_salt_length(data.get("salt_length")),
    )
    return options


def _signature_algorithm(value: str | None) -> str:
    if not value:
        return PSS
    if value not in SIGNATURE_ALGORITHMS:
        raise BadRequest(
            f"invalid signature_algorithm {value!r}: expected pss or pkcs1v15"
        )
    return value


def _marshaling(value: str | None) -> str:
    if not value:
        return ASN1
    if value not in MARSHALING_ALGORITHMS:
        raise BadRequest(
            f'invalid marshaling type "{value}" in marshaling_algorithm: '
            "expected asn1 or jws"
        )
    return value


def parse_salt_length(value: object) -> str | int:
    """Accept "auto", "hash" or a non-negative integer (as a number or text)."""
    if value is None or value == "":
        return SALT_AUTO
    if value in (SALT_AUTO, SALT_HASH):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        number = int(value)
    else:
        raise BadRequest(
            f"invalid salt_length {value!r}: expected auto, hash or a number of bytes"
        )
    if number < 0:
        raise BadRequest(f"invalid salt_length {number}: must not be negative")
    return number

"""JOSE helpers: the RFC 7638 thumbprint vector, strict base64url, and
ECDSA signature conversions between DER and r||s."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwcrypto import jwk

from mssm.core.errors import BadRequest
from mssm.engines.transit import asymmetric, jose
from mssm.engines.transit.algorithms import SignOptions
from mssm.engines.transit.keys import KEY_TYPES

# RFC 7638 section 3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
    "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
    "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
    "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
    "Cur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_matches_rfc7638_vector() -> None:
    n = int.from_bytes(jose.b64url_decode(RFC7638_N), "big")
    public = rsa.RSAPublicNumbers(65537, n).public_key()
    jwk_members = jose.public_jwk(public)
    assert jwk_members == {"e": "AQAB", "kty": "RSA", "n": RFC7638_N}
    assert jose.thumbprint(jwk_members) == RFC7638_THUMBPRINT


@pytest.mark.parametrize(
    "private",
    [
        ed25519.Ed25519PrivateKey.generate(),
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        ec.generate_private_key(ec.SECP521R1()),
    ],
    ids=["ed25519", "p256", "p384", "p521"],
)
def test_thumbprint_agrees_with_jwcrypto(private) -> None:  # noqa: ANN001
    members = jose.public_jwk(private.public_key())
    reference = jwk.JWK(**members)
    assert jose.thumbprint(members) == reference.thumbprint()


def test_ec_coordinates_keep_leading_zeros() -> None:
    for _ in range(64):
        members = jose.public_jwk(ec.generate_private_key(ec.SECP521R1()).public_key())
        assert len(jose.b64url_decode(members["x"])) == 66
        assert len(jose.b64url_decode(members["y"])) == 66


@pytest.mark.parametrize("text", ["ab=c", "a+b/", "abcde", "ab c"])
def test_b64url_decode_rejects_non_canonical(text: str) -> None:
    with pytest.raises(ValueError, match="base64url"):
        jose.b64url_decode(text)


def test_b64url_round_trip_without_padding() -> None:
    for size in range(6):
        raw = bytes(range(size))
        encoded = jose.b64url_encode(raw)
        assert "=" not in encoded
        assert jose.b64url_decode(encoded) == raw


def test_raw_signature_length_is_exact() -> None:
    kind = KEY_TYPES["ecdsa-p256"]
    with pytest.raises(BadRequest, match="64 bytes, got 63"):
        asymmetric.raw_to_der(b"\x01" * 63, kind)
    with pytest.raises(BadRequest, match="64 bytes, got 65"):
        asymmetric.raw_to_der(b"\x01" * 65, kind)


def test_der_raw_round_trip() -> None:
    kind = KEY_TYPES["ecdsa-p384"]
    private = ec.generate_private_key(ec.SECP384R1())
    der = asymmetric.sign(kind, private, b"m", SignOptions("sha2-384"))
    raw = asymmetric.der_to_raw(der, kind)
    assert len(raw) == 96
    assert asymmetric.raw_to_der(raw, kind) == der


def test_jws_options_for_ps256_use_hash_salt() -> None:
    options = jose.jws_options("PS256")
    assert options.signature_algorithm == "pss"
    assert options.salt_length == "hash"
    assert jose.jws_options("ES512").marshaling == "jws"
    assert jose.jws_options("RS384").hash_name == "sha2-384"

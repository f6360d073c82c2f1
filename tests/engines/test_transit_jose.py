"""JOSE of key versions: the RFC 7638 thumbprint vector, JWKS entries
checked by jwcrypto, JWS signatures checked by pyca/cryptography, strict
base64url, and ECDSA signature conversions between DER and r||s."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwcrypto import jwk

from mssm.core.errors import BadRequest
from mssm.engines.transit import asymmetric, jose
from mssm.engines.transit.algorithms import SignOptions
from mssm.engines.transit.keys import KEY_TYPES, KeyPolicy, KeyVersion

# RFC 7638 section 3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
    "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
    "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
    "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
    "Cur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def make_version(
    kind: str, private_der: bytes = b"", public_der: bytes = b""
) -> tuple[KeyPolicy, KeyVersion]:
    """Build a key and its version 1 from key material, without storage."""
    key_type = KEY_TYPES[kind]
    if not private_der:
        private_der = asymmetric.generate(key_type)
    if not public_der:
        public_der = asymmetric.public_der(asymmetric.load_private(private_der))
    policy = KeyPolicy(name=f"test-{kind}", type=key_type)
    version = KeyVersion(
        number=1,
        creation_time=0.0,
        activation_time=0.0,
        key=private_der,
        hmac_key=b"",
        public_key=public_der,
    )
    return policy, version


def rfc7638_version() -> tuple[KeyPolicy, KeyVersion]:
    n = int.from_bytes(jose.b64url_decode(RFC7638_N), "big")
    public = rsa.RSAPublicNumbers(65537, n).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return make_version("rsa-2048", private_der=b"unused", public_der=der)


def test_kid_matches_rfc7638_vector() -> None:
    policy, version = rfc7638_version()
    assert jose.version_kid(policy, version) == RFC7638_THUMBPRINT


def test_jwks_entry_of_rfc7638_key() -> None:
    policy, version = rfc7638_version()
    assert jose.jwks_entry(policy, version) == {
        "e": "AQAB",
        "kty": "RSA",
        "n": RFC7638_N,
        "kid": RFC7638_THUMBPRINT,
        "alg": "RS256",
        "use": "sig",
    }


@pytest.mark.parametrize(
    "kind", ["ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048"]
)
def test_kid_agrees_with_jwcrypto(kind: str) -> None:
    policy, version = make_version(kind)
    entry = jose.jwks_entry(policy, version)
    reference = jwk.JWK(**entry)
    assert reference.has_private is False
    assert reference.thumbprint() == jose.version_kid(policy, version)
    assert entry["kid"] == jose.version_kid(policy, version)


def test_hmac_key_has_no_jwks_entry() -> None:
    policy = KeyPolicy(name="test-hmac", type=KEY_TYPES["hmac"])
    version = KeyVersion(1, 0.0, 0.0, key=bytes(32), hmac_key=b"", kid="opaque")
    with pytest.raises(ValueError, match="key type hmac has no public JWK"):
        jose.jwks_entry(policy, version)
    assert jose.version_kid(policy, version) == "opaque"


def test_ec_coordinates_keep_leading_zeros() -> None:
    for _ in range(64):
        policy, version = make_version("ecdsa-p521")
        entry = jose.jwks_entry(policy, version)
        assert len(jose.b64url_decode(entry["x"])) == 66
        assert len(jose.b64url_decode(entry["y"])) == 66


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


async def sign_parts(policy: KeyPolicy, version: KeyVersion) -> tuple[bytes, bytes]:
    """Sign a token with the version; return its signing input and signature."""
    header = {"alg": policy.jwt_alg, "kid": "k", "typ": "JWT"}
    key = await jose.signing_key(policy, version)
    token = jose.serialize_compact(header, b'{"sub":"alice"}', key)
    header_part, payload_part, signature_part = token.split(".")
    signing_input = f"{header_part}.{payload_part}".encode()
    return signing_input, jose.b64url_decode(signature_part)


async def test_ps256_salt_is_hash_length() -> None:
    policy, version = make_version("rsa-2048")
    policy.jwt_algorithm = "PS256"
    signing_input, signature = await sign_parts(policy, version)
    public = asymmetric.load_public(version.public_key)
    # RFC 7518 section 3.5: the salt is as long as the SHA-256 output.
    salt = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    public.verify(signature, signing_input, salt, hashes.SHA256())
    assert jose.verify_signature(policy, version, signing_input, signature)


async def test_rs384_signs_pkcs1v15_sha384() -> None:
    policy, version = make_version("rsa-2048")
    policy.jwt_algorithm = "RS384"
    signing_input, signature = await sign_parts(policy, version)
    public = asymmetric.load_public(version.public_key)
    public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA384())


async def test_es512_signature_is_raw_r_s() -> None:
    policy, version = make_version("ecdsa-p521")
    signing_input, signature = await sign_parts(policy, version)
    assert len(signature) == 132
    r = int.from_bytes(signature[:66], "big")
    s = int.from_bytes(signature[66:], "big")
    public = asymmetric.load_public(version.public_key)
    der = encode_dss_signature(r, s)
    public.verify(der, signing_input, ec.ECDSA(hashes.SHA512()))


async def test_hs256_signature_is_hmac_sha256() -> None:
    secret = bytes(range(32))
    policy = KeyPolicy(name="test-hmac", type=KEY_TYPES["hmac"])
    version = KeyVersion(1, 0.0, 0.0, key=secret, hmac_key=b"", kid="opaque")
    signing_input, signature = await sign_parts(policy, version)
    assert signature == hmac.new(secret, signing_input, hashlib.sha256).digest()
    assert jose.verify_signature(policy, version, signing_input, signature)
    assert not jose.verify_signature(policy, version, signing_input, bytes(32))


async def test_verify_uses_key_algorithm_not_header() -> None:
    policy, version = make_version("rsa-2048")
    signing_input, signature = await sign_parts(policy, version)
    assert jose.verify_signature(policy, version, signing_input, signature)
    # The same RS256 signature fails once the key is configured for PS256.
    policy.jwt_algorithm = "PS256"
    assert not jose.verify_signature(policy, version, signing_input, signature)

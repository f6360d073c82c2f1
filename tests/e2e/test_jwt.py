"""JWT issuance and verification through the real server, checked with
independent libraries (PyJWT, jwcrypto) and against forged tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk, jws

from tests.server import ServerProcess

ASYMMETRIC = [
    ("ed25519", "EdDSA"),
    ("ecdsa-p256", "ES256"),
    ("ecdsa-p384", "ES384"),
    ("ecdsa-p521", "ES512"),
    ("rsa-2048", "RS256"),
]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def data(answer) -> dict:  # noqa: ANN001
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def make_key(server: ServerProcess, kind: str, **options: object) -> str:
    name = unique(kind)
    body = {"type": kind, **options}
    data(server.request("POST", f"transit/keys/{name}", json=body))
    return name


def issue(server: ServerProcess, name: str, **body: object) -> dict:
    return data(server.request("POST", f"transit/jwt/sign/{name}", json=body))


def check(server: ServerProcess, name: str, token: str, **body: object):  # noqa: ANN201
    payload = {"token": token, **body}
    return server.request("POST", f"transit/jwt/verify/{name}", json=payload)


def key_read(server: ServerProcess, name: str) -> dict:
    return data(server.request("GET", f"transit/keys/{name}"))


def kid_of(server: ServerProcess, name: str, version: int = 1) -> str:
    return key_read(server, name)["keys"][str(version)]["kid"]


def jwks_url(server: ServerProcess, name: str) -> str:
    return f"{server.url}/v1/transit/jwks/{name}"


def transit_sign(
    server: ServerProcess, name: str, signing_input: str, **options
) -> str:  # noqa: ANN003
    """Sign signing_input with transit/sign and return the JWS signature part."""
    body = {
        "input": base64.b64encode(signing_input.encode()).decode(),
        "marshaling_algorithm": "jws",
        **options,
    }
    signed = data(server.request("POST", f"transit/sign/{name}", json=body))
    return signed["signature"].split(":", 2)[2]


def forge(
    server: ServerProcess, name: str, claims: dict, header: dict | None = None
) -> str:
    """Build a token with any claims, signed by the key's ES256 version 1."""
    header = header or {"alg": "ES256", "kid": kid_of(server, name), "typ": "JWT"}
    signing_input = segment(header) + "." + segment(claims)
    return signing_input + "." + transit_sign(server, name, signing_input)


def reason(answer) -> str:  # noqa: ANN001
    body = data(answer)
    assert body["valid"] is False
    return body["reason"]


# -- issuance checked by other libraries ------------------------------------------


@pytest.mark.parametrize(("kind", "alg"), ASYMMETRIC)
def test_pyjwt_verifies_through_jwks(
    dev_server: ServerProcess, kind: str, alg: str
) -> None:
    name = make_key(dev_server, kind, jwt_issuer="https://mssm.test")
    issued = issue(dev_server, name, claims={"sub": "alice"}, audience="billing")
    client = pyjwt.PyJWKClient(jwks_url(dev_server, name))
    signing_key = client.get_signing_key_from_jwt(issued["token"])
    claims = pyjwt.decode(
        issued["token"],
        signing_key.key,
        algorithms=[alg],
        audience="billing",
        issuer="https://mssm.test",
    )
    assert claims["sub"] == "alice"
    assert claims["exp"] == issued["expiration"]
    assert pyjwt.get_unverified_header(issued["token"])["alg"] == alg


@pytest.mark.parametrize(("kind", "alg"), ASYMMETRIC)
def test_kid_is_jwcrypto_thumbprint(
    dev_server: ServerProcess, kind: str, alg: str
) -> None:
    name = make_key(dev_server, kind)
    issued = issue(dev_server, name)
    key_set = jwk.JWKSet.from_json(
        dev_server.request("GET", f"transit/jwks/{name}", token=None).text
    )
    (only,) = list(key_set["keys"])
    assert only.thumbprint() == issued["kid"]
    token = jws.JWS()
    token.deserialize(issued["token"])
    token.verify(only, alg=alg)
    assert json.loads(token.payload)["jti"]


def test_ps256_key_signs_pss(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "rsa-3072", jwt_algorithm="PS256")
    issued = issue(dev_server, name)
    client = pyjwt.PyJWKClient(jwks_url(dev_server, name))
    key = client.get_signing_key_from_jwt(issued["token"]).key
    assert pyjwt.decode(issued["token"], key, algorithms=["PS256"])["jti"]
    with pytest.raises(pyjwt.InvalidAlgorithmError):
        pyjwt.decode(issued["token"], key, algorithms=["RS256"])


def test_hmac_key_issues_hs256(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "hmac")
    issued = issue(dev_server, name, claims={"role": "batch"})
    header = pyjwt.get_unverified_header(issued["token"])
    assert header["alg"] == "HS256"
    assert header["kid"] == issued["kid"]
    assert len(issued["kid"]) == 22
    checked = data(check(dev_server, name, issued["token"]))
    assert checked["valid"] is True
    assert checked["claims"]["role"] == "batch"


def test_issue_sets_standard_claims(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ed25519", jwt_issuer="https://issuer.test")
    before = int(time.time())
    issued = issue(dev_server, name, ttl="10m", audience=["a", "b"], not_before="30s")
    claims = pyjwt.decode(issued["token"], options={"verify_signature": False})
    assert before <= claims["iat"] <= before + 5
    assert claims["exp"] == claims["iat"] + 600
    assert claims["nbf"] == claims["iat"] + 30
    assert claims["aud"] == ["a", "b"]
    assert claims["iss"] == "https://issuer.test"
    assert issued["key_version"] == 1
    assert issued["ttl"] == 600


def test_issue_caps_ttl_with_warning(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ed25519", jwt_max_ttl="5m")
    answer = dev_server.request("POST", f"transit/jwt/sign/{name}", json={"ttl": "2h"})
    assert data(answer)["ttl"] == 300
    assert "capped to 300s" in answer.json()["warnings"][0]


@pytest.mark.parametrize("claim", ["exp", "iat", "aud", "iss", "nbf", "jti"])
def test_issue_rejects_reserved_claim(dev_server: ServerProcess, claim: str) -> None:
    name = make_key(dev_server, "ed25519")
    body = {"claims": {claim: 1}}
    answer = dev_server.request("POST", f"transit/jwt/sign/{name}", json=body)
    assert answer.status_code == 400
    assert f"'{claim}' is reserved" in answer.json()["errors"][0]


def test_aes_key_cannot_issue(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "aes256-gcm96")
    answer = dev_server.request("POST", f"transit/jwt/sign/{name}", json={})
    assert answer.status_code == 400
    assert "does not sign JWTs" in answer.json()["errors"][0]


# -- raw JWS signatures from transit/sign -----------------------------------------


def test_transit_jws_signature_builds_jwt(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256")
    kid = kid_of(dev_server, name)
    header = {"alg": "ES256", "kid": kid, "typ": "JWT"}
    claims = {"sub": "raw", "exp": int(time.time()) + 300}
    signing_input = segment(header) + "." + segment(claims)
    signature = transit_sign(dev_server, name, signing_input)
    assert len(signature) == 86
    for character in "=+/":
        assert character not in signature
    token = signing_input + "." + signature

    assert data(check(dev_server, name, token))["valid"] is True
    client = pyjwt.PyJWKClient(jwks_url(dev_server, name))
    key = client.get_signing_key_from_jwt(token).key
    assert pyjwt.decode(token, key, algorithms=["ES256"])["sub"] == "raw"

    body = {
        "input": base64.b64encode(signing_input.encode()).decode(),
        "signature": "vault:v1:" + signature,
    }
    jws_check = dict(body, marshaling_algorithm="jws")
    verified = dev_server.request("POST", f"transit/verify/{name}", json=jws_check)
    assert data(verified)["valid"] is True
    as_asn1 = dev_server.request("POST", f"transit/verify/{name}", json=body)
    assert as_asn1.status_code == 400


# -- forged and tampered tokens -----------------------------------------------------


@pytest.fixture
def es_key(dev_server: ServerProcess) -> str:
    return make_key(dev_server, "ecdsa-p256")


def valid_token(server: ServerProcess, name: str) -> str:
    return issue(server, name, claims={"sub": "alice", "admin": False})["token"]


def test_tampered_payload_rejected(dev_server: ServerProcess, es_key: str) -> None:
    header, _, signature = valid_token(dev_server, es_key).split(".")
    now = int(time.time())
    forged_claims = {"sub": "alice", "admin": True, "exp": now + 60, "iat": now}
    token = f"{header}.{segment(forged_claims)}.{signature}"
    assert reason(check(dev_server, es_key, token)) == "signature verification failed"


def test_tampered_signature_rejected(dev_server: ServerProcess, es_key: str) -> None:
    header, payload, signature = valid_token(dev_server, es_key).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    token = f"{header}.{payload}.{b64url(bytes(raw))}"
    assert reason(check(dev_server, es_key, token)) == "signature verification failed"


def test_alg_none_rejected(dev_server: ServerProcess, es_key: str) -> None:
    payload = valid_token(dev_server, es_key).split(".")[1]
    header = segment({"alg": "none", "kid": kid_of(dev_server, es_key)})
    token = f"{header}.{payload}."
    assert "alg 'none' does not match" in reason(check(dev_server, es_key, token))


@pytest.mark.parametrize("secret_form", ["pem", "jwk"])
def test_hs256_with_public_key_rejected(
    dev_server: ServerProcess, secret_form: str
) -> None:
    name = make_key(dev_server, "rsa-2048")
    kid = kid_of(dev_server, name)
    if secret_form == "pem":
        export = dev_server.request("GET", f"transit/export/public-key/{name}/1")
        secret = data(export)["keys"]["1"].encode()
    else:
        jwks = dev_server.request("GET", f"transit/jwks/{name}", token=None).text
        secret = json.dumps(json.loads(jwks)["keys"][0]).encode()
    now = int(time.time())
    signing_input = (
        segment({"alg": "HS256", "kid": kid})
        + "."
        + segment({"sub": "mallory", "exp": now + 60})
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + b64url(mac)
    assert "alg 'HS256' does not match" in reason(check(dev_server, name, token))


def test_zero_ecdsa_signature_rejected(dev_server: ServerProcess, es_key: str) -> None:
    header, payload, _ = valid_token(dev_server, es_key).split(".")
    token = f"{header}.{payload}.{b64url(bytes(64))}"
    assert reason(check(dev_server, es_key, token)) == "signature verification failed"


@pytest.mark.parametrize("length", [63, 65])
def test_wrong_length_es256_rejected(
    dev_server: ServerProcess, es_key: str, length: int
) -> None:
    header, payload, signature = valid_token(dev_server, es_key).split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    resized = raw[:63] if length == 63 else raw + b"\x00"
    token = f"{header}.{payload}.{b64url(resized)}"
    message = reason(check(dev_server, es_key, token))
    assert message.startswith("malformed signature")
    assert f"64 bytes, got {length}" in message


def test_es384_header_on_p256_rejected(dev_server: ServerProcess, es_key: str) -> None:
    header = {"alg": "ES384", "kid": kid_of(dev_server, es_key)}
    token = forge(dev_server, es_key, {"exp": int(time.time()) + 60}, header)
    assert "alg 'ES384' does not match" in reason(check(dev_server, es_key, token))


def test_unknown_kid_rejected(dev_server: ServerProcess, es_key: str) -> None:
    header = {"alg": "ES256", "kid": "not-a-kid"}
    token = forge(dev_server, es_key, {"exp": int(time.time()) + 60}, header)
    assert reason(check(dev_server, es_key, token)).startswith("unknown kid not-a-kid")


def test_missing_kid_rejected(dev_server: ServerProcess, es_key: str) -> None:
    dev_server.request("POST", f"transit/keys/{es_key}/rotate")
    token = forge(dev_server, es_key, {"exp": int(time.time()) + 60}, {"alg": "ES256"})
    assert "no kid" in reason(check(dev_server, es_key, token))


def test_kid_below_minimum_rejected(dev_server: ServerProcess, es_key: str) -> None:
    old_token = valid_token(dev_server, es_key)
    dev_server.request("POST", f"transit/keys/{es_key}/rotate")
    body = {"min_decryption_version": 2}
    dev_server.request("POST", f"transit/keys/{es_key}/config", json=body)
    message = reason(check(dev_server, es_key, old_token))
    assert "key version 1, below the key's min_decryption_version 2" in message


@pytest.mark.parametrize(
    "token",
    ["abc", "a.b", "a.b.c.d", "!!!.e30.", "e30.bm90IGpzb24.", "W10.e30."],
    ids=["one-part", "two-parts", "four-parts", "bad-base64", "bad-json", "array"],
)
def test_malformed_token_is_400(
    dev_server: ServerProcess, es_key: str, token: str
) -> None:
    answer = check(dev_server, es_key, token)
    assert answer.status_code == 400
    assert "malformed token" in answer.json()["errors"][0]


def test_string_header_is_400(dev_server: ServerProcess, es_key: str) -> None:
    token = segment("alg") + "." + segment({"exp": int(time.time()) + 60}) + "."
    answer = check(dev_server, es_key, token)
    assert answer.status_code == 400
    expected = "malformed token: the header is not a JSON object"
    assert answer.json()["errors"][0] == expected


def test_unregistered_header_values_accepted(
    dev_server: ServerProcess, es_key: str
) -> None:
    header = {"alg": "ES256", "kid": kid_of(dev_server, es_key), "typ": 1}
    header["note"] = "n" * 600
    token = forge(dev_server, es_key, {"exp": int(time.time()) + 60}, header)
    assert len(token.split(".")[0]) > 512
    assert data(check(dev_server, es_key, token))["valid"] is True


# -- claims and time -------------------------------------------------------------


def test_expired_token_rejected(dev_server: ServerProcess, es_key: str) -> None:
    now = int(time.time())
    token = forge(dev_server, es_key, {"exp": now - 30, "iat": now - 90})
    assert "expired" in reason(check(dev_server, es_key, token))


def test_nbf_within_leeway_accepted(dev_server: ServerProcess, es_key: str) -> None:
    now = int(time.time())
    token = forge(dev_server, es_key, {"exp": now + 300, "nbf": now + 30})
    assert data(check(dev_server, es_key, token))["valid"] is True


def test_nbf_beyond_leeway_rejected(dev_server: ServerProcess, es_key: str) -> None:
    now = int(time.time())
    token = forge(dev_server, es_key, {"exp": now + 600, "nbf": now + 300})
    assert "not valid before" in reason(check(dev_server, es_key, token))


def test_future_iat_rejected(dev_server: ServerProcess, es_key: str) -> None:
    now = int(time.time())
    token = forge(dev_server, es_key, {"exp": now + 600, "iat": now + 300})
    assert "issued in the future" in reason(check(dev_server, es_key, token))


def test_string_exp_rejected(dev_server: ServerProcess, es_key: str) -> None:
    token = forge(dev_server, es_key, {"exp": str(int(time.time()) + 60)})
    assert "must be a NumericDate" in reason(check(dev_server, es_key, token))


def test_missing_exp_rejected(dev_server: ServerProcess, es_key: str) -> None:
    token = forge(dev_server, es_key, {"sub": "forever"})
    assert reason(check(dev_server, es_key, token)) == "the token has no exp claim"


def test_year_3000_exp_rejected(dev_server: ServerProcess, es_key: str) -> None:
    token = forge(dev_server, es_key, {"exp": 32503680000})
    assert "further ahead than the key's jwt_max_ttl" in reason(
        check(dev_server, es_key, token)
    )


def test_wrong_audience_rejected(dev_server: ServerProcess, es_key: str) -> None:
    token = issue(dev_server, es_key, audience="billing")["token"]
    message = reason(check(dev_server, es_key, token, audience="payroll"))
    assert "audience 'payroll' is not in the token's aud claim" in message
    assert data(check(dev_server, es_key, token, audience="billing"))["valid"] is True


def test_audience_required_when_present(dev_server: ServerProcess, es_key: str) -> None:
    token = issue(dev_server, es_key, audience="billing")["token"]
    assert "pass audience" in reason(check(dev_server, es_key, token))


def test_wrong_issuer_rejected(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ed25519", jwt_issuer="https://a.test")
    token = issue(dev_server, name)["token"]
    message = reason(check(dev_server, name, token, issuer="https://b.test"))
    assert "does not match the expected 'https://b.test'" in message


# -- rotation --------------------------------------------------------------------


def test_token_survives_rotation(dev_server: ServerProcess, es_key: str) -> None:
    token = valid_token(dev_server, es_key)
    data(dev_server.request("POST", f"transit/keys/{es_key}/rotate"))
    checked = data(check(dev_server, es_key, token))
    assert checked["valid"] is True
    assert checked["key_version"] == 1
    newer = issue(dev_server, es_key)
    assert newer["key_version"] == 2
    assert newer["kid"] == kid_of(dev_server, es_key, 2)


def test_publish_ahead_delays_signing(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256", publish_ahead="2s")
    first_kid = kid_of(dev_server, name, 1)
    data(dev_server.request("POST", f"transit/keys/{name}/rotate"))
    rotated_at = time.monotonic()
    second_kid = kid_of(dev_server, name, 2)

    jwks = dev_server.request("GET", f"transit/jwks/{name}", token=None).json()
    assert [k["kid"] for k in jwks["keys"]] == [first_kid, second_kid]
    issued = issue(dev_server, name)
    read = key_read(dev_server, name)
    assert time.monotonic() - rotated_at < 2, "too slow to see the pending version"
    assert issued["kid"] == first_kid
    assert read["latest_version"] == 2
    assert read["signing_version"] == 1
    assert read["pending_activation_time"] != ""

    time.sleep(max(0.0, 2.2 - (time.monotonic() - rotated_at)))
    assert issue(dev_server, name)["kid"] == second_kid
    assert key_read(dev_server, name)["signing_version"] == 2


def test_public_key_pem_matches_jwk(dev_server: ServerProcess, es_key: str) -> None:
    read = key_read(dev_server, es_key)
    pem = read["keys"]["1"]["public_key"].encode()
    from_pem = jwk.JWK.from_pem(pem)
    assert from_pem.thumbprint() == read["keys"]["1"]["kid"]
    assert serialization.load_pem_public_key(pem).curve.name == "secp256r1"

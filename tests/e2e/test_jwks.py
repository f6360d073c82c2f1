"""The JWKS documents: served without a token, public members only, loadable
by standard libraries, and cacheable no longer than the next key change."""

from __future__ import annotations

import base64
import re
import uuid

import jwt as pyjwt
import pytest
import requests
from jwcrypto import jwk

from tests.server import ServerProcess

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_key(server: ServerProcess, kind: str, **options: object) -> str:
    name = unique(kind)
    body = {"type": kind, **options}
    answer = server.request("POST", f"transit/keys/{name}", json=body)
    assert answer.status_code == 200, answer.text
    return name


def fetch(server: ServerProcess, path: str = "") -> requests.Response:
    suffix = f"/{path}" if path else ""
    return requests.get(f"{server.url}/v1/transit/jwks{suffix}", timeout=10)


def max_age(answer: requests.Response) -> int:
    found = re.search(r"max-age=(\d+)", answer.headers["Cache-Control"])
    assert found is not None
    return int(found.group(1))


def raw_length(value: str) -> int:
    assert "=" not in value
    return len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def test_jwks_served_without_token(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256")
    answer = fetch(dev_server, name)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert set(answer.json()) == {"keys"}


def test_ec_entry_members(dev_server: ServerProcess) -> None:
    (entry,) = fetch(dev_server, make_key(dev_server, "ecdsa-p256")).json()["keys"]
    assert entry["kty"] == "EC"
    assert entry["crv"] == "P-256"
    assert entry["alg"] == "ES256"
    assert entry["use"] == "sig"
    assert raw_length(entry["x"]) == 32
    assert raw_length(entry["y"]) == 32


def test_okp_entry_members(dev_server: ServerProcess) -> None:
    (entry,) = fetch(dev_server, make_key(dev_server, "ed25519")).json()["keys"]
    assert entry["kty"] == "OKP"
    assert entry["crv"] == "Ed25519"
    assert entry["alg"] == "EdDSA"
    assert raw_length(entry["x"]) == 32


def test_rsa_entry_members(dev_server: ServerProcess) -> None:
    (entry,) = fetch(dev_server, make_key(dev_server, "rsa-2048")).json()["keys"]
    assert entry["kty"] == "RSA"
    assert entry["alg"] == "RS256"
    assert raw_length(entry["n"]) == 256
    assert entry["e"] == "AQAB"


@pytest.mark.parametrize(
    "kind", ["ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048"]
)
def test_entries_load_in_libraries(dev_server: ServerProcess, kind: str) -> None:
    name = make_key(dev_server, kind, exportable=True)
    dev_server.request("POST", f"transit/keys/{name}/rotate")
    body = fetch(dev_server, name).text
    key_set = jwk.JWKSet.from_json(body)
    assert len(key_set["keys"]) == 2
    for entry in key_set["keys"]:
        assert entry.has_private is False
        assert entry.thumbprint() == entry["kid"]
    assert len(pyjwt.PyJWKSet.from_json(body).keys) == 2


def test_no_private_members(dev_server: ServerProcess) -> None:
    for kind in ("ed25519", "ecdsa-p384", "rsa-2048"):
        name = make_key(dev_server, kind, exportable=True)
        for entry in fetch(dev_server, name).json()["keys"]:
            assert PRIVATE_MEMBERS.isdisjoint(entry)


@pytest.mark.parametrize("kind", ["hmac", "aes256-gcm96"])
def test_secret_keys_have_no_jwks(dev_server: ServerProcess, kind: str) -> None:
    answer = fetch(dev_server, make_key(dev_server, kind))
    assert answer.status_code == 404


def test_missing_key_is_404(dev_server: ServerProcess) -> None:
    assert fetch(dev_server, unique("missing")).status_code == 404


def test_index_lists_published_keys(dev_server: ServerProcess) -> None:
    published = make_key(dev_server, "ed25519", publish=True)
    hidden = make_key(dev_server, "ed25519")
    secret = make_key(dev_server, "hmac")
    hmac_kid = dev_server.request("POST", f"transit/jwt/sign/{secret}", json={})
    kids = {entry["kid"] for entry in fetch(dev_server).json()["keys"]}
    assert fetch(dev_server, published).json()["keys"][0]["kid"] in kids
    assert fetch(dev_server, hidden).json()["keys"][0]["kid"] not in kids
    assert hmac_kid.json()["data"]["kid"] not in kids


def test_publish_rejected_for_hmac(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "hmac")
    body = {"publish": True}
    answer = dev_server.request("POST", f"transit/keys/{name}/config", json=body)
    assert answer.status_code == 400
    assert "no public key to publish" in answer.json()["errors"][0]


def test_default_max_age(dev_server: ServerProcess) -> None:
    answer = fetch(dev_server, make_key(dev_server, "ed25519"))
    assert answer.headers["Cache-Control"] == "public, max-age=300"


def test_max_age_from_key_option(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ed25519", jwks_max_age="90s")
    assert max_age(fetch(dev_server, name)) == 90


def test_max_age_capped_by_rotation(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ed25519", jwks_max_age="24h", auto_rotate_period="1h")
    age = max_age(fetch(dev_server, name))
    assert 3590 <= age <= 3600


def test_max_age_capped_by_pending_version(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256", publish_ahead="20s")
    dev_server.request("POST", f"transit/keys/{name}/rotate")
    answer = fetch(dev_server, name)
    assert len(answer.json()["keys"]) == 2
    assert 15 <= max_age(answer) <= 20


def test_jwks_lists_pending_version_at_once(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ed25519", publish_ahead="1h")
    dev_server.request("POST", f"transit/keys/{name}/rotate")
    read = dev_server.request("GET", f"transit/keys/{name}").json()["data"]
    kids = [entry["kid"] for entry in fetch(dev_server, name).json()["keys"]]
    assert kids == [read["keys"]["1"]["kid"], read["keys"]["2"]["kid"]]
    assert read["signing_version"] == 1


def test_index_max_age_is_smallest(dev_server: ServerProcess) -> None:
    make_key(dev_server, "ed25519", publish=True, jwks_max_age="7s")
    assert max_age(fetch(dev_server)) <= 7


def test_pyjwk_client_follows_rotation(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256")
    client = pyjwt.PyJWKClient(f"{dev_server.url}/v1/transit/jwks/{name}")
    sign = f"transit/jwt/sign/{name}"
    first = dev_server.request("POST", sign, json={}).json()["data"]["token"]
    dev_server.request("POST", f"transit/keys/{name}/rotate")
    second = dev_server.request("POST", sign, json={}).json()["data"]["token"]
    for token in (first, second):
        key = client.get_signing_key_from_jwt(token).key
        assert pyjwt.decode(token, key, algorithms=["ES256"])["jti"]

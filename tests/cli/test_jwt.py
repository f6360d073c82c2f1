"""jwt sign and verify through the transit engine's jwt/ paths."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable

import pytest

from tests.cli.conftest import CLI


@pytest.fixture
def key_name(cli: CLI, needs_route: Callable[[str, str], None]) -> str:
    needs_route("PUT", "transit/jwt/sign/none")
    name = f"cli-{secrets.token_hex(3)}"
    created = cli("write", f"transit/keys/{name}", "type=ecdsa-p256")
    assert created.code == 0, created.stderr
    return name


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_sign_then_verify(cli: CLI, key_name: str) -> None:
    signed = cli(
        "jwt", "sign", key_name, '-claims={"sub": "svc-a"}', "-ttl=10m", "-field=token"
    )
    verified = cli("jwt", "verify", "-format=json", key_name, signed.stdout)

    assert signed.code == 0
    claims = claims_of(signed.stdout)
    assert claims["sub"] == "svc-a"
    assert claims["exp"] - claims["iat"] == 600
    assert verified.code == 0
    assert verified.json()["data"]["valid"] is True
    assert verified.json()["data"]["claims"]["sub"] == "svc-a"


def test_sign_claims_from_stdin(cli: CLI, key_name: str) -> None:
    signed = cli(
        "jwt",
        "sign",
        key_name,
        "-claims=-",
        "-field=token",
        input='{"sub": "from-stdin"}',
    )

    assert signed.code == 0
    assert claims_of(signed.stdout)["sub"] == "from-stdin"


def test_verify_token_from_stdin(cli: CLI, key_name: str) -> None:
    token = cli("jwt", "sign", key_name, "-claims={}", "-field=token").stdout

    verified = cli("jwt", "verify", key_name, "-", input=token + "\n")

    assert verified.code == 0
    assert "valid          true" in verified.stdout


def test_verify_tampered_exit_two(cli: CLI, key_name: str) -> None:
    token = cli("jwt", "sign", key_name, '-claims={"sub": "a"}', "-field=token").stdout
    header, _, signature = token.split(".")
    forged_claims = base64.urlsafe_b64encode(b'{"sub":"admin"}').rstrip(b"=").decode()
    forged = f"{header}.{forged_claims}.{signature}"

    verified = cli("jwt", "verify", key_name, forged)

    assert verified.code == 2
    assert verified.stderr.startswith("Error: the token is not valid: ")
    assert forged not in verified.stderr


def test_verify_wrong_audience_exit_two(cli: CLI, key_name: str) -> None:
    token = cli("jwt", "sign", key_name, "-claims={}", "-audience=api", "-field=token")

    verified = cli("jwt", "verify", "-audience=other", key_name, token.stdout)

    assert verified.code == 2
    assert "aud" in verified.stderr


def test_invalid_claims_json_exit_one(cli: CLI) -> None:
    result = cli("jwt", "sign", "any", "-claims={not json")

    assert result.code == 1
    assert result.stderr.startswith("Error: invalid JSON in -claims")


def test_unknown_key_exit_two(cli: CLI, key_name: str) -> None:
    result = cli("jwt", "sign", "no-such-key-here", "-claims={}")

    assert result.code == 2
    assert result.stderr.count("\n") == 1

"""sys/generate-root through a running server: Vault's one-time-password
flow with a quorum of unseal key shares, and the first-admin flow that
retires the initial root token."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
import requests

from tests.server import ServerProcess, free_port

OTP_LENGTH = 28


def start_server(directory: Path, unauthenticated_quorum: bool) -> ServerProcess:
    """Start and initialise a server with 3 shares and threshold 2."""
    port = free_port()
    listener = f'[listener]\naddress = "127.0.0.1:{port}"\ntls_disable = true\n'
    disabled = "false" if unauthenticated_quorum else "true"
    listener += f"disable_unauthed_rekey_endpoints = {disabled}\n"
    storage = f'[storage]\ntype = "sqlite"\npath = "{directory}/mssm.db"\n'
    config = directory / "mssm.toml"
    config.write_text(listener + storage)
    server = ServerProcess(f"http://127.0.0.1:{port}", config, directory / "server.log")
    server.start()
    server.init_and_unseal(shares=3, threshold=2)
    return server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_server(tmp_path, unauthenticated_quorum=True)
    yield server
    server.stop()


def decode(encoded: str, otp: str) -> str:
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    return bytes(a ^ b for a, b in zip(raw, otp.encode(), strict=True)).decode()


def generate(client: hvac.Client, keys: list[str]) -> str:
    """Run the whole OTP flow with hvac; return the decoded root token."""
    started = client.sys.start_root_token_generation()
    assert started["started"] is True
    assert started["otp_length"] == OTP_LENGTH
    otp = started["otp"]
    assert len(otp) == OTP_LENGTH
    first = client.sys.generate_root(keys[0], started["nonce"])
    assert first["progress"] == 1
    assert first["complete"] is False
    final = client.sys.generate_root(keys[1], started["nonce"])
    assert final["complete"] is True
    assert final["encoded_token"] == final["encoded_root_token"]
    return decode(final["encoded_token"], otp)


def test_generate_root_with_hvac(server: ServerProcess) -> None:
    client = hvac.Client(url=server.url)
    token = generate(client, server.keys)
    assert token.startswith("hvs.")
    assert len(token) == OTP_LENGTH
    new_root = hvac.Client(url=server.url, token=token)
    assert new_root.auth.token.lookup_self()["data"]["policies"] == ["root"]
    assert client.sys.read_root_generation_progress()["started"] is False


def test_decode_token_endpoint(server: ServerProcess) -> None:
    client = hvac.Client(url=server.url)
    started = client.sys.start_root_token_generation()
    client.sys.generate_root(server.keys[0], started["nonce"])
    final = client.sys.generate_root(server.keys[1], started["nonce"])
    body = {"encoded_token": final["encoded_token"], "otp": started["otp"]}
    answer = server.request("POST", "sys/decode-token", token=None, json=body)
    assert answer.json()["data"]["token"] == decode(body["encoded_token"], body["otp"])


def test_caller_chosen_otp(server: ServerProcess) -> None:
    otp = "A" * OTP_LENGTH
    started = server.request(
        "PUT", "sys/generate-root/attempt", token=None, json={"otp": otp}
    ).json()
    assert started["otp"] == ""
    nonce = started["nonce"]
    for key in server.keys[:2]:
        body = {"key": key, "nonce": nonce}
        final = server.request(
            "PUT", "sys/generate-root/update", token=None, json=body
        ).json()
    token = decode(final["encoded_token"], otp)
    lookup = server.request("GET", "auth/token/lookup-self", token=token)
    assert lookup.json()["data"]["policies"] == ["root"]


def test_attempt_errors(server: ServerProcess) -> None:
    def put(path: str, body: dict) -> requests.Response:
        return server.request("PUT", f"sys/generate-root/{path}", token=None, json=body)

    short = put("attempt", {"otp": "short"})
    assert short.status_code == 400
    assert "OTP string has incorrect length" in short.json()["errors"][0]
    pgp = put("attempt", {"pgp_key": "abc"})
    assert "pgp_key is not supported" in pgp.json()["errors"][0]
    no_attempt = put("update", {"key": server.keys[0], "nonce": "x"})
    assert no_attempt.json()["errors"] == ["no root generation in progress"]

    nonce = put("attempt", {}).json()["nonce"]
    again = put("attempt", {})
    assert again.json()["errors"] == ["root generation already in progress"]
    bad_nonce = put("update", {"key": server.keys[0], "nonce": "wrong"})
    assert bad_nonce.status_code == 400
    assert "incorrect nonce" in bad_nonce.json()["errors"][0]
    put("update", {"key": server.keys[0], "nonce": nonce}).raise_for_status()
    duplicate = put("update", {"key": server.keys[0], "nonce": nonce})
    assert "already been provided" in duplicate.json()["errors"][0]

    cancel = server.request("DELETE", "sys/generate-root/attempt", token=None)
    assert cancel.status_code == 204
    status = server.request("GET", "sys/generate-root/attempt", token=None).json()
    assert status["started"] is False
    assert status["progress"] == 0
    assert status["required"] == 2


def test_wrong_shares_reset_progress(server: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    other = start_server(tmp_path / "other", unauthenticated_quorum=True)
    try:
        foreign_keys = other.keys
    finally:
        other.stop()
    nonce = server.request("PUT", "sys/generate-root/attempt", token=None).json()
    nonce = nonce["nonce"]
    for key in foreign_keys[:1]:
        server.request(
            "PUT",
            "sys/generate-root/update",
            token=None,
            json={"key": key, "nonce": nonce},
        )
    failed = server.request(
        "PUT",
        "sys/generate-root/update",
        token=None,
        json={"key": foreign_keys[1], "nonce": nonce},
    )
    assert failed.status_code == 400
    assert "do not rebuild the unseal key" in failed.json()["errors"][0]
    status = server.request("GET", "sys/generate-root/attempt", token=None).json()
    assert status["progress"] == 0


def test_quorum_paths_need_sudo_when_disabled(tmp_path: Path) -> None:
    server = start_server(tmp_path, unauthenticated_quorum=False)
    try:
        anonymous = server.request("GET", "sys/generate-root/attempt", token=None)
        assert anonymous.status_code == 403
        token = server.request(
            "POST", "auth/token/create", json={"policies": ["default"]}
        ).json()["auth"]["client_token"]
        plain_user = server.request("GET", "sys/generate-root/attempt", token=token)
        assert plain_user.status_code == 403
        client = hvac.Client(url=server.url, token=server.root_token)
        assert generate(client, server.keys).startswith("hvs.")
    finally:
        server.stop()


ADMIN_POLICY = """
path "*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list", "sudo"]
}
"""


def test_first_admin_flow(tmp_path: Path) -> None:
    server = start_server(tmp_path, unauthenticated_quorum=True)
    try:
        root = hvac.Client(url=server.url, token=server.root_token)
        root.sys.create_or_update_acl_policy("admin", ADMIN_POLICY)
        # An orphan: revoking the root token would revoke its children too.
        admin_token = root.auth.token.create_orphan(policies=["admin"], ttl="8h")
        admin_token = admin_token["auth"]
        admin = hvac.Client(url=server.url, token=admin_token["client_token"])
        admin.auth.token.revoke(server.root_token)

        lookup = server.request("GET", "auth/token/lookup-self")
        assert lookup.status_code == 403
        assert admin.sys.list_mounted_secrets_engines()["data"]
        # The admin cannot create a root token: root is not among its policies.
        refused = server.request(
            "POST",
            "auth/token/create",
            token=admin_token["client_token"],
            json={"policies": ["root"]},
        )
        assert refused.status_code == 400

        new_root = generate(hvac.Client(url=server.url), server.keys)
        answer = server.request("GET", "auth/token/lookup-self", token=new_root)
        assert answer.json()["data"]["policies"] == ["root"]
    finally:
        server.stop()

"""Response wrapping through a running server: wrapped token creation and
reads, single-use unwrap, lookup, rewrap, wrap, and the wrap TTL header."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from hvac.exceptions import InvalidRequest

from tests.server import ServerProcess, start_production

SECRET = "wrapped-secret-5f1c"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_production(Path(tmp_path_factory.mktemp("wrapping")))
    mount = {"type": "kv", "options": {"version": "2"}}
    server.request("POST", "sys/mounts/secret", json=mount).raise_for_status()
    body = {"data": {"password": SECRET}}
    server.request("POST", "secret/data/app", json=body).raise_for_status()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def root(server: ServerProcess) -> hvac.Client:
    return hvac.Client(url=server.url, token=server.root_token)


def wrapped_read(server: ServerProcess, ttl: str = "5m") -> dict:
    answer = server.request("GET", "secret/data/app", headers={"X-Vault-Wrap-TTL": ttl})
    assert answer.status_code == 200
    return answer.json()


def test_wrapped_token_unwraps_once(root: hvac.Client, server: ServerProcess) -> None:
    created = root.auth.token.create(policies=["default"], wrap_ttl="1h")
    info = created["wrap_info"]
    assert created["auth"] is None
    assert created["data"] is None
    assert info["ttl"] == 3600
    assert info["creation_path"] == "auth/token/create"
    assert info["token"].startswith("hvs.")
    assert info["accessor"]
    assert info["creation_time"].endswith("Z")

    unwrapped = root.sys.unwrap(info["token"])["auth"]
    assert unwrapped["accessor"] == info["wrapped_accessor"]
    assert unwrapped["policies"] == ["default"]
    user = hvac.Client(url=server.url, token=unwrapped["client_token"])
    assert user.auth.token.lookup_self()["data"]["policies"] == ["default"]

    with pytest.raises(InvalidRequest, match="not valid or does not exist"):
        root.sys.unwrap(info["token"])


def test_wrapped_read_with_header_token(server: ServerProcess) -> None:
    body = wrapped_read(server)
    assert body["data"] is None
    assert body["auth"] is None
    info = body["wrap_info"]
    assert info["ttl"] == 300
    assert info["creation_path"] == "secret/data/app"
    assert "wrapped_accessor" not in info
    answer = server.request("POST", "sys/wrapping/unwrap", token=info["token"])
    assert answer.status_code == 200
    assert answer.json()["data"]["data"] == {"password": SECRET}
    again = server.request("POST", "sys/wrapping/unwrap", token=info["token"])
    assert again.status_code == 400


def test_wrap_ttl_formats(server: ServerProcess) -> None:
    assert wrapped_read(server, "15m")["wrap_info"]["ttl"] == 900
    assert wrapped_read(server, "1h")["wrap_info"]["ttl"] == 3600
    assert wrapped_read(server, "90")["wrap_info"]["ttl"] == 90


@pytest.mark.parametrize("ttl", ["0", "abc", "-5m", "10x"])
def test_bad_wrap_ttl_is_400(server: ServerProcess, ttl: str) -> None:
    answer = server.request("GET", "secret/data/app", headers={"X-Vault-Wrap-TTL": ttl})
    assert answer.status_code == 400
    assert SECRET not in answer.text


def test_lookup_does_not_consume(server: ServerProcess) -> None:
    token = wrapped_read(server)["wrap_info"]["token"]
    lookup = server.request(
        "POST", "sys/wrapping/lookup", token=None, json={"token": token}
    )
    data = lookup.json()["data"]
    assert data["creation_path"] == "secret/data/app"
    assert data["creation_ttl"] == 300
    assert data["creation_time"].endswith("Z")
    assert server.request("POST", "sys/wrapping/unwrap", token=token).status_code == 200


def test_rewrap_replaces_token(server: ServerProcess) -> None:
    old = wrapped_read(server)["wrap_info"]
    answer = server.request("POST", "sys/wrapping/rewrap", json={"token": old["token"]})
    new = answer.json()["wrap_info"]
    assert new["token"] != old["token"]
    assert new["creation_path"] == "secret/data/app"
    assert new["ttl"] == 300
    assert (
        server.request("POST", "sys/wrapping/unwrap", token=old["token"]).status_code
        == 400
    )
    unwrapped = server.request("POST", "sys/wrapping/unwrap", token=new["token"])
    assert unwrapped.json()["data"]["data"] == {"password": SECRET}


def test_wrap_arbitrary_data(root: hvac.Client) -> None:
    info = root.sys.wrap(payload={"api_key": "k-123"}, ttl=60)["wrap_info"]
    assert info["creation_path"] == "sys/wrapping/wrap"
    assert root.sys.unwrap(info["token"])["data"] == {"api_key": "k-123"}


def test_wrap_needs_header(server: ServerProcess) -> None:
    answer = server.request("POST", "sys/wrapping/wrap", json={"a": "b"})
    assert answer.status_code == 400
    assert "requires response wrapping" in answer.json()["errors"][0]


def test_expired_wrapping_token_gone(server: ServerProcess) -> None:
    token = wrapped_read(server, "2s")["wrap_info"]["token"]
    time.sleep(3)
    answer = server.request("POST", "sys/wrapping/unwrap", token=token)
    assert answer.status_code == 400
    lookup = server.request("POST", "sys/wrapping/lookup", json={"token": token})
    assert lookup.status_code == 400


def test_wrapping_token_is_not_a_client_token(server: ServerProcess) -> None:
    token = wrapped_read(server)["wrap_info"]["token"]
    assert server.request("GET", "secret/data/app", token=token).status_code == 403
    assert (
        server.request("GET", "auth/token/lookup-self", token=token).status_code == 403
    )


def test_body_token_needs_valid_client_token(server: ServerProcess) -> None:
    token = wrapped_read(server)["wrap_info"]["token"]
    answer = server.request(
        "POST", "sys/wrapping/unwrap", token="hvs.invalid", json={"token": token}
    )
    assert answer.status_code == 403
    unwrapped = server.request(
        "POST", "sys/wrapping/unwrap", token=None, json={"token": token}
    )
    assert unwrapped.status_code == 200


def test_wrapped_secret_encrypted_at_rest(server: ServerProcess) -> None:
    wrapped_read(server)
    database = Path(str(server.config_path).replace("mssm.toml", "mssm.db"))
    for path in (database, database.with_name("mssm.db-wal")):
        if path.exists():
            assert SECRET.encode() not in path.read_bytes()

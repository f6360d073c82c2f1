"""Hostile input to the `mssm` CLI: tokens that must not be echoed, and
exit codes and JSON output on errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import clean_env, run_mssm
from tests.server import ServerProcess, start_dev

SECRET_PART = "Sup3rSecretTokenPart"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_dev(tmp_path_factory.mktemp("cli-attacks"))
    yield server
    server.stop()


@pytest.mark.parametrize(
    "token",
    [
        f"hvs.{SECRET_PART}\n",
        f"hvs.{SECRET_PART}\r",
        f" hvs.{SECRET_PART}",
    ],
)
def test_bad_env_token_not_echoed(
    server: ServerProcess, tmp_path: Path, token: str
) -> None:
    env = clean_env(MSSM_ADDR=server.url, MSSM_TOKEN=token, HOME=str(tmp_path))

    result = run_mssm("kv", "get", "secret/app", env=env)

    assert result.code == 2, result.stderr
    assert SECRET_PART not in result.stderr + result.stdout
    assert "MSSM_TOKEN" in result.stderr


def test_control_char_token_not_echoed(server: ServerProcess, tmp_path: Path) -> None:
    token = f"hvs.{SECRET_PART}\x01x"
    env = clean_env(MSSM_ADDR=server.url, MSSM_TOKEN=token, HOME=str(tmp_path))

    result = run_mssm("kv", "get", "secret/app", env=env)

    assert result.code == 2, result.stderr
    assert SECRET_PART not in result.stderr + result.stdout


def test_bad_argument_token_not_echoed(server: ServerProcess, tmp_path: Path) -> None:
    env = clean_env(MSSM_ADDR=server.url, HOME=str(tmp_path))

    result = run_mssm("login", f" hvs.{SECRET_PART}", env=env)

    assert result.code == 2, result.stderr
    assert SECRET_PART not in result.stderr + result.stdout
    assert not (tmp_path / ".mssm-token").exists()


def test_denied_token_not_echoed(server: ServerProcess, tmp_path: Path) -> None:
    token = f"hvs.{SECRET_PART}"
    env = clean_env(MSSM_ADDR=server.url, MSSM_TOKEN=token, HOME=str(tmp_path))

    for args in (["kv", "get", "secret/app"], ["token", "lookup", token]):
        result = run_mssm(*args, env=env)
        assert result.code == 2, (args, result.stderr)
        assert SECRET_PART not in result.stderr + result.stdout, args


def test_json_format_server_error(server: ServerProcess, tmp_path: Path) -> None:
    env = clean_env(
        MSSM_ADDR=server.url, MSSM_TOKEN=server.root_token, HOME=str(tmp_path)
    )

    result = run_mssm("read", "-format=json", "sys/policies/acl/nosuch", env=env)

    assert result.code == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("Error:")


def test_json_format_output(server: ServerProcess, tmp_path: Path) -> None:
    env = clean_env(
        MSSM_ADDR=server.url, MSSM_TOKEN=server.root_token, HOME=str(tmp_path)
    )

    result = run_mssm("token", "lookup", "-format=json", env=env)

    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["data"]["policies"] == ["root"]


def test_local_error_exit_code(tmp_path: Path) -> None:
    env = clean_env(MSSM_ADDR="http://127.0.0.1:9", HOME=str(tmp_path))

    result = run_mssm("kv", "put", "secret/app", "novalue", env=env)

    assert result.code == 1, result.stderr
    assert "KEY=VALUE" in result.stderr
